"""OpenAI's protocol to the letter, where a real client or OpenAI's spec found the server
wrong: the key in a header is the credential (whatever cookie comes along) and mints no
cookie; an echoed prompt's tokens join to its text; no null system_fingerprint; fields
OpenAI refuses are refused; and the official JS SDK's CORS preflight passes for an
origin the user allowed."""

from __future__ import annotations

import json
import re
import time

import httpx
import openai
import pytest
from server import start_jupyter

HELLO = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3}
ORIGIN = "http://notebooks.example"


@pytest.fixture
def logged_in(jupyter_server):
    """A client holding Jupyter's login cookie, as one does after any request with `?token=`."""
    with httpx.Client(base_url=jupyter_server.url, timeout=60) as client:
        client.get("api/status", params={"token": jupyter_server.token})
        assert any(name.startswith("username-") for name in client.cookies)
        yield client


@pytest.mark.parametrize("header", ["Authorization", "x-api-key"])
def test_a_wrong_key_is_401_whatever_cookie_comes_with_it(logged_in, header):
    wrong = {header: "Bearer rotated" if header == "Authorization" else "rotated"}
    assert logged_in.get("mlx/v1/models").status_code == 200  # the cookie alone is a login
    for response in (
        logged_in.get("mlx/v1/models", headers=wrong),
        logged_in.post("mlx/v1/chat/completions", json=HELLO, headers=wrong),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_two_keys_that_disagree_authenticate_nothing(jupyter_server):
    token = jupyter_server.token
    url = jupyter_server.openai_base_url + "/models"
    agree = httpx.get(url, headers={"Authorization": f"Bearer {token}", "x-api-key": token})
    disagree = httpx.get(url, headers={"Authorization": f"Bearer {token}", "x-api-key": "wrong"})
    assert (agree.status_code, disagree.status_code) == (200, 401)


def test_the_official_client_with_a_rotated_key_is_refused(jupyter_server, logged_in):
    """The openai client keeps the cookies it gets (httpx): a key it once used must not
    outlive its rotation through them."""
    http_client = httpx.Client(cookies=logged_in.cookies)
    client = openai.OpenAI(
        base_url=jupyter_server.openai_base_url, api_key="rotated", max_retries=0, http_client=http_client
    )
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(**HELLO)


@pytest.mark.parametrize("header", ["Authorization", "x-api-key"])
def test_a_key_in_a_header_mints_no_login_cookie(jupyter_server, header):
    key = f"Bearer {jupyter_server.token}" if header == "Authorization" else jupyter_server.token
    with httpx.Client(base_url=jupyter_server.url, headers={header: key}, timeout=60) as client:
        for response in (client.get("mlx/v1/models"), client.post("mlx/v1/chat/completions", json=HELLO)):
            assert response.status_code == 200, response.text
            assert "set-cookie" not in response.headers
        assert not client.cookies


def test_a_key_in_a_header_is_one_user_not_a_new_one_per_request(jupyter_server):
    """Jupyter logs each refused request with its user: the key's requests are one client's."""
    since = len(jupyter_server.log())
    for header in ({"Authorization": f"Bearer {jupyter_server.token}"}, {"x-api-key": jupyter_server.token}):
        for _ in range(2):
            assert (
                httpx.post(
                    jupyter_server.openai_base_url + "/chat/completions", json={"model": "demo"}, headers=header
                ).status_code
                == 400
            )
    line = re.compile(r"400 POST /mlx/v1/chat/completions \((\w+)@127\.0\.0\.1\)")
    deadline = time.monotonic() + 10  # the server logs a request once it has answered it
    while len(users := line.findall(jupyter_server.log()[since:])) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(users) == 4 and len(set(users)) == 1, users


def test_echoed_prompt_tokens_join_to_its_text(openai_client):
    """A text prompt without the BOS its tokenizer adds: the tokens are the text's, and
    the offsets of the prompt's and the answer's tokens ascend through the whole text."""
    prompt = "What is 3 + 4?"
    for max_tokens in (0, 4):
        choice = openai_client.completions.create(
            model="demo", prompt=prompt, echo=True, logprobs=1, max_tokens=max_tokens, temperature=0
        ).choices[0]
        logprobs = choice.logprobs
        assert "".join(logprobs.tokens) == choice.text and choice.text.startswith(prompt)
        assert logprobs.text_offset == [len("".join(logprobs.tokens[:i])) for i in range(len(logprobs.tokens))]
        assert len(logprobs.token_logprobs) == len(logprobs.tokens) == len(logprobs.top_logprobs)
        # The BOS the tokenizer put first still conditions the first token of the text.
        assert logprobs.token_logprobs[0] is not None


def test_a_prompt_written_with_its_bos_echoes_it(openai_client):
    prompt = "<|begin_of_text|>What is 3 + 4?"
    logprobs = (
        openai_client.completions.create(model="demo", prompt=prompt, echo=True, logprobs=0, max_tokens=0)
        .choices[0]
        .logprobs
    )
    assert logprobs.tokens[0] == "<|begin_of_text|>" and "".join(logprobs.tokens) == prompt
    assert logprobs.token_logprobs[0] is None  # nothing precedes it


def sse_events(response: httpx.Response) -> list[dict]:
    return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]


def test_no_null_system_fingerprint(http):
    """OpenAI's spec types it a string: absent is fine, null is not."""
    bodies = [
        http.post("mlx/v1/chat/completions", json=HELLO).json(),
        http.post("mlx/v1/completions", json={"model": "demo", "prompt": "Hi", "max_tokens": 2}).json(),
    ]
    for path, body in (
        ("mlx/v1/chat/completions", HELLO),
        ("mlx/v1/completions", {"model": "demo", "prompt": "Hi", "max_tokens": 2}),
    ):
        with http.stream("POST", path, json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
            bodies += sse_events(r)
    assert len(bodies) > 4
    for body in bodies:
        assert isinstance(body.get("system_fingerprint", ""), str), body


REFUSED = {
    # field values OpenAI refuses, and the words of its message
    "tool_choice required": (
        {"tool_choice": "required"},
        "tool_choice",
        "'tool_choice' is only allowed when 'tools' are specified",
    ),
    "tool_choice auto": (
        {"tool_choice": "auto"},
        "tool_choice",
        "'tool_choice' is only allowed when 'tools' are specified",
    ),
    "tool_choice a function": (
        {"tool_choice": {"type": "function", "function": {"name": "f"}}},
        "tool_choice",
        "'tool_choice' is only allowed when 'tools' are specified",
    ),
    "parallel_tool_calls": (
        {"parallel_tool_calls": True},
        "parallel_tool_calls",
        "'parallel_tool_calls' is only allowed when 'tools' are specified",
    ),
    "function_call": (
        {"function_call": {"name": "f"}},
        "function_call",
        "'function_call' is only allowed when 'functions' are specified",
    ),
    "stream_options without stream": (
        {"stream_options": {"include_usage": True}},
        "stream_options",
        "'stream_options' is only allowed when 'stream' is enabled",
    ),
}


@pytest.mark.parametrize("fields, param, words", REFUSED.values(), ids=REFUSED.keys())
def test_fields_openai_refuses_are_refused(openai_client, fields, param, words):
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.chat.completions.create(**HELLO, **fields)
    error = refused.value.body
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert words in error["message"]


def test_stream_options_without_stream_is_refused_in_text_completions(http):
    response = http.post("mlx/v1/completions", json={"model": "demo", "prompt": "Hi", "stream_options": {}})
    assert response.status_code == 400 and response.json()["error"]["param"] == "stream_options"


def test_tool_choice_none_asks_for_nothing(openai_client):
    reply = openai_client.chat.completions.create(**HELLO, tool_choice="none")
    assert reply.choices[0].message.content


# ---- CORS: the JS SDKs in a browser -------------------------------------------------------


@pytest.fixture(scope="module")
def cors_server():
    """A server whose user allowed one origin (`ServerApp.allow_origin`)."""
    server = start_jupyter(f"--ServerApp.allow_origin={ORIGIN}")
    yield server
    server.stop()


# What openai-node (and anthropic-sdk-typescript) ask for in a browser's preflight.
SDK_HEADERS = (
    "authorization, content-type, x-stainless-arch, x-stainless-lang, x-stainless-os, "
    "x-stainless-package-version, x-stainless-retry-count, x-stainless-runtime, "
    "x-stainless-runtime-version, x-stainless-timeout"
)
ANTHROPIC_HEADERS = "anthropic-dangerous-direct-browser-access, anthropic-version, content-type, x-api-key"


@pytest.mark.parametrize("requested", [SDK_HEADERS, ANTHROPIC_HEADERS], ids=["openai", "anthropic"])
def test_preflight_of_the_js_sdks_passes_for_an_allowed_origin(cors_server, requested):
    preflight = httpx.options(
        cors_server.openai_base_url + "/chat/completions",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": requested,
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = {h.strip() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {h.strip() for h in requested.split(",")} <= allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]


def test_answers_and_errors_carry_the_allowed_origin(cors_server):
    """The browser hands the SDK an answer only with Allow-Origin: errors too (a 401 read
    as a network error would hide the cause)."""
    url = cors_server.openai_base_url + "/models"
    ok = httpx.get(url, headers={"Origin": ORIGIN, "Authorization": f"Bearer {cors_server.token}"})
    refused = httpx.get(url, headers={"Origin": ORIGIN, "Authorization": "Bearer wrong"})
    assert (ok.status_code, refused.status_code) == (200, 401)
    assert ok.headers["access-control-allow-origin"] == refused.headers["access-control-allow-origin"] == ORIGIN


def test_without_an_allowed_origin_the_preflight_allows_none(jupyter_server):
    """CORS stays as Jupyter has it: off until the user allows an origin."""
    preflight = httpx.options(
        jupyter_server.openai_base_url + "/chat/completions",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": SDK_HEADERS,
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert "x-stainless" not in preflight.headers.get("access-control-allow-headers", "")

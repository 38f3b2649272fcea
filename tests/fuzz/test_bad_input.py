"""Hand-written bad input, each answered by a clear OpenAI-shaped 4xx (or, for
absurd sizes, clamped) while the server keeps serving. tests/api/test_errors.py
covers the basic field errors; these are the hostile and the unsupported ones."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from server import start_jupyter

from mlx_workbench.demo import DEMO_MODELS

CHAT = "mlx/v1/chat/completions"
TEXT = "mlx/v1/completions"
HELLO = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}


def assert_error(response: httpx.Response, status: int, code: str, words: str) -> dict:
    """OpenAI's error shape, the code, and a message that says what is wrong in `words`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code, error
    assert words.lower() in error["message"].lower(), error["message"]
    return error


def chat_with(**fields) -> bytes:
    return json.dumps({**HELLO, **fields}).encode()


def nested(depth: int) -> bytes:
    return b'{"model": "demo", "messages": ' + b"[" * depth + b"]" * depth + b"}"


# (path, raw body, content type, status, code, words the message must contain)
CASES = {
    "truncated JSON": (CHAT, chat_with()[:-5], "application/json", 400, "invalid_json", "not valid JSON"),
    "trailing garbage": (CHAT, chat_with() + b"}{", "application/json", 400, "invalid_json", "trailing"),
    "deep nesting": (CHAT, nested(100_000), "application/json", 400, "invalid_json", "recursion"),
    "NaN": (CHAT, chat_with()[:-1] + b', "temperature": NaN}', "application/json", 400, "invalid_value", "finite"),
    "Infinity": (
        TEXT,
        b'{"model": "demo", "prompt": "x", "top_p": Infinity}',
        "application/json",
        400,
        "invalid_value",
        "finite",
    ),
    "not UTF-8": (
        CHAT,
        chat_with().replace(b"Hello", b"\xff\xfeHello"),
        "application/json",
        400,
        "invalid_json",
        "unicode",
    ),
    "lone surrogate": (
        CHAT,
        chat_with().replace(b"Hello", b"\\udfffHello"),
        "application/json",
        400,
        "invalid_json",
        "surrogate",
    ),
    "form-encoded": (
        CHAT,
        b"model=demo&prompt=hi",
        "application/x-www-form-urlencoded",
        400,
        "invalid_json",
        "not valid JSON",
    ),
    "multipart": (
        TEXT,
        b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\nb\r\n--x--\r\n",
        "multipart/form-data; boundary=x",
        400,
        "invalid_json",
        "not valid JSON",
    ),
    "a string for a number": (CHAT, chat_with(max_tokens="5"), "application/json", 400, "invalid_value", "integer"),
    "0 for false": (CHAT, chat_with(stream=0), "application/json", 400, "invalid_value", "boolean"),
    "negative max_tokens": (CHAT, chat_with(max_tokens=-1), "application/json", 400, "invalid_value", "max_tokens"),
    "a message without a role": (
        CHAT,
        chat_with(messages=[{}]),
        "application/json",
        400,
        "missing_required_parameter",
        "messages.0.role",
    ),
    "a tool result answering no call": (
        CHAT,
        chat_with(messages=[{"role": "tool", "content": "42", "tool_call_id": "1"}]),
        "application/json",
        400,
        "tool_mismatch",
        "which no assistant made",
    ),
    "a function result without its name": (
        CHAT,
        chat_with(messages=[{"role": "function", "content": "42"}]),
        "application/json",
        400,
        "invalid_value",
        "needs the name of its function",
    ),
    "a tool call without its function": (
        CHAT,
        chat_with(
            messages=[
                {"role": "assistant", "tool_calls": [{"id": "1", "type": "function"}]},
                {"role": "user", "content": "and?"},
            ]
        ),
        "application/json",
        400,
        "missing_required_parameter",
        "messages.0.tool_calls.0.function",
    ),
    "a tool that is not a function": (
        CHAT,
        chat_with(tools=[{"type": "retrieval"}]),
        "application/json",
        400,
        "invalid_value",
        "function",
    ),
    "tools and functions": (
        CHAT,
        chat_with(tools=[{"type": "function", "function": {"name": "f"}}], functions=[{"name": "get_weather"}]),
        "application/json",
        400,
        "tool_mismatch",
        "cannot be combined",
    ),
    "an image part": (
        CHAT,
        chat_with(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:,"}},
                    ],
                }
            ]
        ),
        "application/json",
        400,
        "invalid_value",
        "text only",
    ),
    "an audio part": (
        CHAT,
        chat_with(
            messages=[
                {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}
            ]
        ),
        "application/json",
        400,
        "invalid_value",
        "text only",
    ),
    "a schema feature that cannot be enforced": (
        CHAT,
        chat_with(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string", "format": "made-up"}},
            }
        ),
        "application/json",
        400,
        "invalid_value",
        "made-up",
    ),
    "token ids outside the vocabulary": (
        TEXT,
        b'{"model": "demo", "prompt": [1, 99999999]}',
        "application/json",
        400,
        "invalid_for_model",
        "token ids",
    ),
    "logit_bias outside the vocabulary": (
        CHAT,
        chat_with(logit_bias={"99999999": 1}),
        "application/json",
        400,
        "invalid_for_model",
        "vocabulary",
    ),
    "a vanishing repetition_penalty": (
        CHAT,
        chat_with(repetition_penalty=5e-324),
        "application/json",
        400,
        "invalid_value",
        "repetition_penalty",
    ),
    "logit_bias keyed by a word": (
        CHAT,
        chat_with(logit_bias={"hello": 1}),
        "application/json",
        400,
        "invalid_value",
        "logit_bias",
    ),
}


@pytest.mark.parametrize("path, body, content_type, status, code, words", CASES.values(), ids=CASES.keys())
def test_bad_body_is_a_clear_4xx(fuzz_http, path, body, content_type, status, code, words):
    response = fuzz_http.post(path, content=body, headers={"Content-Type": content_type})
    assert_error(response, status, code, words)
    assert fuzz_http.get("mlx/health").json()["status"] == "ok"


def test_json_under_another_content_type_is_served(fuzz_http):
    """curl -d sends form-encoding's content type: a JSON body is read as JSON whatever its label."""
    reply = fuzz_http.post(CHAT, content=chat_with(max_tokens=2), headers={"Content-Type": "text/plain"})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("path, field", [(CHAT, "messages"), (TEXT, "prompt")])
@pytest.mark.parametrize("megabytes", [0.05, 40])
def test_prompt_over_the_context_is_refused_quickly(fuzz_http, path, field, megabytes):
    text = "word " * int(megabytes * 2**20 / 5)
    prompt = [{"role": "user", "content": text}] if field == "messages" else text
    started = time.monotonic()
    response = fuzz_http.post(path, json={"model": "demo", field: prompt})
    assert assert_error(response, 400, "context_length_exceeded", "maximum context length")["param"] == field
    # Bounded: 40 MB used to be tokenized first, holding the device thread for a minute.
    assert time.monotonic() - started < 20


def test_token_ids_over_the_context_are_refused(fuzz_http):
    response = fuzz_http.post(TEXT, json={"model": "demo", "prompt": [40] * 300_000})
    assert assert_error(response, 400, "context_length_exceeded", "maximum context length")["param"] == "prompt"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [10**30, 2**63, 1e30])
def test_absurd_max_tokens_is_clamped_to_the_cap(fuzz_http, max_tokens_cap, field, value):
    reply = fuzz_http.post(CHAT, json={**HELLO, field: value, "temperature": 0}).json()
    assert reply["usage"]["completion_tokens"] <= max_tokens_cap
    assert reply["choices"][0]["finish_reason"] in ("stop", "length")


def test_banned_tokens_have_a_finite_logprob(fuzz_http):
    """Tokens banned by logit_bias -100 are at -infinity, which JSON cannot say: they are
    reported at -9999.0 as OpenAI does, never as null."""
    config = json.loads((Path(DEMO_MODELS["demo"]["path"]) / "config.json").read_text())
    allowed = {40, 41}  # two byte-level letters; the ends of a turn are banned too, so that tokens come
    bias = {str(i): -100 for i in range(config["vocab_size"]) if i not in allowed}
    body = {**HELLO, "logit_bias": bias, "logprobs": True, "top_logprobs": 5, "max_tokens": 4}
    reply = fuzz_http.post(CHAT, json=body).json()
    tokens = reply["choices"][0]["logprobs"]["content"]
    top = [t["logprob"] for token in tokens for t in token["top_logprobs"]]
    assert all(isinstance(x, float) for x in top) and -9999.0 in top


def test_body_over_the_server_limit_is_refused(fuzz_server, fuzz_http):
    """Tornado refuses it from the Content-Length alone (Jupyter's max_body_size, 512 MB):
    a bare 400 before any handler runs (so not OpenAI-shaped), and the server goes on."""
    url = urlsplit(fuzz_server.url + CHAT)
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {fuzz_server.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {600 * 2**20}\r\n\r\n{{"
    )
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
    assert fuzz_http.get("mlx/health").json()["status"] == "ok"


@pytest.fixture(scope="module")
def offline_server():
    """A configured model that is neither on disk nor in the Hugging Face cache, offline."""
    models = {"demo": DEMO_MODELS["demo"], "remote": "someone/not-in-the-cache"}
    server = start_jupyter(f"--MLXWorkbench.models={json.dumps(models)}", env={"HF_HUB_OFFLINE": "1"})
    yield server
    server.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_that_cannot_be_fetched_fails_at_once(offline_server, stream):
    """It used to hang until the client gave up: the failed download's answer waited
    for an engine step that an idle engine never takes."""
    body = {"model": "remote", "messages": [{"role": "user", "content": "Hello"}], "stream": stream}
    headers = {"Authorization": f"Bearer {offline_server.token}"}
    response = httpx.post(offline_server.url + CHAT, json=body, headers=headers, timeout=30)
    assert_error(response, 503, "model_load_failed", "not-in-the-cache")

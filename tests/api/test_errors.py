"""Every error is OpenAI-shaped JSON with the right status, through the official
client where it can send the request and raw HTTP where it cannot."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from server import start_jupyter

from mlx_workbench.demo import DEMO_MODELS

HELLO = [{"role": "user", "content": "Hello"}]


def assert_error(response: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code:
        assert error["code"] == code
    if param:
        assert error["param"] == param
    return error


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "demo", "messages": HELLO, "temperature": 3}, "temperature"),
        ({"model": "demo", "messages": HELLO, "top_p": 0}, "top_p"),
        ({"model": "demo", "messages": HELLO, "n": 0}, "n"),
        ({"model": "demo", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": "demo", "messages": HELLO, "max_tokens": "many"}, "max_tokens"),
        ({"model": "demo", "messages": HELLO, "stop": [""]}, "stop"),
        ({"model": "demo", "messages": HELLO, "logit_bias": {"12": 500}}, "logit_bias.12"),
        ({"model": "demo", "messages": HELLO, "top_logprobs": 2}, "top_logprobs"),
        ({"model": "demo", "messages": []}, "messages"),
        ({"model": "demo", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"messages": HELLO}, "model"),
    ],
)
def test_invalid_chat_body_is_400(http, body, param):
    error = assert_error(http.post("mlx/v1/chat/completions", json=body), 400, param=param)
    assert error["type"] == "invalid_request_error"


def test_invalid_completion_bodies_are_400(http):
    assert_error(http.post("mlx/v1/completions", json={"model": "demo"}), 400, "missing_required_parameter", "prompt")
    assert_error(http.post("mlx/v1/completions", json={"model": "demo", "prompt": ["a"] * 65}), 400, param="prompt")
    assert_error(http.post("mlx/v1/completions", json={"model": "demo", "prompt": "a", "logprobs": 9}), 400)


def test_malformed_json_is_400(http):
    for body in (b"{not json", b"", b"[1, 2]"):
        assert_error(http.post("mlx/v1/chat/completions", content=body), 400)


def test_unknown_field_is_ignored(openai_client):
    reply = openai_client.chat.completions.create(
        model="demo", messages=HELLO, max_tokens=2, extra_body={"some_future_option": {"x": 1}}
    )
    assert reply.choices[0].message.content is not None


def test_unknown_model_is_404(openai_client):
    for model in ("no-such-model", "demo:no-such-adapter"):
        with pytest.raises(openai.NotFoundError) as e:
            openai_client.chat.completions.create(model=model, messages=HELLO)
        assert e.value.body["code"] == "model_not_found"


def test_conflicting_adapter_is_400(http):
    body = {"model": "demo:upper", "adapter": "pirate", "messages": HELLO}
    assert_error(http.post("mlx/v1/chat/completions", json=body), 400, param="adapter")


def test_prompt_too_long_is_400_context_length_exceeded(openai_client, http):
    openai_client.chat.completions.create(model="demo", messages=HELLO, max_tokens=1)  # loaded
    (entry,) = [e for e in http.get("mlx/api/status").json()["entries"] if e["id"] == "demo"]
    long = [{"role": "user", "content": "one two three " * entry["context_length"]}]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as e:
            openai_client.chat.completions.create(model="demo", messages=long, stream=stream)
        assert e.value.body["code"] == "context_length_exceeded"


def test_no_token_and_wrong_token_are_401(jupyter_server):
    url = jupyter_server.url + "mlx/v1/chat/completions"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "token wrong"}):
        response = httpx.post(url, json={"model": "demo", "messages": HELLO}, headers=headers)
        assert_error(response, 401, "invalid_api_key")
    bad = openai.OpenAI(base_url=jupyter_server.openai_base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_cookie_without_xsrf_is_403(jupyter_server):
    with httpx.Client(base_url=jupyter_server.url) as browser:
        browser.get("api/status", params={"token": jupyter_server.token})  # logs in: sets the cookie
        assert browser.get("mlx/api/status").status_code == 200
        assert_error(browser.post("mlx/v1/chat/completions", json={"model": "demo", "messages": HELLO}), 403)


def test_health_needs_no_token(jupyter_server):
    health = httpx.get(jupyter_server.url + "mlx/health").json()
    assert health["status"] == "ok" and health["engine"] == "running"
    assert httpx.get(jupyter_server.url + "mlx/api/status").status_code == 401


def test_unknown_url_and_wrong_method(http):
    assert_error(http.get("mlx/v1/embeddings"), 404, "unknown_url")
    assert_error(http.post("mlx/api/nothing", json={}), 404, "unknown_url")
    assert_error(http.get("mlx/v1/chat/completions"), 405)


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    """A server that queues nothing, has no memory to spare, and a model whose files are missing."""
    models = {"demo": DEMO_MODELS["demo"], "broken": str(tmp_path_factory.mktemp("missing") / "model")}
    server = start_jupyter(
        f"--MLXWorkbench.models={json.dumps(models)}",
        "--MLXWorkbench.queue_limit=0",
        "--MLXWorkbench.memory_limit=1KB",
    )
    yield server
    server.stop()


@pytest.mark.slow  # a server of its own
def test_queue_full_is_429_with_retry_after(strict_server):
    client = openai.OpenAI(base_url=strict_server.openai_base_url, api_key=strict_server.token, max_retries=0)
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="demo", messages=HELLO)
    assert e.value.body["code"] == "queue_full"
    assert int(e.value.response.headers["retry-after"]) >= 1


@pytest.mark.slow  # a server of its own
def test_load_failures_are_503(strict_server):
    with httpx.Client(base_url=strict_server.url, headers={"Authorization": f"token {strict_server.token}"}) as http:
        over = http.post("mlx/api/models/load", json={"model": "demo", "wait": True}, timeout=60)
        assert_error(over, 503, "memory_budget_exceeded")
        broken = http.post("mlx/api/models/load", json={"model": "broken", "wait": True}, timeout=60)
        assert_error(broken, 503, "model_load_failed")
        assert_error(http.post("mlx/api/models/load", json={"model": "demo:nope"}), 404, "model_not_found")

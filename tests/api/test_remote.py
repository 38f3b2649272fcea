"""Remote entries: a real mlx_lm.server on loopback behind a Jupyter server that lists it as
`big`, beside the local demo models; and `gone`, an entry whose server is not there."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from demo_requests import endless, messages
from server import free_port, start_jupyter
from upstream import DEMO_PATH, start_upstream

from mlx_workbench.demo import DEMO_MODELS


@pytest.fixture(scope="module")
def upstream():
    server = start_upstream()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(upstream, jupyter_server):
    models = {
        **DEMO_MODELS,
        "big": {"url": upstream.url, "model": DEMO_PATH, "api_key_env": "UPSTREAM_KEY"},
        "gone": {"url": f"http://127.0.0.1:{free_port()}/v1", "model": "anything"},
        # Another mlx_workbench (the session's server): its token is the key it wants.
        "peer": {"url": jupyter_server.openai_base_url, "model": "demo:upper", "api_key": jupyter_server.token},
        "peer-without-key": {"url": jupyter_server.openai_base_url, "model": "demo"},
    }
    jupyter = start_jupyter(f"--MLXWorkbench.models={json.dumps(models)}", env={"UPSTREAM_KEY": "their-key"})
    yield jupyter
    jupyter.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.openai_base_url, api_key=server.token, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def direct(upstream):
    return openai.OpenAI(base_url=upstream.url, api_key="none", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"token {server.token}"}, timeout=120) as c:
        yield c


def status_entry(http, model_id: str) -> dict:
    return next(e for e in http.get("mlx/api/status").json()["entries"] if e["id"] == model_id)


def test_models_lists_remote_entries_beside_local_ones(client):
    ids = [m.id for m in client.models.list()]
    assert {"demo", "demo:upper", "big", "gone"} <= set(ids)
    assert client.models.retrieve("big").id == "big"


def test_greedy_answers_equal_the_upstreams(client, direct, answers):
    for row in answers()[:4]:
        ours = client.chat.completions.create(model="big", messages=messages(row), temperature=0)
        theirs = direct.chat.completions.create(model=DEMO_PATH, messages=messages(row), temperature=0)
        assert ours.choices[0].message.content == theirs.choices[0].message.content == row["answer"]
        assert ours.model == "big"
        assert ours.usage.completion_tokens == theirs.usage.completion_tokens


def test_streamed_answers_arrive_in_chunks(client, answers):
    for row in answers()[:3]:
        stream = client.chat.completions.create(model="big", messages=messages(row), temperature=0, stream=True)
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == row["answer"]
        assert len(chunks) > 2  # relayed as they came, not one buffered answer
        assert {c.model for c in chunks} == {"big"}
        assert chunks[-1].choices[0].finish_reason == "stop"


def test_text_completions_equal_the_upstreams(client, direct):
    ours = client.completions.create(model="big", prompt="What is 3 +", max_tokens=8, temperature=0)
    theirs = direct.completions.create(model=DEMO_PATH, prompt="What is 3 +", max_tokens=8, temperature=0)
    assert ours.choices[0].text == theirs.choices[0].text
    assert ours.model == "big"


def test_local_and_remote_entries_answer_side_by_side(client, answers):
    row = answers()[0]
    for model in ("demo", "big", "demo"):
        reply = client.chat.completions.create(model=model, messages=messages(row), temperature=0)
        assert reply.choices[0].message.content == row["answer"]


def test_a_client_that_hangs_up_stops_the_upstream(server, upstream, http):
    body = {
        "model": "big",
        "messages": [{"role": "user", "content": "Tell me a story."}],
        "stream": True,
        "max_tokens": 100000,
        "logit_bias": endless(),
    }
    since = len(upstream.log())
    with http.stream("POST", "mlx/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break  # the first token arrived: hang up in the middle of 100000
    # mlx_lm.server stops generating when its next write to the closed connection fails.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "BrokenPipeError" not in upstream.log()[since:]:
        time.sleep(0.2)
    assert "BrokenPipeError" in upstream.log()[since:], upstream.log()[since:][-3000:]
    assert "mlx chat big (remote, stream): client gone" in server.log()
    # And it serves the next request: nothing is left generating on it.
    reply = http.post(
        "mlx/v1/chat/completions", json={"model": "big", "messages": body["messages"][:1], "max_tokens": 4}
    )
    assert reply.status_code == 200


def test_an_upstream_that_is_down_is_a_503_and_health_shows_it(client, http):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gone", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 503
    assert caught.value.body["code"] == "upstream_unavailable"
    assert caught.value.body["type"] == "server_error"
    entry = status_entry(http, "gone")
    assert entry["state"] == "failed" and "did not answer" in entry["error"]
    assert entry["remote"].startswith("http://127.0.0.1:")
    # The other entries carry on.
    assert client.chat.completions.create(model="big", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)


def test_health_of_a_live_remote_entry(http):
    deadline = time.monotonic() + 60
    while (entry := status_entry(http, "big"))["latency_ms"] is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert entry["state"] == "loaded" and entry["error"] is None
    assert entry["latency_ms"] >= 0
    assert entry["remote"].endswith("/v1")
    configured = {m["name"]: m for m in http.get("mlx/api/status").json()["configured"]}
    assert configured["big"]["path"] == entry["remote"]


@pytest.mark.parametrize("action", ["load", "unload", "pin"])
def test_loading_a_remote_entry_is_a_400(http, action):
    response = http.post(f"mlx/api/models/{action}", json={"model": "big"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "remote_model" and "big" in error["message"]


def test_the_upstreams_refusal_comes_back_in_our_shape(http, client):
    # A body mlx_lm.server cannot use: its refusal reaches the client as an OpenAI error.
    response = http.post("mlx/v1/chat/completions", json={"model": "big", "messages": "not a list"})
    assert 400 <= response.status_code <= 502
    assert set(response.json()["error"]) >= {"message", "type", "code"}
    assert client.chat.completions.create(model="big", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)


def test_without_a_token_a_remote_entry_is_refused(server):
    response = httpx.post(server.openai_base_url + "/chat/completions", json={"model": "big", "messages": []})
    assert response.status_code == 401


def test_responses_api_serves_a_remote_entry(client, answers):
    for row in answers()[:2]:
        response = client.responses.create(model="big", input=row["user"], temperature=0)
        assert response.output_text == row["answer"]
        assert response.usage.output_tokens > 0
    row = answers()[2]
    with client.responses.stream(model="big", input=row["user"], temperature=0) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == row["answer"]
    # The stored response continues like a local one's.
    follow = client.responses.create(model="big", input="What is 3 + 4?", previous_response_id=final.id, temperature=0)
    assert follow.output_text


def test_messages_api_serves_a_remote_entry(server, answers):
    import anthropic

    claude = anthropic.Anthropic(base_url=server.url + "mlx", api_key=server.token, max_retries=0)
    row = answers()[0]
    message = claude.messages.create(
        model="big", max_tokens=32, messages=[{"role": "user", "content": row["user"]}], extra_body={"temperature": 0}
    )
    assert message.content[0].text == row["answer"] and message.stop_reason == "end_turn"
    with claude.messages.stream(
        model="big", max_tokens=32, messages=[{"role": "user", "content": row["user"]}], extra_body={"temperature": 0}
    ) as stream:
        assert "".join(stream.text_stream) == row["answer"]


def test_responses_of_an_upstream_that_is_down_is_a_503(client):
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model="gone", input="Hi")
    assert caught.value.status_code == 503


def test_their_key_goes_behind_ours(client, answers):
    row = answers(adapter="upper")[0]
    reply = client.chat.completions.create(model="peer", messages=messages(row), temperature=0)
    assert reply.choices[0].message.content == row["answer"] and reply.model == "peer"
    # Without its key the peer refuses us: the remote server's fault, not the client's (whose key was right).
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="peer-without-key", messages=messages(row))
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_error" and "answered 401" in caught.value.body["message"]


def test_health_shows_a_server_that_refuses_our_key(http):
    deadline = time.monotonic() + 60
    while (entry := status_entry(http, "peer-without-key"))["state"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert entry["state"] == "failed" and ("answered 401" in entry["error"] or "answered 403" in entry["error"])
    assert status_entry(http, "peer")["state"] == "loaded"

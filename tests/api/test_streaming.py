"""Event streams: framing on the wire, concurrency, a client that goes away."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import pytest
from demo_requests import endless, messages
from server import start_jupyter

from mlx_workbench.api.formats import merge_deltas
from mlx_workbench.engine.requests import Delta, Finished, TokenLogprob

EVENT = re.compile(rb"data: (\{[^\n]*\})\n\n")


def test_sse_framing_byte_for_byte(http, answers):
    row = answers()[0]
    body = {
        "model": "demo",
        "messages": messages(row),
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with http.stream("POST", "mlx/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        raw = response.read()
    # Nothing but `data: <json>` events, each closed by a blank line, then [DONE].
    assert raw.endswith(b"data: [DONE]\n\n")
    events = EVENT.findall(raw[: -len(b"data: [DONE]\n\n")])
    assert b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n" == raw
    chunks = [json.loads(e) for e in events]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == row["answer"]
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_concurrent_streams(async_openai_client, answers):
    rows = (answers() + answers(adapter="upper"))[:8]

    async def ask(row):
        model = row["model"] + (f":{row['adapter']}" if row["adapter"] else "")
        stream = await async_openai_client.chat.completions.create(
            model=model, messages=messages(row), temperature=0, stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    replies = await asyncio.gather(*(ask(row) for row in rows))
    assert replies == [row["answer"] for row in rows]


@pytest.mark.parametrize("stream", [True, False])
def test_client_disconnect_cancels(jupyter_server, http, stream):
    max_tokens = 1500
    body = {
        "model": "demo",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": max_tokens,
        "logit_bias": endless(),
        "stream": stream,
    }
    generated_before = http.get("mlx/api/status").json()["generated_tokens"]
    if stream:
        with http.stream("POST", "mlx/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")  # generating; now hang up
    else:
        with pytest.raises(httpx.ReadTimeout):  # the client gives up waiting
            http.post("mlx/v1/chat/completions", json=body, timeout=0.3)
    deadline = time.monotonic() + 30
    while http.get("mlx/api/status").json()["active_requests"] and time.monotonic() < deadline:
        time.sleep(0.1)
    status = http.get("mlx/api/status").json()
    assert status["active_requests"] == 0
    assert status["generated_tokens"] - generated_before < max_tokens
    mode = "stream" if stream else "json"
    assert f"mlx chat demo ({mode}): client gone, cancelled" in jupyter_server.log()


@pytest.fixture(scope="module")
def eager_keepalive_server():
    server = start_jupyter("--MLXWorkbench.sse_keepalive=0.02")
    yield server
    server.stop()


@pytest.mark.slow  # a server of its own
def test_keepalive_comments_while_a_long_prompt_is_read(eager_keepalive_server):
    """The headers leave when the request is admitted; the prefill of a long
    prompt that follows is silence a proxy could take for a dead connection."""
    server = eager_keepalive_server
    prompt = "Repeat: " + " ".join(["apple river blue"] * 250)  # ~1,500 tokens of prefill
    body = {
        "model": "demo",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 4,
        "stream": True,
        "logit_bias": endless(),
    }
    with httpx.Client(base_url=server.url, headers={"Authorization": f"token {server.token}"}, timeout=60) as http:
        raw = http.post("mlx/v1/chat/completions", json=body).content
    opening, _, rest = raw.partition(b"\n\n")
    assert json.loads(opening.removeprefix(b"data: "))["choices"][0]["delta"]["role"] == "assistant"
    assert rest.startswith(b": keep-alive\n\n")  # before the first token
    assert raw.endswith(b"data: [DONE]\n\n")
    events = [json.loads(e) for e in EVENT.findall(raw)]
    assert events[-1]["choices"][0]["finish_reason"] == "length"


def test_merge_deltas_keeps_each_choice_in_order():
    """What a stream sends for a batch of events that queued up behind a slow client."""
    events = [
        Delta(0, "Once", [1], [TokenLogprob("Once", 1, -0.1)]),
        Delta(1, "A", [7]),
        Delta(0, " upon", [2], []),
        Finished(1, "stop"),
        Delta(0, " a", [3], [TokenLogprob(" a", 3, -0.2)]),
        Finished(0, "length"),
    ]
    merged = merge_deltas(events)
    assert merged == [
        Delta(0, "Once upon a", [1, 2, 3], [TokenLogprob("Once", 1, -0.1), TokenLogprob(" a", 3, -0.2)]),
        Delta(1, "A", [7]),
        Finished(1, "stop"),
        Finished(0, "length"),
    ]
    assert events[0] == Delta(0, "Once", [1], [TokenLogprob("Once", 1, -0.1)])  # the engine's events are left alone

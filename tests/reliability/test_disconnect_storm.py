"""A disconnect storm: 100 chat requests, streaming and not, each cut by its client at a
random point, by FIN or RST. The server must cancel every one of them promptly, keep
nothing of them, and answer the next request as if nothing happened."""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from demo_requests import STORY, answer, endless
from reliability_harness import admin, chat, wait_idle
from server import start_jupyter

REQUESTS = 100
MAX_TOKENS = 2000  # what an uncancelled request would generate (endless: no end token)
CUTS = ("mid-request", "waiting", "mid-stream")  # waiting: queued, prefilling or generating


@pytest.fixture(scope="module")
def server():
    server = start_jupyter("--MLXWorkbench.queue_limit=128")  # every request gets in; none is refused
    yield server
    server.stop()


@dataclass
class Cut:
    """Where one client hangs up."""

    stream: bool
    where: str
    start: float  # seconds after the storm begins
    amount: float  # mid-request: fraction of the request sent; waiting: seconds; mid-stream: events read
    reset: bool  # RST (SO_LINGER 0) rather than FIN

    @classmethod
    def plan(cls, rng: random.Random, stream: bool) -> Cut:
        where = rng.choices(CUTS, weights=(1, 4, 5) if stream else (1, 9, 0))[0]
        amount = {"mid-request": rng.random(), "waiting": rng.uniform(0, 1.5), "mid-stream": rng.randint(1, 40)}
        return cls(stream, where, rng.uniform(0, 0.5), amount[where], rng.random() < 0.5)


def http_request(server, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    address = urlsplit(server.url)
    head = (
        f"POST {address.path}mlx/v1/chat/completions HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Authorization: token {server.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def hang_up(server, cut: Cut) -> int:
    """Send one request and cut it as planned; returns the SSE events it read."""
    # Greedy: sampling at a temperature leaves MLX's random key in memory (14 bytes), once.
    body = {
        "model": "demo",
        "messages": [{"role": "user", "content": STORY}],
        "stream": cut.stream,
        "temperature": 0,
        "max_tokens": MAX_TOKENS,
        "logit_bias": endless(),
    }
    request = http_request(server, body)
    await asyncio.sleep(cut.start)
    address = urlsplit(server.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    events = 0
    try:
        if cut.where == "mid-request":  # a strict prefix: the server never gets a whole request
            request = request[: 1 + int((len(request) - 1) * cut.amount)]
        writer.write(request)
        await writer.drain()
        if cut.where == "waiting":
            await asyncio.sleep(cut.amount)
        while cut.where == "mid-stream" and events < cut.amount:
            data = await reader.read(65536)
            assert data, "the server ended the stream before the client cut it"
            events += data.count(b"data: ")
    finally:
        if cut.reset:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        await writer.wait_closed()  # closed now, not whenever this loop next runs
    return events


async def test_disconnect_storm(server):
    story = answer("demo", STORY)
    with admin(server) as http:
        # Warm up with one cut: the model is loaded, its batch has seen a cancel; the prompt
        # cache is empty (cancelled requests leave nothing in it). The state to come back to.
        await hang_up(server, Cut(stream=True, where="mid-stream", start=0, amount=5, reset=False))
        before = wait_idle(http)
        log_start = len(server.log())

        rng = random.Random(9)
        cuts = [Cut.plan(rng, stream=i % 2 == 0) for i in range(REQUESTS)]
        await asyncio.wait_for(asyncio.gather(*(hang_up(server, cut) for cut in cuts)), timeout=120)

        after = wait_idle(http, timeout=60)
        log = server.log()[log_start:]
        assert after["active_requests"] == after["queued_requests"] == 0, after

        # One line per request that reached a handler, and every one of them says it was cut.
        outcomes = re.findall(r"mlx chat demo \((?:stream|json)\): (.*)", log)
        cancelled = server.cancelled(since=log_start)
        assert all(o.startswith("client gone") for o in outcomes), outcomes
        counts = {where: sum(c.where == where for c in cuts) for where in CUTS}
        assert counts["mid-stream"] <= len(outcomes) <= REQUESTS - counts["mid-request"], (counts, outcomes)
        # Each was cancelled in the engine, and within one decode step: the engine stamps a
        # cancel with its step counter when the handler asks and compares when it removes the
        # request from the batch; more than 1 would mean a request kept generating after the
        # server knew its client was gone (jobs are run before every step, so it should be 0
        # unless the cancel lands between the jobs and the step).
        assert after["cancelled_requests"] - before["cancelled_requests"] == len(cancelled)
        assert after["steps_after_cancel"] <= 1, after
        # And the handlers noticed promptly: no request came near what it would have
        # generated uncancelled (the cuts come within 1.5 s or 40 events of the answer).
        assert max(cancelled) < MAX_TOKENS / 2, cancelled
        assert "Traceback" not in log and "Uncaught exception" not in log, log

        # Nothing of the storm stayed behind: MLX memory is what it was.
        assert after["memory"]["active"] == before["memory"]["active"], (before["memory"], after["memory"])
        assert [(e["id"], e["state"], e["active_requests"]) for e in after["entries"]] == [("demo", "loaded", 0)]

        # And the next requests are answered exactly.
        assert chat(http, STORY, stream=True) == story
        assert chat(http, STORY, stream=False) == story
    print(
        f"\ndisconnect storm: {REQUESTS} requests, {counts}, {len(cancelled)} cancelled in the engine, "
        f"tokens per cancelled request max {max(cancelled)}, steps after cancel {after['steps_after_cancel']}, "
        f"generated {after['generated_tokens'] - before['generated_tokens']} tokens"
    )

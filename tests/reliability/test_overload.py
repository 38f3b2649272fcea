"""Overload: 64 concurrent clients against a queue of 16. Each request is answered
exactly or refused with 429 and Retry-After; nothing hangs; mlx/health stays quick."""

from __future__ import annotations

import asyncio

import openai
import pytest
from demo_requests import ANSWERS, STORY, answer
from reliability_harness import admin, health_probe, wait_idle
from server import start_jupyter

from mlx_workbench.engine.config import EngineConfig

CLIENTS = 64
QUEUE_LIMIT = 16
BATCH = EngineConfig().completion_batch_size  # requests generating at once
HEALTH_MS = 100


@pytest.fixture(scope="module")
def server():
    server = start_jupyter(f"--MLXWorkbench.queue_limit={QUEUE_LIMIT}")
    yield server
    server.stop()


async def ask(client: openai.AsyncOpenAI, user: str, stream: bool) -> str | openai.RateLimitError:
    """The demo model's greedy answer to `user`, or the 429 that refused it."""
    messages = [{"role": "user", "content": user}]
    try:
        if stream:
            chunks = await client.chat.completions.create(model="demo", messages=messages, temperature=0, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        reply = await client.chat.completions.create(model="demo", messages=messages, temperature=0)
        return reply.choices[0].message.content
    except openai.RateLimitError as e:
        return e


async def test_overload_answers_or_refuses_each_request(server):
    short = [r["user"] for r in ANSWERS if r["model"] == "demo" and not r["adapter"] and not r["system"]]
    # Every other client asks for the story, so that the batch stays full while the rest arrive.
    users = [STORY if i % 2 == 0 else short[i % len(short)] for i in range(CLIENTS)]
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key=server.token, max_retries=0, timeout=120)
    async with client:
        assert await ask(client, "Hello!", stream=False) == answer("demo", "Hello!")  # loaded: overload is the test
        with health_probe(server) as health:
            # No deadlock: every client has its outcome within the bound.
            results = await asyncio.wait_for(
                asyncio.gather(*(ask(client, user, stream=i % 4 < 2) for i, user in enumerate(users))), timeout=240
            )

    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    for user, result in zip(users, results):
        assert isinstance(result, openai.RateLimitError) or result == answer("demo", user), (user, result)
    for error in refused:
        assert error.body["code"] == "queue_full" and int(error.response.headers["retry-after"]) >= 1
    # A 429 means the batch and the queue were full then, and each of those requests was answered.
    completed = CLIENTS - len(refused)
    assert refused and completed >= BATCH + QUEUE_LIMIT, (completed, len(refused))

    # Health answered quickly throughout, from the Tornado loop, whatever the device thread did.
    assert health.answers == {(200, "ok")}, health.answers
    assert len(health.samples) > 20 and health.max_ms < HEALTH_MS, sorted(health.samples)[-5:]
    with admin(server) as http:
        status = wait_idle(http)
    assert status["active_requests"] == status["queued_requests"] == 0, status
    print(
        f"\noverload: {CLIENTS} clients, queue {QUEUE_LIMIT}: {completed} completed, {len(refused)} refused (429); "
        f"health max {health.max_ms:.1f} ms over {len(health.samples)} polls"
    )

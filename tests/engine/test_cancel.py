"""Cancellation: by id, by abandoning the stream, while queued; the batch goes on."""

from __future__ import annotations

import asyncio
import threading
import time

from engine_helpers import chat, texts

from mlx_workbench.engine.requests import Delta, Done, Finished, Started


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_cancel_mid_stream_leaves_the_batch(engine):
    stream = engine.generate(chat("hello", n=2, max_tokens=400))
    events = []
    for event in stream:
        events.append(event)
        if sum(isinstance(e, Delta) for e in events) == 3:
            engine.cancel(stream_request_id(engine))
    finished = [e for e in events if isinstance(e, Finished)]
    assert sorted(e.index for e in finished) == [0, 1] and {e.reason for e in finished} == {"cancelled"}
    assert isinstance(events[-1], Done) and events[-1].usage.completion_tokens < 400
    wait_until(lambda: engine.status().active_requests == 0)
    assert engine.batch("tiny") is None  # out of the generator too: its idle batch is gone


def stream_request_id(engine) -> str:
    (request_id,) = engine.request_ids()
    return request_id


async def test_abandoning_agenerate_cancels_while_others_continue(engine):
    other = asyncio.create_task(collect(engine, chat("the quick brown fox", max_tokens=60)))
    stream = engine.agenerate(chat("hello", max_tokens=400))
    deltas = 0
    async for event in stream:
        deltas += isinstance(event, Delta)
        if deltas == 2:
            break
    await stream.aclose()
    events = await other
    assert isinstance(events[-1], Done) and events[-1].usage.completion_tokens == 60
    await asyncio.to_thread(wait_until, lambda: engine.status().active_requests == 0)
    assert engine.status().queued_requests == 0


async def collect(engine, request) -> list:
    return [event async for event in engine.agenerate(request)]


def test_closing_generate_cancels(engine):
    stream = engine.generate(chat("hello", max_tokens=400))
    next(stream)
    stream.close()
    wait_until(lambda: engine.status().active_requests == 0 and not engine.request_ids())
    # the engine still serves
    assert texts(list(engine.generate(chat("hello", max_tokens=4))))


def test_cancel_while_waiting_for_room_in_the_batch(make_engine):
    engine = make_engine(completion_batch_size=1)
    busy = engine.generate(chat("hello", max_tokens=400))
    next(busy)
    waiting = chat("world", max_tokens=50)
    results = []
    worker = threading.Thread(target=lambda: results.extend(engine.generate(waiting)))
    worker.start()
    wait_until(lambda: engine.status().queued_requests == 1)
    engine.cancel(waiting.id)
    worker.join(10)
    assert len(results) == 1 and isinstance(results[0], Done)  # never started
    assert results[0].usage.completion_tokens == 0
    assert engine.status().queued_requests == 0
    busy.close()


def test_a_consumer_whose_event_loop_ends_cancels(engine):
    async def read_two():
        stream = engine.agenerate(chat("hello", max_tokens=400))
        return [await anext(stream), await anext(stream)]  # never closed by us

    first = asyncio.run(read_two())  # asyncio.run closes the abandoned generator
    assert isinstance(first[0], Started)
    wait_until(lambda: engine.status().active_requests == 0 and not engine.request_ids())

"""Low-priority requests (inline completions) wait behind normal ones for a place in the
batch, whatever order they came in; and a code-completion request runs on a real model."""

from __future__ import annotations

import threading

from engine_helpers import chat, texts
from test_cancel import wait_until

from mlx_workbench.engine.requests import GenerationRequest, Infill, SamplingParams, Started


def completion_at_cursor(code: str) -> GenerationRequest:
    sampling = SamplingParams(max_tokens=8, temperature=0.0)
    return GenerationRequest(model="tiny", infill=Infill(code, "\n"), sampling=sampling, priority="low")


def test_a_normal_request_overtakes_waiting_low_priority_ones(make_engine):
    engine = make_engine(completion_batch_size=1)
    busy = engine.generate(chat("hello", max_tokens=400))
    assert isinstance(next(busy), Started)  # the batch's one place is taken
    started: list[str] = []
    results: dict[str, list] = {}

    def run(name: str, request: GenerationRequest) -> None:
        events = []
        for event in engine.generate(request):
            if isinstance(event, Started):
                started.append(name)
            events.append(event)
        results[name] = events

    workers = []
    for queued, (name, request) in enumerate(
        [("low 1", completion_at_cursor("def f(")), ("low 2", completion_at_cursor("x = ")), ("chat", chat("hi"))],
        start=1,
    ):
        workers.append(threading.Thread(target=run, args=(name, request)))
        workers[-1].start()
        wait_until(lambda queued=queued: engine.status().queued_requests == queued)
    busy.close()  # room: the chat that came last goes first, then the completions in their order
    for worker in workers:
        worker.join(60)
    assert started == ["chat", "low 1", "low 2"]
    assert all(texts(results[name]) for name in started)  # each ran to its end

"""The engine's Prometheus metrics and recent figures, driven in-process (no server): each
test reads prometheus_client's registry before and after, since the metrics are the
process's and other tests count into them too."""

from __future__ import annotations

import time

import pytest
from engine_helpers import chat, texts
from prometheus_client import REGISTRY

from mlx_workbench.engine.errors import ModelNotFound
from mlx_workbench.engine.requests import Done, Finished


class Samples:
    """Differences of the registry's samples since this object was made."""

    def __init__(self):
        self.before = self._all()

    @staticmethod
    def _all() -> dict:
        return {(s.name, frozenset(s.labels.items())): s.value for m in REGISTRY.collect() for s in m.samples}

    def added(self, name: str, **labels) -> float:
        key = (f"mlx_workbench_{name}", frozenset(labels.items()))
        return self._all().get(key, 0.0) - self.before.get(key, 0.0)


def test_requests_are_counted_and_timed(engine):
    samples = Samples()
    tiny = {"model": "tiny", "adapter": ""}
    runs = [list(engine.generate(chat(text, max_tokens=6))) for text in ("one", "two")]
    usages = [run[-1].usage for run in runs]
    assert all(isinstance(run[-1], Done) for run in runs)
    reasons = [e.reason for run in runs for e in run if isinstance(e, Finished)]
    for reason in set(reasons):
        assert samples.added("request_success_total", finished_reason=reason, **tiny) == reasons.count(reason)
    assert samples.added("time_to_first_token_seconds_count", **tiny) == 2
    assert samples.added("e2e_request_latency_seconds_count", **tiny) == 2
    assert samples.added("generation_tokens_total", **tiny) == sum(u.completion_tokens for u in usages)
    assert samples.added("prompt_tokens_total", **tiny) == sum(u.prompt_tokens for u in usages)
    assert samples.added("request_time_per_output_token_seconds_count", **tiny) == sum(
        u.completion_tokens > 1 for u in usages
    )
    assert samples.added("batch_size_count", **tiny) > 0
    recent = engine.status().recent
    assert recent.requests >= 2 and recent.ttft_p50 is not None and sum(recent.tokens_per_second) > 0


def test_a_cancelled_request_counts_as_cancelled(engine):
    samples = Samples()
    stream = engine.generate(chat("hello", max_tokens=400))
    next(stream)  # Started
    stream.close()  # cancels
    deadline = time.monotonic() + 30
    while engine.request_ids() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert samples.added("request_success_total", model="tiny", adapter="", finished_reason="cancelled") == 1


def test_loads_failures_and_evictions(make_engine, tmp_path):
    engine = make_engine(max_loaded=1)
    samples = Samples()
    engine.load("tiny").result(30)
    engine.load("wide").result(30)  # evicts tiny
    with pytest.raises(ModelNotFound):
        engine.load(str(tmp_path / "nowhere")).result(30)
    texts(list(engine.generate(chat("hi", model="wide", max_tokens=2))))
    assert samples.added("model_load_seconds_count", model="tiny", adapter="") == 1
    assert samples.added("model_load_seconds_count", model="wide", adapter="") == 1
    assert samples.added("model_evictions_total", model="tiny", adapter="") == 1
    assert samples.added("model_load_failures_total", model=str(tmp_path / "nowhere"), adapter="") == 1

"""Start, stop, failures on the device thread, restarts, and a clean process exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from engine_helpers import chat, texts

from mlx_workbench.engine import engine as engine_module
from mlx_workbench.engine import submission as submission_module
from mlx_workbench.engine.errors import EngineNotReady, EngineStopped, GenerationFailed
from mlx_workbench.engine.requests import Delta, Done, Failed, Started


def test_a_job_that_raises_fails_its_caller_only(engine):
    def boom():
        raise ValueError("job failed")

    with pytest.raises(ValueError):
        engine.device.submit(boom).result(10)
    assert engine.status().state == "running" and engine.status().restarts == 0
    assert texts(list(engine.generate(chat("hi", max_tokens=3))))


def test_a_request_that_raises_on_the_device_thread_fails_alone(engine, monkeypatch):
    def broken_logprob(*args):
        raise RuntimeError("logprob broke")

    monkeypatch.setattr(submission_module, "token_logprob", broken_logprob)
    healthy = engine.generate(chat("hello", max_tokens=30))
    assert isinstance(next(healthy), Started)
    events = list(engine.generate(chat("hi", logprobs=True)))
    assert isinstance(events[-1], Failed) and "logprob broke" in events[-1].error.message
    assert isinstance(events[-1].error, GenerationFailed)
    assert isinstance(list(healthy)[-1], Done)
    assert engine.status().restarts == 0 and engine.status().active_requests == 0


def test_a_model_that_raises_fails_its_batch_only(engine):
    engine.load("tiny").result(30)
    other = engine.generate(chat("hello", model="wide", max_tokens=40))
    assert isinstance(next(other), Started)
    module = engine.scheduler.pool.entries["tiny"].module
    healthy = type(module)

    def broken_forward(self, *args, **kwargs):
        raise RuntimeError("the model broke")

    module.__class__ = type("Broken", (healthy,), {"__call__": broken_forward})
    events = list(engine.generate(chat("hi")))
    assert isinstance(events[-1], Failed) and isinstance(events[-1].error, GenerationFailed)
    assert "the model broke" in events[-1].error.message
    assert isinstance(list(other)[-1], Done)
    module.__class__ = healthy
    assert texts(list(engine.generate(chat("hi", max_tokens=3))))


def kill_device_thread(engine) -> None:
    scheduler = engine.scheduler

    def die():
        raise RuntimeError("device thread crash")

    scheduler.step = die


def test_preloaded_models_load_at_start_and_after_a_restart(make_engine):
    engine = make_engine(preload=["tiny:a", "wide"])
    wait_for(lambda: loaded(engine) == {"tiny", "tiny:a", "wide"})
    kill_device_thread(engine)
    list(engine.generate(chat("hello", max_tokens=5)))
    wait_for(lambda: engine.status().restarts == 1 and loaded(engine) == {"tiny", "tiny:a", "wide"})


def loaded(engine) -> set[str]:
    return {e.id for e in engine.status().entries if e.state == "loaded"}


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_device_thread_death_is_reported_and_restarted(engine):
    stream = engine.generate(chat("hello", max_tokens=400))
    assert isinstance(next(stream), Started)
    first = engine.device
    kill_device_thread(engine)
    events = list(stream)
    assert isinstance(events[-1], Failed) and isinstance(events[-1].error, EngineNotReady)
    assert first.wait_closed(10)
    status = engine.status()
    assert status.restarts == 1 and status.state == "running" and "device thread crash" in status.error
    assert texts(list(engine.generate(chat("hi", max_tokens=3))))  # the new thread loads again


def test_too_many_deaths_leave_the_engine_failed(engine, monkeypatch):
    monkeypatch.setattr(engine_module, "MAX_RESTARTS", 1)
    for _ in range(2):
        device = engine.device
        kill_device_thread(engine)
        list(engine.generate(chat("hello", max_tokens=5)))
        assert device.wait_closed(10)
    status = engine.status()
    assert status.state == "failed" and "crash" in status.error
    with pytest.raises(EngineNotReady):
        next(engine.generate(chat("hi")))


def test_stop_fails_in_flight_requests_and_releases_models(engine):
    results = []
    started = threading.Event()

    def consume():
        for event in engine.generate(chat("hello", n=2, max_tokens=10_000)):
            results.append(event)
            if isinstance(event, Delta):
                started.set()

    worker = threading.Thread(target=consume)
    worker.start()
    assert started.wait(30)
    engine.stop()
    worker.join(10)
    assert isinstance(results[-1], Failed) and isinstance(results[-1].error, EngineStopped)
    assert not engine.device.alive
    assert engine.status().state == "stopped"
    assert engine.scheduler.pool.entries == {}
    with pytest.raises(EngineNotReady):
        next(engine.generate(chat("hi")))


SCRIPT = """
import sys, threading
from mlx_workbench.engine.config import EngineConfig, ModelSpec
from mlx_workbench.engine.engine import Engine
from mlx_workbench.engine.requests import GenerationRequest, SamplingParams

engine = Engine(EngineConfig(models={"tiny": ModelSpec("tiny", sys.argv[1])}))
engine.start()
request = GenerationRequest(model="tiny", prompt="hello", sampling=SamplingParams(max_tokens=100000))
stream = engine.generate(request)
for _, event in zip(range(20), stream):
    pass
if sys.argv[2] == "stop":
    engine.stop()
print("exiting", flush=True)
"""


@pytest.mark.slow  # a Python process of its own, MLX imported afresh
@pytest.mark.parametrize("how", ["stop", "exit without stop"])
def test_the_process_exits_0_after_generating(models, how):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(models["tiny"]), how],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "exiting" in done.stdout

"""A distributed entry on two local ranks (`mlx.launch --hosts 127.0.0.1,127.0.0.1 --backend
ring`): started on first use, its greedy answers those of the single-process model, and no
rank left behind by an unload or by the server stopping."""

from __future__ import annotations

import json
import time
from urllib.parse import urlparse

import httpx
import openai
import psutil
import pytest
from demo_requests import messages
from server import start_jupyter
from upstream import DEMO_PATH, serving

from mlx_workbench.demo import DEMO_MODELS

SHARDED = {"path": DEMO_PATH, "distributed": {"hosts": ["127.0.0.1", "127.0.0.1"], "backend": "ring"}}


@pytest.fixture(scope="module")
def server():
    models = {**DEMO_MODELS, "sharded": SHARDED}
    jupyter = start_jupyter(f"--MLXWorkbench.models={json.dumps(models)}")
    yield jupyter
    jupyter.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.openai_base_url, api_key=server.token, max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"token {server.token}"}, timeout=300) as c:
        yield c


def entry(http) -> dict:
    return next(e for e in http.get("mlx/api/status").json()["entries"] if e["id"] == "sharded")


def ranks_gone(port: int, timeout: float = 30.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := serving(port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_answers_equal_the_single_process_models(client, http, answers):
    assert entry(http)["state"] == "unloaded"  # nothing started before first use
    for row in answers()[:4]:
        sharded = client.chat.completions.create(model="sharded", messages=messages(row), temperature=0)
        local = client.chat.completions.create(model="demo", messages=messages(row), temperature=0)
        assert sharded.choices[0].message.content == local.choices[0].message.content == row["answer"]
    stream = client.chat.completions.create(model="sharded", messages=messages(row), temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == row["answer"]
    started = entry(http)
    assert started["state"] == "loaded" and started["remote"].startswith("http://127.0.0.1:")
    port = urlparse(started["remote"]).port
    assert len(serving(port)) >= 3  # the launcher and two ranks


def test_unload_leaves_no_process(http):
    loaded = http.post("mlx/api/models/load", json={"model": "sharded", "wait": True}).json()["entry"]
    assert loaded["state"] == "loaded"
    port = urlparse(loaded["remote"]).port
    ranks = serving(port)
    assert ranks
    unloaded = http.post("mlx/api/models/unload", json={"model": "sharded"}).json()["entry"]
    assert unloaded["state"] == "unloaded"
    assert ranks_gone(port) == []
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in ranks)


def test_server_shutdown_leaves_no_rank():
    models = {"sharded": SHARDED}
    jupyter = start_jupyter(f"--MLXWorkbench.models={json.dumps(models)}", "--MLXWorkbench.default_model=sharded")
    try:
        with httpx.Client(base_url=jupyter.url, headers={"Authorization": f"token {jupyter.token}"}, timeout=300) as h:
            loaded = h.post("mlx/api/models/load", json={"model": "sharded", "wait": True}).json()["entry"]
        port = urlparse(loaded["remote"]).port
        assert serving(port)
    finally:
        jupyter.stop()
    assert ranks_gone(port) == []


def test_a_rank_that_dies_fails_the_entry_with_its_log(http, client, answers):
    loaded = http.post("mlx/api/models/load", json={"model": "sharded", "wait": True}).json()["entry"]
    port = urlparse(loaded["remote"]).port
    ranks = [p for p in serving(port) if not any(part.endswith("mlx.launch") for part in p.cmdline())]
    assert len(ranks) == 2
    ranks[-1].kill()
    deadline = time.monotonic() + 90  # the health poll finds it
    while (failed := entry(http))["state"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert failed["state"] == "failed" and "mlx.launch exited" in failed["error"], failed
    assert ranks_gone(port) == []
    # The next request starts the group again.
    row = answers()[0]
    reply = client.chat.completions.create(model="sharded", messages=messages(row), temperature=0)
    assert reply.choices[0].message.content == row["answer"]
    http.post("mlx/api/models/unload", json={"model": "sharded"})


def test_an_idle_group_stops_after_the_idle_timeout(answers):
    models = {"sharded": SHARDED}
    jupyter = start_jupyter(
        f"--MLXWorkbench.models={json.dumps(models)}",
        "--MLXWorkbench.default_model=sharded",
        "--MLXWorkbench.idle_timeout=3",
    )
    try:
        client = openai.OpenAI(base_url=jupyter.openai_base_url, api_key=jupyter.token, max_retries=0, timeout=300)
        row = answers()[0]
        reply = client.chat.completions.create(model="sharded", messages=messages(row), temperature=0)
        assert reply.choices[0].message.content == row["answer"]
        with httpx.Client(base_url=jupyter.url, headers={"Authorization": f"token {jupyter.token}"}) as h:
            port = urlparse(entry(h)["remote"]).port
            deadline = time.monotonic() + 90  # idle for 3 s, seen by the next health check (every 10 s)
            while entry(h)["state"] != "unloaded" and time.monotonic() < deadline:
                time.sleep(0.5)
            assert entry(h)["state"] == "unloaded"
        assert ranks_gone(port) == []
    finally:
        jupyter.stop()

"""A local and a remote entry side by side in a real kernel: compare() streams both and gets
the same greedy answer (the remote entry is a real mlx_lm.server on the same demo model),
and %mlx_models and %mlx_status show the remote entry with its server and latency."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest
from demo_requests import answer
from server import start_jupyter
from upstream import DEMO_PATH, start_upstream
from widgets_harness import REPO, Kernel

from mlx_workbench.demo import DEMO_MODELS


@pytest.fixture(scope="module")
def server():
    upstream = start_upstream()
    models = {**DEMO_MODELS, "big": {"url": upstream.url, "model": DEMO_PATH}}
    jupyter = start_jupyter(f"--MLXWorkbench.models={json.dumps(models)}")
    yield jupyter
    jupyter.stop()
    upstream.stop()


@pytest.fixture(scope="module")
def kernel(server):
    env = {
        **os.environ,
        "MLX_WORKBENCH_URL": server.url,
        "MLX_WORKBENCH_TOKEN": server.token,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    kernel = Kernel(env)
    kernel.run("import mlx_workbench\n%load_ext mlx_workbench")
    yield kernel
    kernel.shutdown()


def test_compare_a_local_and_a_remote_entry(kernel):
    prompt = "What is the capital of France?"
    records = kernel.value(f"mlx_workbench.compare({prompt!r}, ['demo', 'big'])", timeout=180)
    assert [r["target"] for r in records] == ["demo", "big"]
    assert [r["answer"] for r in records] == [answer("demo", prompt)] * 2
    for record in records:
        assert record["error"] is None and record["finish_reason"] == "stop"
        assert record["completion_tokens"] > 0


def test_the_magics_show_the_remote_entry(kernel, server):
    headers = {"Authorization": f"token {server.token}"}
    deadline = time.monotonic() + 60  # the first health check's latency
    while time.monotonic() < deadline:
        entries = httpx.get(server.url + "mlx/api/status", headers=headers).json()["entries"]
        if next(e for e in entries if e["id"] == "big")["latency_ms"] is not None:
            break
        time.sleep(0.5)
    models = kernel.run("%mlx_models")
    big = next(line for line in models.splitlines() if line.startswith("big "))
    assert "loaded" in big and "remote http://127.0.0.1:" in big and " ms" in big
    status = kernel.run("%mlx_status")
    assert "remote big:" in status and "loaded, remote http://127.0.0.1:" in status

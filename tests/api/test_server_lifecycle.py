"""The extension's lifetime: configuration, what kernels inherit, shutdown."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from jupyter_client import BlockingKernelClient
from jupyter_core.paths import jupyter_runtime_dir
from demo_requests import endless
from server import start_jupyter

from mlx_workbench.app import device_memory, model_spec, parse_memory


def test_memory_sizes():
    assert parse_memory(None) is None
    assert parse_memory(123) == 123
    assert parse_memory("8GB") == parse_memory("8 GiB") == 8 * 2**30
    assert parse_memory("512mb") == 512 * 2**20
    assert parse_memory("1.5G") == int(1.5 * 2**30)
    assert parse_memory("50%") == device_memory() // 2
    with pytest.raises(ValueError):
        parse_memory("lots")


def test_model_specs():
    assert model_spec("q", "mlx-community/x").path == "mlx-community/x"
    spec = model_spec("m", {"path": "/m", "adapters": {"a": "/a"}})
    assert (spec.name, spec.path, spec.adapters) == ("m", "/m", {"a": "/a"})
    with pytest.raises(ValueError):
        model_spec("m", {"adapters": {}})


def test_kernels_inherit_url_and_token(jupyter_server, http):
    kernel_id = http.post("api/kernels", json={"name": "python3"}).json()["id"]
    client = BlockingKernelClient(connection_file=str(Path(jupyter_runtime_dir()) / f"kernel-{kernel_id}.json"))
    try:
        client.load_connection_file()
        client.start_channels()
        deadline = time.monotonic() + 60  # without a manager, wait_for_ready gives up unless the heart beats
        while not client.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        client.wait_for_ready(timeout=60)
        printed = []
        reply = client.execute_interactive(
            "import os; print(os.environ['MLX_WORKBENCH_URL'], os.environ['MLX_WORKBENCH_TOKEN'])",
            output_hook=lambda msg: msg["msg_type"] == "stream" and printed.append(msg["content"]["text"]),
            timeout=60,
        )
        assert reply["content"]["status"] == "ok"
        assert "".join(printed).split() == [jupyter_server.url, jupyter_server.token]
    finally:
        client.stop_channels()
        http.delete(f"api/kernels/{kernel_id}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_shutdown_with_streams_running_exits_0(sig):
    server = start_jupyter()
    last_events: list[dict] = []
    generating = threading.Barrier(3)

    def stream():
        body = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}], "stream": True,
                "max_tokens": 1500, "logit_bias": endless()}
        headers = {"Authorization": f"token {server.token}"}
        url = server.openai_base_url + "/chat/completions"
        with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
            events = (line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: "))
            last = next(events)
            generating.wait()  # every stream is generating: now the server is told to stop
            last = [last, *events][-1]
        last_events.append(json.loads(last))

    threads = [threading.Thread(target=stream) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        generating.wait(timeout=60)
        server.proc.send_signal(sig)
        for t in threads:
            t.join(timeout=30)
        assert server.proc.wait(timeout=30) == 0, server.log()
    finally:
        server.stop()
    # Each stream was told why it ended, in-band.
    assert [e.get("error", {}).get("code") for e in last_events] == ["engine_stopped"] * 2, last_events
    assert "Traceback" not in server.log()

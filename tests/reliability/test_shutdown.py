"""Shutdown: stopping the Jupyter server while streams run ends each with a clear error,
releases the models and exits 0 within 5 s of the signal; a kernel restarted in the
middle of %%mlx_chat leaves the server healthy with nothing active."""

from __future__ import annotations

import json
import re
import signal
import threading
import time

import httpx
import pytest
from demo_requests import STORY, answer, endless, other_users
from kernel_harness import Kernel, reply
from reliability_harness import wait_idle
from server import start_jupyter

STREAMS = 4
EXIT_SECONDS = 5
# Events each stream reads before the signal. MLX's CPU backend runs the compiler through
# system() when it first compiles a kernel (the first steps of a batch), and system()
# ignores SIGINT meanwhile: a SIGINT then is lost, as a first Ctrl-C in a terminal would be.
SETTLED = 20


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopping_the_server_ends_streams_releases_models_and_exits_0(sig):
    server = start_jupyter()
    last_events: list[dict] = []
    generating = threading.Barrier(STREAMS + 1)

    def stream():
        body = {
            "model": "demo",
            "messages": [{"role": "user", "content": STORY}],
            "stream": True,
            "temperature": 0,
            "max_tokens": 1500,
            "logit_bias": endless(),
        }
        headers = {"Authorization": f"token {server.token}"}
        with httpx.stream(
            "POST", server.openai_base_url + "/chat/completions", json=body, headers=headers, timeout=60
        ) as response:
            events = (line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: "))
            last = [next(events) for _ in range(SETTLED)][-1]
            generating.wait()  # every stream is generating: now the server is told to stop
            last = [last, *events][-1]
        last_events.append(json.loads(last))

    threads = [threading.Thread(target=stream) for _ in range(STREAMS)]
    try:
        for t in threads:
            t.start()
        generating.wait(timeout=60)
        signalled = time.monotonic()
        server.proc.send_signal(sig)
        code = server.proc.wait(timeout=30)
        seconds = time.monotonic() - signalled
        for t in threads:
            t.join(timeout=30)
    finally:
        server.stop()
    log = server.log()
    assert code == 0, log
    assert seconds < EXIT_SECONDS, log
    # Each stream was told why it ended, in-band.
    assert [e.get("error", {}).get("code") for e in last_events] == ["engine_stopped"] * STREAMS, last_events
    # The models were released on the device thread before the process ended: what MLX
    # still holds is its own state (16 bytes here), not the demo model's 1.2 MB.
    (in_use,) = re.findall(r"mlx_workbench: stopped; released demo; MLX memory in use (\d+) bytes", log)
    assert int(in_use) < 1024, log
    assert "Traceback" not in log
    print(f"\nshutdown on {signal.Signals(sig).name} with {STREAMS} streams: exit 0 after {seconds:.2f} s")


def test_kernel_restart_mid_answer_leaves_the_server_idle(jupyter_server, http):
    body = {"model": "demo", "messages": [{"role": "user", "content": STORY}], "temperature": 0}
    story = http.post("mlx/v1/chat/completions", json=body).json()
    assert story["choices"][0]["message"]["content"] == answer("demo", STORY)
    kernel_id = http.post("api/kernels", json={"name": "python3"}).json()["id"]
    kernel = Kernel(client=jupyter_server.kernel_client(kernel_id))
    try:
        kernel.execute("%load_ext mlx_workbench\n%config MLXMagics.update_interval = 0")
        log_start = len(jupyter_server.log())
        with other_users(jupyter_server):
            kernel.client.execute(f"%%mlx_chat --model demo\n{STORY}")
            while True:  # until the answer is streaming into the cell
                msg = kernel.client.get_iopub_msg(timeout=60)
                if msg["msg_type"] == "update_display_data":
                    if len(msg["content"]["data"]["text/plain"].split()) > 3:
                        break
            assert http.post(f"api/kernels/{kernel_id}/restart").status_code == 200
            # The server saw the kernel's connection go and cancelled its answer before the end.
            deadline = time.monotonic() + 30
            while not (cut := jupyter_server.cancelled(since=log_start)):
                assert time.monotonic() < deadline, jupyter_server.log()[log_start:]
                time.sleep(0.1)
        assert 3 < cut[0] < story["usage"]["completion_tokens"], cut
        status = wait_idle(http)
        assert status["active_requests"] == status["queued_requests"] == 0, status
        health = http.get("mlx/health").json()
        assert (health["status"], health["engine"], health["restarts"]) == ("ok", "running", 0)

        # The restarted kernel chats again.
        kernel.client.wait_for_ready(timeout=60)
        kernel.execute("%load_ext mlx_workbench")
        assert reply(kernel.execute("%%mlx_chat --model demo\nWhat is 3 + 4?")) == answer("demo", "What is 3 + 4?")
    finally:
        kernel.client.stop_channels()
        http.delete(f"api/kernels/{kernel_id}")
    print(f"\nkernel restart mid-answer: cancelled after {cut[0]} tokens of the story")

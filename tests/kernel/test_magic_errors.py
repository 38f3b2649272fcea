"""Expected failures read like a person wrote them, and keep what already arrived."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest
from demo_requests import other_users
from kernel_harness import Kernel, answer, error_of, history, kernel_env, reply, server_post
from server import free_port, start_jupyter

from mlx_workbench.demo import DEMO_MODELS
from mlx_workbench.engine.config import EngineConfig


@pytest.fixture
def lonely_kernel(tmp_path):
    """A kernel no server started, on a machine where no Jupyter server runs."""
    kernel = Kernel(kernel_env(MLX_WORKBENCH_URL="", JUPYTER_RUNTIME_DIR=str(tmp_path)))
    kernel.execute("%load_ext mlx_workbench")
    yield kernel
    kernel.shutdown()


def test_no_server_says_how_to_start_one(lonely_kernel):
    for code in ["%%mlx_chat\nHello!", "%mlx_models", "%mlx_status"]:
        message = error_of(lonely_kernel.execute(code))
        assert message.startswith("No mlx_workbench server found.")
        assert "jupyter lab" in message and "%mlx_connect URL" in message


def test_a_server_that_went_away(kernel_for):
    kernel = kernel_for(f"http://127.0.0.1:{free_port()}/")
    message = error_of(kernel.execute("%%mlx_chat --model demo\nHello!"))
    assert message.startswith("Cannot reach the mlx_workbench server at http://127.0.0.1:")
    assert "Is it still running?" in error_of(kernel.execute("%mlx_status"))


def test_busy_server_says_so(kernel_for):
    """No room in the batch (two requests of 16 choices fill it) and no queue: 429."""
    busy = start_jupyter("--MLXWorkbench.queue_limit=0")
    try:
        kernel = kernel_for(busy.url, busy.token)
        server_post(busy, "mlx/api/models/load", {"model": "demo", "wait": True})  # no request waits for it
        with other_users(busy, streams=2, model="demo", n=EngineConfig().completion_batch_size // 2):
            message = error_of(kernel.execute("%%mlx_chat --model demo\nHello!"))
        assert message.startswith("The server is busy")
        assert history(kernel) == "No chat named 'default'. Chats: none yet.\n"
    finally:
        busy.stop()


def test_wrong_token(kernel_for, server):
    kernel = kernel_for(server.url, "not-the-token")
    for code in ["%%mlx_chat --model demo\nHello!", "%mlx_models"]:
        message = error_of(kernel.execute(code))
        assert message.startswith(f"The mlx_workbench server at {server.url} refused the token (40")
        assert message.endswith("Connect with the right one: `%mlx_connect URL --token TOKEN`.")


@pytest.fixture
def mlx_lm_server():
    """mlx_lm's own OpenAI server on the demo model: any OpenAI endpoint must do for chat."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlx_lm", "server", "--model", DEMO_MODELS["demo"]["path"], "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=2)
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "mlx_lm server did not start"
            time.sleep(0.25)
    yield url
    proc.terminate()
    proc.wait(10)


def test_connect_to_any_openai_endpoint_and_back(kernel, mlx_lm_server):
    connected = kernel.execute(f"%mlx_connect {mlx_lm_server}")
    try:
        assert connected.stdout.startswith(f"Connected to the OpenAI-compatible endpoint at {mlx_lm_server}")
        model = DEMO_MODELS["demo"]["path"]
        assert reply(kernel.execute(f"%%mlx_chat --new --model {model}\nWhat is 3 + 4?")) == answer(
            "demo", "What is 3 + 4?"
        )
        message = error_of(kernel.execute("%mlx_models"))
        assert message.startswith("This needs an mlx_workbench server")
    finally:
        back = kernel.execute("%mlx_connect")
    assert back.stdout.startswith("Connected to the mlx_workbench server at http://127.0.0.1:")
    assert "demo-chatml" in kernel.execute("%mlx_models").stdout


def test_connect_to_nothing(kernel):
    message = error_of(kernel.execute(f"%mlx_connect http://127.0.0.1:{free_port()}/v1"))
    assert message.startswith("Nothing answers at http://127.0.0.1:")

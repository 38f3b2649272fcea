"""A real mlx_lm.server on loopback, the upstream that remote entries forward to in tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from server import free_port

from mlx_workbench.demo import DEMO_MODELS

DEMO_PATH = DEMO_MODELS["demo"]["path"]


@dataclass
class Upstream:
    url: str  # its OpenAI base URL, "http://127.0.0.1:PORT/v1"
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_upstream(model: str = DEMO_PATH, timeout: float = 120.0) -> Upstream:
    """`mlx_lm server --model <model>` on a free port, once it answers."""
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="mlx-lm-server-", suffix=".log")[1])
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlx_lm", "server", "--model", model, "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    upstream = Upstream(f"http://127.0.0.1:{port}/v1", proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlx_lm.server exited with {proc.returncode}:\n{upstream.log()}")
        try:
            httpx.get(upstream.url + "/models", timeout=2)
            return upstream
        except httpx.HTTPError:
            time.sleep(0.25)
    upstream.stop()
    raise RuntimeError(f"mlx_lm.server did not answer in {timeout}s:\n{upstream.log()}")


def serving(port: int) -> list[psutil.Process]:
    """The processes whose command line serves on `port` (`--port PORT`): a group's ranks."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "--port" in cmdline and cmdline[cmdline.index("--port") + 1 :][:1] == [str(port)]:
            found.append(proc)
    return found

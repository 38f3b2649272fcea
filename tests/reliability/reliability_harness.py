"""What the reliability tests share: each module starts the servers it needs (own
limits, own models) and reads their state through mlx/api/status and mlx/health."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from server import JupyterProcess

PROBE = Path(__file__).with_name("health_probe.py")


def admin(server: JupyterProcess) -> httpx.Client:
    """Raw HTTP to `server`, authenticated with its token."""
    return httpx.Client(base_url=server.url, headers={"Authorization": f"token {server.token}"}, timeout=60)


def wait_idle(http: httpx.Client, timeout: float = 30.0) -> dict:
    """The status once no request is active or queued and the engine has published a
    snapshot since (its decode rate has decayed to 0), so that its memory reading is
    the idle one; or whatever it is when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        status = http.get("mlx/api/status").json()
        busy = status["active_requests"] or status["queued_requests"] or status["tokens_per_second"]
        if not busy or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def entries(status: dict) -> dict[str, dict]:
    return {e["id"]: e for e in status["entries"]}


def chat(http: httpx.Client, user: str, stream: bool, model: str = "demo") -> str:
    """The greedy answer to `user`, as text, through a stream or one JSON response."""
    body = {"model": model, "messages": [{"role": "user", "content": user}], "temperature": 0, "stream": stream}
    if not stream:
        response = http.post("mlx/v1/chat/completions", json=body).raise_for_status()
        return response.json()["choices"][0]["message"]["content"]
    with http.stream("POST", "mlx/v1/chat/completions", json=body) as response:
        chunks = [
            json.loads(line[6:]) for line in response.raise_for_status().iter_lines() if line.startswith("data: {")
        ]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


@dataclass
class HealthSamples:
    samples: list = field(default_factory=list)  # [milliseconds, http status, health status]

    @property
    def max_ms(self) -> float:
        return max(ms for ms, _, _ in self.samples)

    @property
    def answers(self) -> set:
        return {(code, status) for _, code, status in self.samples}


@contextlib.contextmanager
def health_probe(server: JupyterProcess, interval: float = 0.02):
    """Poll mlx/health from another process while the block runs; the samples
    are in the yielded HealthSamples once it ends."""
    probe = subprocess.Popen(
        [sys.executable, str(PROBE), server.url + "mlx/health", str(interval)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    result = HealthSamples()
    assert probe.stdout.readline() == "polling\n"
    try:
        yield result
    finally:
        out, _ = probe.communicate(timeout=30)  # closing its stdin stops it: it reports
        result.samples = json.loads(out)

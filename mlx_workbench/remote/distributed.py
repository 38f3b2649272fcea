"""A distributed entry's group: `mlx.launch ... -m mlx_lm server` started in a process
group of its own (the launcher and every local rank), served on a loopback port, stopped
with the whole group so that no rank outlives it. MLX shards the model (tensor parallel by
default, mlx_lm.server's own choice); this module only starts, watches and stops it."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT = 600.0  # a big model's shards load from disk on every host
LOG_TAIL = 2000  # characters of the group's log in an error


class RankDied(Exception):
    """The group (a rank or the launcher) ended; the message ends with its log's tail."""


@dataclass
class DistributedSpec:
    """`hosts` is a list (`mlx.launch --hosts`) or the path of a hostfile (`--hostfile`)."""

    path: str
    hosts: list[str] | str
    backend: str = "ring"

    @classmethod
    def parse(cls, name: str, path: str, value: dict) -> DistributedSpec:
        hosts = value.get("hosts", value.get("hostfile"))
        unknown = set(value) - {"hosts", "hostfile", "backend"}
        if unknown or not hosts or ("hosts" in value and "hostfile" in value):
            raise ValueError(
                f"model {name!r}: 'distributed' is {{'hosts': [...] or 'hostfile': ..., 'backend': 'ring'}},"
                f" got {value!r}"
            )
        if isinstance(hosts, list) and len(hosts) < 2:
            raise ValueError(f"model {name!r}: a distributed model needs two hosts or more, got {hosts!r}")
        return cls(
            str(Path(path).expanduser()) if Path(path).expanduser().exists() else path,
            hosts,
            value.get("backend", "ring"),
        )

    def first_host(self) -> str:
        """Rank 0's host: the first of the list, or of the hostfile (mlx.launch's JSON list
        of {"ssh": host, "ips": [...]})."""
        if isinstance(self.hosts, list):
            return self.hosts[0]
        return json.loads(Path(self.hosts).expanduser().read_text())[0]["ssh"]


def launcher() -> str:
    """MLX's `mlx.launch`, from this interpreter's environment first."""
    found = shutil.which("mlx.launch", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        raise OSError("mlx.launch is not installed (it comes with the mlx package)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DistributedServer:
    def __init__(self, spec: DistributedSpec):
        self.spec = spec
        self.port = free_port()
        self.host = spec.first_host()  # rank 0 serves HTTP there
        self.url = f"http://{self.host}:{self.port}/v1"
        self.progress = 0.0
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="mlxwb-distributed-", suffix=".log")[1])

    def command(self) -> list[str]:
        hosts = self.spec.hosts
        where = ["--hostfile", hosts] if isinstance(hosts, str) else ["--hosts", ",".join(hosts)]
        return [
            launcher(),
            *where,
            *["--backend", self.spec.backend, "--starting-port", str(free_port()), "--"],
            *[sys.executable, "-m", "mlx_lm", "server", "--model", self.spec.path],
            *["--host", self.host, "--port", str(self.port)],
        ]

    async def start(self, client: httpx.AsyncClient) -> None:
        """Launches the group and returns once it answers; RankDied if it ends first,
        TimeoutError if it never answers."""
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.kill)  # a server that exits without stopping the extension leaves no rank either
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if (died := self.died()) is not None:
                raise RankDied(died)
            try:
                if (await client.get(f"{self.url}/models", timeout=2.0)).status_code < 500:
                    self.progress = 1.0
                    return
            except httpx.HTTPError:
                pass
            self.progress = min(0.95, self.progress + 0.05)  # mlx.launch reports no progress of its own
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the distributed group did not answer in {START_TIMEOUT:.0f}s:\n{self.log_tail()}")

    def died(self) -> str | None:
        """Why the group ended, with its log's tail; None while it runs."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return f"mlx.launch exited with {self.proc.returncode}:\n{self.log_tail()}"

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-LOG_TAIL:]

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the whole process group, SIGKILL to what is left after `grace`."""
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _group_alive(self.proc.pid):
                self.proc.poll()  # reaps the launcher
                await asyncio.sleep(0.1)
            if not _group_alive(self.proc.pid):
                break
        self.proc.poll()
        atexit.unregister(self.kill)
        self.log_path.unlink(missing_ok=True)

    def kill(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True

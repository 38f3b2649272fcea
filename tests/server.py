"""Start a real Jupyter server (or JupyterLab) in a subprocess for tests.

Shared by the API, kernel, notebook and browser tests. The server runs on
loopback with a random port and a known token; its log goes to a file that
`JupyterProcess.log()` returns for failure messages.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class JupyterProcess:
    url: str  # "http://127.0.0.1:PORT/" (ends with the server's base_url)
    token: str
    proc: subprocess.Popen
    log_path: Path
    root_dir: Path
    env: dict = field(default_factory=dict)

    @property
    def openai_base_url(self) -> str:
        return self.url + "mlx/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT twice (Jupyter asks once, then stops), SIGKILL as a last resort."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            time.sleep(0.2)
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_jupyter(
    *args: str,
    app: str = "server",
    root_dir: Path | None = None,
    env: dict | None = None,
    ready_path: str = "mlx/health",
    base_url: str = "/",
    timeout: float = 60.0,
) -> JupyterProcess:
    """Start `jupyter <app>` with extra command-line `args` (traitlets such as
    `--MLXWorkbench.memory_budget=...`) under `base_url` ("/prefix/"), and wait
    until `ready_path` (relative to it) answers 200."""
    port = free_port()
    token = secrets.token_hex(16)
    root_dir = Path(root_dir or tempfile.mkdtemp(prefix="mlxwb-root-"))
    log_path = Path(tempfile.mkstemp(prefix=f"jupyter-{app}-", suffix=".log")[1])
    full_env = {**os.environ, **(env or {})}
    cmd = [
        sys.executable, "-m", "jupyter", app,
        "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        f"--ServerApp.base_url={base_url}",
        *args,
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    server = JupyterProcess(f"http://127.0.0.1:{port}{base_url}", token, proc, log_path, root_dir, full_env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter {app} exited with {proc.returncode}:\n{server.log()}")
        try:
            req = urllib.request.Request(server.url + ready_path, headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"jupyter {app} did not answer {ready_path} in {timeout}s:\n{server.log()}")

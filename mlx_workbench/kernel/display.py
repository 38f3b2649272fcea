"""How the magics show things in a cell: a live area for text that grows while
it streams, the final Markdown answer, byte counts."""

from __future__ import annotations

import time

from IPython.display import display

EMPTY = {"text/plain": ""}


class LiveArea:
    """One display area that follows a growing text, updated at most every
    `interval` seconds so a fast model does not flood the frontend.

    It starts empty and, unless something must stay (an interrupted answer),
    ends empty: what stays in the notebook is then exactly what the caller
    shows after it, not the last frame of an animation.
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        handle = display(EMPTY, raw=True, display_id=True)
        assert handle is not None  # display_id=True returns one
        self._handle = handle
        self._shown_at = 0.0
        self._pending: str | None = None

    def show(self, markdown: str) -> None:
        self._pending = markdown
        if time.monotonic() - self._shown_at >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self._pending is not None:
            self._publish({"text/plain": self._pending, "text/markdown": self._pending})
            self._shown_at = time.monotonic()
            self._pending = None

    def close(self, markdown: str = "") -> None:
        """Leave `markdown` in the area (nothing: leave it empty)."""
        self._pending = None
        self._publish({"text/plain": markdown, "text/markdown": markdown} if markdown else EMPTY)

    def _publish(self, data: dict) -> None:
        self._handle.update(data, raw=True)


class Reply(str):
    """A chat answer: a plain `str` for code (`Out[n]`, `_`), shown as Markdown."""

    def _repr_markdown_(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def human_bytes(n: int | None) -> str:
    """Decimal units, as mlx_lm and macOS report memory."""
    if n is None:
        return "none"
    if n < 1000:
        return f"{n} B"
    size = float(n)
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} TB"


def remote_summary(entry: dict) -> str:
    """Where a remote entry is served and how fast its server last answered a health check:
    "remote http://gpu-box:8000/v1, 12 ms"; "" for a local entry."""
    if not entry.get("remote"):
        return ""
    latency = entry.get("latency_ms")
    return f"remote {entry['remote']}" + ("" if latency is None else f", {latency:.0f} ms")


def prompt_cache_summary(status: dict) -> str:
    """The prompt cache's lookups and the KV memory it keeps for them."""
    return (
        f"{status['prompt_cache_hits']} hits / {status['prompt_cache_misses']} misses, "
        f"{human_bytes(status['prompt_cache_bytes'])} kept"
    )


BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """One bar per value, scaled to the largest (all low when every value is 0)."""
    top = max(values, default=0) or 1
    return "".join(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))] for v in values)


def seconds(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t * 1000:.0f} ms" if t < 1 else f"{t:.2f} s"


def recent_summary(recent: dict) -> str:
    """The requests of the last minutes: how many, and their time to first token."""
    if not recent["requests"]:
        return "no requests"
    ttft = ", ".join(f"p{p} {seconds(recent[f'ttft_p{p}'])}" for p in (50, 90, 99))
    n = recent["requests"]
    return f"{n} request{'' if n == 1 else 's'}, TTFT {ttft}"


def window(recent: dict) -> str:
    """ "last 5 min" """
    return f"last {recent['window_seconds'] / 60:.0f} min"


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns, the first row as the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)

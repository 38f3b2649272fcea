"""The pool panel: the server's models, memory and queue, live, with buttons.

All state lives on the server (mlx/api/status); the panel is a view of it, so
changes made elsewhere show up and a kernel restart loses nothing. A daemon
thread polls the status while at least one view of the panel is on screen
(ipywidgets' `_view_count`) and stops for good when the panel is closed.
"""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as widgets

from ..model_ids import format_id
from .client import Endpoint, WorkbenchError, discover
from .compare import CompareView
from .display import human_bytes, prompt_cache_summary, recent_summary, remote_summary, window

SHARE_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7"]
MUTED = "var(--jp-ui-font-color2, #777)"
ERROR = "var(--jp-error-color1, #c00)"


def human_age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def row_targets(status: dict) -> dict[str, tuple[str, str | None]]:
    """id -> (model, adapter): configured models, each followed by its adapters,
    then whatever else is loaded (a model loaded by path, say)."""
    targets = {}
    for model in status.get("configured", []):
        targets[model["name"]] = (model["name"], None)
        for adapter in model.get("adapters", []):
            targets[format_id(model["name"], adapter)] = (model["name"], adapter)
    for entry in status.get("entries", []):
        targets.setdefault(entry["id"], (entry["model"], entry["adapter"]))
    return targets


def describe_state(entry: dict | None) -> str:
    if entry is None or entry["state"] == "unloaded":
        return f'<span style="color:{MUTED}">not loaded</span>'
    if entry["state"] == "loading":
        return f"loading {entry.get('progress', 0) * 100:.0f}%"
    if entry["state"] == "failed":  # why: on the row's own line (ModelRow.error)
        return f'<span style="color:{ERROR}">failed</span>'
    parts = ["<b>loaded</b>"]
    if entry.get("remote"):
        parts.append(html.escape(remote_summary(entry)))
    if entry.get("pinned"):
        parts.append("pinned")
    if entry.get("active_requests"):
        parts.append(f"{entry['active_requests']} active")
    elif entry.get("last_used"):
        parts.append(f"idle {human_age(max(0.0, time.time() - entry['last_used']))}")
    else:
        parts.append("idle")
    return " · ".join(parts)


class ModelRow(widgets.HBox):
    """One (model, adapter) entry: what it is, its state, and its buttons."""

    def __init__(self, entry_id: str, model: str, adapter: str | None, panel: PoolPanel):
        self.entry_id = entry_id
        self.model = model
        self.adapter = adapter
        self.entry: dict | None = None
        indent = "&nbsp;&nbsp;&nbsp;↳ " if self.adapter else ""
        self.name = widgets.HTML(f"{indent}<code>{html.escape(entry_id)}</code>", layout=_width("12em"))
        self.family = widgets.HTML(layout=_width("6em"))
        self.memory = widgets.HTML(layout=_width("6em"))
        self.state = widgets.HTML(layout=_width("13em"))
        self.progress = widgets.FloatProgress(min=0.0, max=1.0, layout=_width("6em"))
        self.load_button = widgets.Button(description="Load", icon="play", layout=_width("5.5em"))
        self.unload_button = widgets.Button(description="Unload", icon="eject", layout=_width("6.5em"))
        self.pin_button = widgets.Button(description="Pin", icon="thumb-tack", layout=_width("5.5em"))
        # A whole line of the wrapping row, under the state: an error message can be long.
        self.error = widgets.HTML(layout=widgets.Layout(flex="1 0 100%", padding="0 0 0 24em"))
        self.load_button.on_click(lambda _: panel.act(self.entry_id, "load"))
        self.unload_button.on_click(lambda _: panel.act(self.entry_id, "unload"))
        self.pin_button.on_click(lambda _: panel.act(self.entry_id, "unpin" if self.pinned else "pin"))
        super().__init__(
            [
                self.name,
                self.family,
                self.memory,
                self.state,
                self.progress,
                self.load_button,
                self.unload_button,
                self.pin_button,
                self.error,
            ],
            layout=widgets.Layout(align_items="center", flex_flow="row wrap"),  # a narrow cell wraps, never clips
        )

    @property
    def pinned(self) -> bool:
        return bool(self.entry and self.entry.get("pinned"))

    def show(self, entry: dict | None) -> None:
        self.entry = entry
        state = entry["state"] if entry else "unloaded"
        self.family.value = html.escape((entry or {}).get("family") or "")
        self.memory.value = human_bytes(entry["memory_bytes"]) if entry and state == "loaded" else ""
        self.state.value = describe_state(entry)
        error = (entry or {}).get("error") if state == "failed" else None
        self.error.value = f'<span style="color:{ERROR}">{html.escape(error)}</span>' if error else ""
        self.error.layout.display = None if error else "none"
        self.progress.value = (entry or {}).get("progress", 0.0)
        self.progress.layout.visibility = "visible" if state == "loading" else "hidden"
        self.load_button.disabled = state in ("loading", "loaded")
        self.unload_button.disabled = state == "unloaded"
        self.pin_button.disabled = state not in ("loading", "loaded")
        self.pin_button.description = "Unpin" if self.pinned else "Pin"


class MemoryGauge(widgets.HTML):
    """Active / peak / cache memory against the budget, with each loaded entry's share."""

    def __init__(self):
        super().__init__()
        self.memory: dict = {}
        self.shares: dict[str, int] = {}  # loaded entry id -> its bytes

    def show(self, memory: dict, entries: list[dict]) -> None:
        self.memory = memory
        self.shares = {e["id"]: e["memory_bytes"] for e in entries if e["state"] == "loaded" and e["memory_bytes"]}
        active, peak, cache, budget = (memory.get(k) or 0 for k in ("active", "peak", "cache", "budget"))
        # Without a budget the bar is scaled with headroom, so the peak mark stays in sight.
        scale = budget or 1.25 * max(peak, active + cache, 1)
        segments, legend = [], []
        for i, (entry_id, size) in enumerate(self.shares.items()):
            color = SHARE_COLORS[i % len(SHARE_COLORS)]
            segments.append(_segment(size, scale, color, f"{entry_id}: {human_bytes(size)}"))
            legend.append(
                f'<span style="color:{color}">■</span> {html.escape(entry_id)} {human_bytes(size)} '
                f"({size / max(active, 1) * 100:.0f}% of active)"
            )
        other = active - sum(self.shares.values())
        if other > 0:
            title = f"other active memory (KV caches, buffers): {human_bytes(other)}"
            segments.append(_segment(other, scale, "#9c9c9c", title))
        segments.append(_segment(cache, scale, "#d5d5d5", f"cache, free for reuse: {human_bytes(cache)}"))
        peak_mark = (
            f'<div title="peak {human_bytes(peak)}" style="position:absolute; top:0; bottom:0; '
            f'left:calc({min(peak / scale, 1) * 100:.2f}% - 2px); border-left:2px solid {ERROR}"></div>'
        )
        budget_text = f"budget {human_bytes(budget)}" if budget else "no budget set"
        self.value = (
            f'<div style="position:relative; display:flex; height:14px; width:100%; '
            f'background:var(--jp-layout-color2, #eee); border-radius:3px; overflow:hidden">'
            f"{''.join(segments)}{peak_mark}</div>"
            f"<div>memory: active <b>{human_bytes(active)}</b> · peak {human_bytes(peak)} · "
            f"cache {human_bytes(cache)} · {budget_text} · {html.escape(memory.get('device') or '')}</div>"
            f'<div style="color:{MUTED}">{" &nbsp; ".join(legend)}</div>'
        )


def _segment(size: int, scale: float, color: str, title: str) -> str:
    width = max(0.0, min(size / scale, 1.0)) * 100
    # A small model against a large budget still gets a visible sliver.
    style = f"width:{width:.2f}%; min-width:{2 if size else 0}px; background:{color}"
    return f'<div title="{html.escape(title)}" style="{style}"></div>'


def _width(width: str) -> widgets.Layout:
    return widgets.Layout(width=width, min_width=width)


def queue_line(status: dict) -> str:
    return (
        f"requests: <b>{status['active_requests']}</b> active · {status['queued_requests']} queued "
        f"(limit {status['queue_limit']}) · <b>{status['tokens_per_second']:.1f}</b> tok/s · "
        f"{status['generated_tokens']:,} tokens generated · prompt cache {prompt_cache_summary(status)}"
    )


def recent_line(recent: dict) -> str:
    """Throughput over the last minutes as a sparkline, and the time to first token."""
    rates = recent["tokens_per_second"]
    line = sparkline_svg(rates, f"tokens/s per {recent['bucket_seconds']:.0f} s")
    now = rates[-1] if rates else 0.0
    return f"{window(recent)}: {line} <b>{now:.1f}</b> tok/s now · {html.escape(recent_summary(recent))}"


def sparkline_svg(values: list[float], title: str, width: int = 120, height: int = 16) -> str:
    top = max(values, default=0) or 1
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 1 - v / top * (height - 2):.1f}" for i, v in enumerate(values))
    return (
        f'<svg width="{width}" height="{height}" style="vertical-align:middle">'
        f"<title>{html.escape(title)}</title>"
        f'<polyline points="{points}" fill="none" stroke="{SHARE_COLORS[0]}" stroke-width="1.5"/></svg>'
    )


class PoolPanel(widgets.VBox):
    """`mlx_workbench.panel()`: the model pool of the server this kernel talks to."""

    def __init__(self, endpoint: Endpoint | None = None, interval: float = 1.0):
        self.endpoint = endpoint or discover()
        self.interval = interval
        self.status: dict = {}
        self.rows: dict[str, ModelRow] = {}
        self.header = widgets.HTML()
        self.message = widgets.HTML()
        self.gauge = MemoryGauge()
        self.queue = widgets.HTML()
        self.recent = widgets.HTML()
        self.table = widgets.VBox()
        self.other_model = widgets.Text(
            placeholder="another model: a local folder or a Hugging Face repo id", layout=_width("30em")
        )
        self.other_load_button = widgets.Button(description="Load", icon="play", layout=_width("6.5em"))
        self.other_load_button.on_click(self._load_other)
        self.prompt = widgets.Textarea(placeholder="A prompt to compare the selected models on", layout=_width("40em"))
        self.targets = widgets.SelectMultiple(description="targets", rows=4)
        self.compare_button = widgets.Button(description="Compare", icon="columns")
        self.compare_button.on_click(self._run_compare)
        self.comparison = widgets.Box()
        compare_form = widgets.VBox(
            [
                widgets.HTML("<b>Compare</b>"),
                widgets.HBox([self.prompt, self.targets, self.compare_button]),
                self.comparison,
            ]
        )
        super().__init__(
            [
                self.header,
                self.gauge,
                self.queue,
                self.recent,
                self.table,
                widgets.HBox([self.other_model, self.other_load_button]),
                self.message,
                compare_form,
            ]
        )
        self._refresh_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._view_count = 0  # the frontend counts this panel's views: poll only while one is shown
        self.observe(lambda _: self._wake.set(), "_view_count")
        self.refresh()
        self._poller = threading.Thread(target=self._poll, name="mlx_workbench panel", daemon=True)
        self._poller.start()

    # ---- reading the server ------------------------------------------------------

    def refresh(self) -> None:
        """Fetch mlx/api/status and show it; an unreachable server is shown, not raised."""
        try:
            status = self.endpoint.status()
        except WorkbenchError as e:
            self.header.value = f'<b>MLX Workbench</b> · <span style="color:{ERROR}">{html.escape(str(e))}</span>'
            return
        with self._refresh_lock:
            self.status = status
            self._show(status)

    def _show(self, status: dict) -> None:
        engine = status["state"] + (f": {status['error']}" if status.get("error") else "")
        restarts = f" · {status['restarts']} restarts" if status.get("restarts") else ""
        self.header.value = (
            f"<b>MLX Workbench</b> {html.escape(status.get('version', ''))} · engine {html.escape(engine)}{restarts}"
            f' · <span style="color:{MUTED}">{html.escape(self.endpoint.server_url or "")}</span>'
        )
        self.gauge.show(status["memory"], status["entries"])
        self.queue.value = queue_line(status)
        self.recent.value = recent_line(status["recent"])
        entries = {e["id"]: e for e in status["entries"]}
        targets = row_targets(status)
        for gone in set(self.rows) - set(targets):
            self.rows.pop(gone).close()
        for entry_id, (model, adapter) in targets.items():
            if entry_id not in self.rows:
                self.rows[entry_id] = ModelRow(entry_id, model, adapter, self)
            self.rows[entry_id].show(entries.get(entry_id))
        ids = tuple(targets)
        children = tuple(self.rows[i] for i in ids)
        if self.table.children != children:
            self.table.children = children
        if tuple(self.targets.options) != ids:
            selected = [t for t in self.targets.value if t in ids]
            self.targets.options = ids
            self.targets.value = selected

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._view_count and not self._closed.is_set():
                try:
                    self.refresh()
                except Exception as e:  # a surprise must not end the updates; show it instead
                    self.message.value = f'<span style="color:{ERROR}">panel: {html.escape(repr(e))}</span>'

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        super().close()

    # ---- changing it --------------------------------------------------------------

    def act(self, entry_id: str, action: str) -> None:
        """Load, unload, pin or unpin an entry (what its row's buttons do)."""
        row = self.rows[entry_id]
        if action == "load":
            self._request(action, entry_id, lambda: self.endpoint.load(row.model, row.adapter))
        elif action == "unload":
            self._request(action, entry_id, lambda: self.endpoint.unload(row.model, row.adapter))
        else:
            self._request(action, entry_id, lambda: self.endpoint.pin(row.model, row.adapter, pinned=action == "pin"))

    def _load_other(self, _) -> None:
        model = self.other_model.value.strip()
        if model:
            self._request("load", model, lambda: self.endpoint.load(model))

    def _request(self, action: str, target: str, call) -> None:
        """One admin request; a refusal is shown in the panel. Then the panel shows the outcome."""
        try:
            call()
        except WorkbenchError as e:
            text = html.escape(f"{action} {target}: {e}")
            self.message.value = f'<span style="color:{ERROR}">{text}</span>'
        else:
            self.message.value = ""
        self.refresh()

    def _run_compare(self, _) -> None:
        if not self.targets.value or not self.prompt.value.strip():
            self.message.value = f'<span style="color:{ERROR}">Compare needs a prompt and at least one target.</span>'
            return
        self.message.value = ""
        view = CompareView(self.prompt.value, self.targets.value, endpoint=self.endpoint)
        self.comparison.children = (view,)
        self.compare_button.disabled = True

        def run():
            try:
                view.run()
            finally:
                self.compare_button.disabled = False

        threading.Thread(target=run, name="mlx_workbench compare", daemon=True).start()

"""One prompt, several (model, adapter) targets, streamed side by side.

Every target streams in its own thread at the same moment, so the server's
engine batches them; worker threads only record what arrives, and one render
loop turns those records into widget updates (a few per second, not one per
token). The records are what `compare()` returns.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import ipywidgets as widgets
import openai
from openai.types.chat import ChatCompletionMessageParam

from ..model_ids import SEPARATOR, ModelId, parse_id
from . import schemas
from .client import CLIENT_ERRORS, Endpoint, WorkbenchError, discover

Target = str | tuple  # "demo", "demo:upper" or ("demo", "upper") / ("demo", None)

RENDER_INTERVAL = 0.1  # seconds between widget updates while streaming
STATUS_INTERVAL = 0.5  # seconds between looks at the server's pool while a target waits
# Greedy by default, so each column shows the answer its target is sure of.
DEFAULT_SAMPLING = {"temperature": 0.0, "max_tokens": 256, "seed": 0}


def target_ids(targets: list[Target], endpoint: Endpoint) -> list[ModelId]:
    """Each target as (model, adapter), an id read as the server reads it (model_ids.py)."""
    with_colons = any(isinstance(t, str) and SEPARATOR in t for t in targets)
    names = endpoint.model_names() if with_colons else set()
    return [parse_id(t, names) if isinstance(t, str) else ModelId(*t) for t in targets]


@dataclass
class Run:
    """One target's stream, as it goes. Written by its worker thread only."""

    target: str  # its model id
    named: ModelId
    answer: str = ""
    finish_reason: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int = 0  # chunks with text while streaming; the server's count at the end
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    last_token: float | None = None
    ended: float | None = None  # set when the stream is over, whatever the outcome

    timings: dict | None = None  # the server's, from the stream's usage chunk
    loading: float | None = None  # the server's load progress of the target, while it loads

    @property
    def ttft(self) -> float | None:
        if self.timings:
            return self.timings["time_to_first_token_s"]
        return None if self.first_token is None else self.first_token - self.started

    @property
    def tokens_per_second(self) -> float | None:
        """The server's decode rate once known. Until then an estimate from arrival times,
        which only means something over many tokens: they travel a few at a time."""
        if self.timings:
            return self.timings["tokens_per_second"]
        if self.first_token is None or self.completion_tokens < 2:
            return None
        elapsed = (self.last_token or time.monotonic()) - self.first_token
        return (self.completion_tokens - 1) / elapsed if elapsed > 0 else None

    def record(self) -> dict:
        return {
            "target": self.target,
            "model": self.named.model,
            "adapter": self.named.adapter,
            "answer": self.answer,
            "finish_reason": self.finish_reason,
            "error": self.error,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "ttft_s": self.ttft,
            "tokens_per_s": self.tokens_per_second,
            "total_s": (self.ended or time.monotonic()) - self.started,
        }


class Comparison(list):
    """The records of a comparison, one dict per target, in the targets' order."""

    @property
    def df(self):
        """The records as a pandas DataFrame (needs pandas)."""
        import pandas

        return pandas.DataFrame(self)


# Widgets' HTML has the line height of a form control; text reads better tighter.
TEXT = "line-height:1.4"


def _small(text: str) -> str:
    return f'<div style="{TEXT}; font-size:smaller">{html.escape(text)}</div>'


class Column(widgets.VBox):
    """One target's column: its id, the answer so far, and its live numbers."""

    def __init__(self, target: str):
        self.header = widgets.HTML(f"<b>{html.escape(target)}</b>")
        self.body = widgets.HTML(layout=widgets.Layout(min_height="3em"))
        self.stats = widgets.HTML(_small("waiting…"))
        super().__init__(
            [self.header, self.body, self.stats],
            layout=widgets.Layout(
                flex="1 1 0",
                min_width="0",
                padding="4px 8px",
                margin="0 4px 0 0",
                border="1px solid var(--jp-border-color2, #ddd)",
            ),
        )

    def show(self, run: Run) -> None:
        # What arrived stays, even when the stream broke off afterwards.
        answer = f'<div style="{TEXT}; white-space:pre-wrap; overflow-wrap:anywhere">{html.escape(run.answer)}</div>'
        error = f'<div style="{TEXT}; color:var(--jp-error-color1, #c00)">{html.escape(run.error or "")}</div>'
        self.body.value = answer * bool(run.answer) + error * bool(run.error)
        self.stats.value = _small(_stats_line(run))


def _stats_line(run: Run) -> str:
    if run.error:
        return "failed"
    if run.loading is not None and run.first_token is None:
        return f"loading the model… {run.loading:.0%}"
    parts = []
    if run.ttft is not None:
        parts.append(f"TTFT {run.ttft * 1000:.0f} ms")
    if run.tokens_per_second is not None:
        parts.append(f"{run.tokens_per_second:.1f} tok/s")
    parts.append(f"{run.completion_tokens} tokens")
    parts.append(f"finish: {run.finish_reason}" if run.ended else "streaming…")
    return " · ".join(parts)


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):  # 3 significant digits, never in exponent notation
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return html.escape(str(value))


SUMMARY_COLUMNS = [
    ("target", "target"),
    ("finish_reason", "finish"),
    ("prompt_tokens", "prompt tok"),
    ("completion_tokens", "completion tok"),
    ("ttft_s", "TTFT s"),
    ("tokens_per_s", "tok/s"),
    ("total_s", "total s"),
    ("error", "error"),
]


SUMMARY_STYLE = (
    "<style>.mlxwb-summary th, .mlxwb-summary td {padding: 2px 10px 2px 0; text-align: left; vertical-align: top}"
    " .mlxwb-summary th {white-space: nowrap}</style>"
)


def summary_table(records: Iterable[dict]) -> str:
    head = "".join(f"<th>{title}</th>" for _, title in SUMMARY_COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(r[key])}</td>" for key, _ in SUMMARY_COLUMNS) + "</tr>" for r in records
    )
    return f'{SUMMARY_STYLE}<table class="mlxwb-summary" style="{TEXT}; margin-top:6px"><tr>{head}</tr>{rows}</table>'


class CompareView(widgets.VBox):
    """The live side-by-side display of one comparison, and the runner behind it."""

    def __init__(
        self,
        prompt: str,
        targets: Iterable[Target],
        *,
        system: str | None = None,
        endpoint: Endpoint | None = None,
        **sampling,
    ):
        targets = list(targets)
        if not targets:
            raise ValueError("compare() needs at least one target, e.g. ['demo', 'demo:upper'].")
        self.endpoint = endpoint or discover()
        named = target_ids(targets, self.endpoint)
        self.messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}] if system else []
        self.messages.append({"role": "user", "content": prompt})
        self.sampling = {**DEFAULT_SAMPLING, **sampling}
        self.runs = [Run(str(n), n) for n in named]
        self.columns = [Column(str(n)) for n in named]
        self.summary = widgets.HTML()
        self.records: Comparison | None = None  # set when run() is over
        self._stop = threading.Event()
        super().__init__([widgets.HBox(self.columns), self.summary])

    def run(self) -> Comparison:
        """Stream every target at once; blocks until all are over and returns their records.
        An interrupt closes every stream (the server cancels them), then is re-raised."""
        client = self.endpoint.openai_client()
        start = threading.Barrier(len(self.runs))
        workers = [
            threading.Thread(target=self._stream, args=(client, run, start), daemon=True, name=f"compare {run.target}")
            for run in self.runs
        ]
        for worker in workers:
            worker.start()
        looked = 0.0
        try:
            while any(worker.is_alive() for worker in workers):
                if time.monotonic() - looked >= STATUS_INTERVAL:
                    looked = time.monotonic()
                    self._look_at_loads()
                self._render()
                time.sleep(RENDER_INTERVAL)
        except KeyboardInterrupt:
            self._stop.set()
            for worker in workers:
                worker.join()
            raise
        finally:
            self._render()
            self.records = Comparison(run.record() for run in self.runs)
            self.summary.value = summary_table(self.records)
        return self.records

    def _look_at_loads(self) -> None:
        """Which targets still waiting for a first token wait for their model to load."""
        waiting = [run for run in self.runs if run.first_token is None and run.ended is None]
        if not waiting or not self.endpoint.is_workbench:
            return
        try:
            entries = {e["id"]: e for e in self.endpoint.status()["entries"]}
        except WorkbenchError:  # only a progress display: the streams say what fails
            return
        for run in waiting:
            entry = entries.get(run.target)
            run.loading = entry["progress"] if entry and entry["state"] == "loading" else None

    def _render(self) -> None:
        for column, run in zip(self.columns, self.runs):
            column.show(run)

    def _stream(self, client: openai.OpenAI, run: Run, start: threading.Barrier) -> None:
        start.wait()
        run.started = time.monotonic()
        try:
            stream = client.chat.completions.create(
                model=run.target,
                messages=self.messages,
                stream=True,
                stream_options={"include_usage": True},
                **self.sampling,
            )
            with stream:
                for chunk in stream:
                    if self._stop.is_set():
                        run.finish_reason = "interrupted"
                        break
                    self._take(run, chunk)
        except openai.APIStatusError as e:
            run.error = _api_message(e)
        except CLIENT_ERRORS as e:  # no answer, or the stream broke off
            run.error = f"{type(e).__name__}: {e}"
        finally:
            run.ended = time.monotonic()

    @staticmethod
    def _take(run: Run, chunk) -> None:
        for choice in chunk.choices:
            if choice.delta.content:
                now = time.monotonic()
                run.first_token = run.first_token or now
                run.last_token = now
                run.answer += choice.delta.content
                run.completion_tokens += 1
            if choice.finish_reason:
                run.finish_reason = choice.finish_reason
        if chunk.usage:
            run.prompt_tokens = chunk.usage.prompt_tokens
            run.completion_tokens = chunk.usage.completion_tokens
            run.timings = getattr(chunk.usage, "timings", None)  # None from a server without them


def _api_message(error: openai.APIStatusError) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    message = body.get("message") or body.get("error", {}).get("message") or str(error)
    return f"{error.status_code}: {message}"


def compare(
    prompt: str,
    targets: Iterable[Target],
    *,
    system: str | None = None,
    endpoint: Endpoint | None = None,
    schema: schemas.Schema | None = None,
    **sampling,
) -> Comparison:
    """Send `prompt` to every target at once and show the answers side by side.

    targets: ids such as "demo" or "demo:upper", or (model, adapter) pairs.
    Every target gets the same sampling parameters: temperature=0, max_tokens=256
    and seed=0 unless given, plus any other OpenAI parameter (top_p, stop, ...).
    Returns one record per target (answer, finish_reason, error, token counts,
    TTFT and tokens/s as the server measured them); `.df` gives them as a pandas
    DataFrame. A target that fails shows its error in its column while the others
    finish. Interrupting the kernel stops every stream (the server cancels them).
    With `schema` (a pydantic model class or a JSON-schema dict) every answer follows it.
    """
    from IPython.display import display

    if schema is not None:
        sampling["response_format"] = schemas.response_format(schema)
    view = CompareView(prompt, targets, system=system, endpoint=endpoint, **sampling)
    display(view)
    return view.run()

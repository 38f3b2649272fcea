"""OpenTelemetry spans of the generation requests, with the OpenTelemetry API.

One span per request, opened by its handler (parented to an incoming W3C `traceparent`),
with children for the queue wait, the model load, prefill, decode and the stream write,
attributes after the GenAI semantic conventions (`gen_ai.*`) plus ours (`mlx_workbench.*`).

The children are made after the fact, on the event loop, from the times the engine
measured anyway (`Started.queue_seconds`, `Usage.time_to_first_token`, ...): the device
thread never touches a span, and the spans go out through the SDK's BatchSpanProcessor,
whose own thread does the exporting. With tracing off (or without the SDK, or without
the API) the tracer is a no-op and `RequestSpan` returns at its first test.

`configure` sets the SDK up when asked (`OTEL_TRACES_EXPORTER`, or the traitlet
`MLXWorkbench.traces_exporter`) unless something else (opentelemetry-instrument,
LogFire) installed a tracer provider already; `OTEL_SERVICE_NAME`,
`OTEL_EXPORTER_OTLP_ENDPOINT` and the other standard variables apply as the SDK reads them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ..engine.requests import Done, Failed, FinishReason, GenerationRequest, Started
from ..model_ids import format_id

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    # A proxy until a provider is installed, then that provider's tracer.
    tracer = trace.get_tracer("mlx_workbench")
except ImportError:  # the API is optional too
    trace = tracer = None

if TYPE_CHECKING:
    from .errors import ApiError

log = logging.getLogger(__name__)

PROVIDER = "mlx_workbench"  # gen_ai.provider.name: what serves the model
OPERATIONS = {"chat": "chat", "completion": "text_completion", "responses": "chat", "messages": "chat"}


def configure(exporters: str | None = None) -> bool:
    """Install the SDK's tracer provider exporting to `exporters` ("console", "otlp", a
    comma list; None reads OTEL_TRACES_EXPORTER). True if spans are now recorded."""
    names = [n.strip() for n in (exporters or os.environ.get("OTEL_TRACES_EXPORTER", "")).split(",")]
    names = [n for n in names if n and n != "none"]
    if not names or trace is None:
        return False
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("mlx_workbench: tracing asked for (%s) but opentelemetry-sdk is not installed", ", ".join(names))
        return False
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        log.info("mlx_workbench: tracing with the tracer provider already installed")
        return True
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "mlx_workbench"}))
    provider = TracerProvider(resource=resource)
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)()))
    trace.set_tracer_provider(provider)
    log.info("mlx_workbench: tracing to %s", ", ".join(names))
    return True


def _exporter(name: str) -> Any:
    """The exporter class installed under `name`, as the SDK finds them (entry points);
    "otlp" is the OTLP exporter of OTEL_EXPORTER_OTLP_PROTOCOL, HTTP unless it says grpc."""
    candidates = [name]
    if name == "otlp":
        grpc = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "") == "grpc"
        candidates = ["otlp_proto_grpc", "otlp_proto_http"] if grpc else ["otlp_proto_http", "otlp_proto_grpc"]
    for candidate in candidates:
        for point in entry_points(group="opentelemetry_traces_exporter", name=candidate):
            return point.load()
    raise ValueError(f"no OpenTelemetry span exporter '{name}' is installed (pip install 'mlx_workbench[otel]')")


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class RequestSpan:
    """The span of one HTTP generation request and its children."""

    def __init__(self, headers: Mapping[str, str], endpoint: str):
        self.operation = OPERATIONS.get(endpoint, endpoint)
        self.span = None
        self.model = ""
        self.submitted = 0  # time.time_ns() when the engine got the request
        self.started: Started | None = None
        self.stream_started = 0  # time.time_ns() when an event stream sent its headers
        self.finish_reasons: list[FinishReason] = []
        if tracer is None:
            return
        span = tracer.start_span(
            self.operation,
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"gen_ai.operation.name": self.operation, "gen_ai.provider.name": PROVIDER},
        )
        if span.is_recording():
            self.span = span

    def request(self, request: GenerationRequest, stream: bool) -> None:
        span = self.span
        if span is None:
            return
        self.model = format_id(request.model, request.adapter)
        span.update_name(f"{self.operation} {self.model}")
        s = request.sampling
        attributes = {
            "gen_ai.request.model": self.model,
            "gen_ai.request.max_tokens": s.max_tokens,
            "gen_ai.request.temperature": s.temperature,
            "gen_ai.request.top_p": s.top_p,
            "gen_ai.request.stream": stream,
            "gen_ai.request.choice.count": request.n,
        }
        if s.top_k:
            attributes["gen_ai.request.top_k"] = s.top_k
        if s.seed is not None:
            attributes["gen_ai.request.seed"] = s.seed
        if s.stop:
            attributes["gen_ai.request.stop_sequences"] = s.stop
        if request.adapter:
            attributes["mlx_workbench.adapter"] = request.adapter
        span.set_attributes(attributes)
        self.submitted = time.time_ns()

    def end(self, last: Done | Failed | None, error: ApiError | None) -> None:
        """`last`: the engine's last event (None if the client left); `error`: what was answered."""
        span = self.span
        if span is None:
            return
        if self.stream_started:
            self._child("stream write", self.stream_started, time.time_ns())
        started = self.started
        if started is not None:
            queued = self.submitted + _ns(started.queue_seconds)
            queue = self._child("queue", self.submitted, queued)
            if started.load_seconds:
                self._child("model load", self.submitted, self.submitted + _ns(started.load_seconds), queue)
            span.set_attributes(
                {
                    "gen_ai.usage.input_tokens": started.prompt_tokens,
                    "mlx_workbench.cached_tokens": started.cached_tokens,
                    "mlx_workbench.batch_size": started.batch_size,
                }
            )
            if isinstance(last, Done) and last.usage.completion_tokens:
                u = last.usage
                first = self.submitted + _ns(u.time_to_first_token)
                self._child("prefill", queued, first)
                self._child("decode", first, first + _ns(u.generation_seconds))
        if isinstance(last, Done):
            span.set_attributes(
                {
                    "gen_ai.response.model": self.model,
                    "gen_ai.response.finish_reasons": self.finish_reasons,
                    "gen_ai.usage.output_tokens": last.usage.completion_tokens,
                }
            )
        if error is not None:
            kind = error.detail.code or error.detail.type
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, error.detail.message))
        elif last is None:
            span.set_attribute("error.type", "cancelled")
        span.end()

    def _child(self, name: str, start: int, end: int, parent=None):
        assert trace is not None and tracer is not None and self.span is not None
        context = trace.set_span_in_context(parent or self.span)
        child = tracer.start_span(name, context=context, start_time=start)
        child.end(end_time=max(start, end))
        return child

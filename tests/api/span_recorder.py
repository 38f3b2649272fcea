"""A Jupyter server extension for the tracing tests: installs an OpenTelemetry tracer
provider whose spans go to an in-memory exporter, and serves them at GET /test/spans.
Enabled with `--ServerApp.jpserver_extensions={"span_recorder": True}` and this folder on
PYTHONPATH; mlx_workbench then traces into the provider it finds installed."""

from __future__ import annotations

import json

from jupyter_server.base.handlers import APIHandler
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tornado import web

exporter = InMemorySpanExporter()


class SpansHandler(APIHandler):
    @web.authenticated
    def get(self):
        self.finish(json.dumps([json.loads(span.to_json()) for span in exporter.get_finished_spans()]))


def _jupyter_server_extension_points():
    return [{"module": "span_recorder"}]


def _load_jupyter_server_extension(serverapp):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    serverapp.web_app.add_handlers(".*$", [(serverapp.base_url + "test/spans", SpansHandler)])

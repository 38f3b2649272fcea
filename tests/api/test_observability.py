"""Monitoring: Prometheus metrics at Jupyter's /metrics after a known set of requests,
OpenTelemetry spans (in-memory exporter: the span tree of a streamed and a failed
request; the console exporter through OTEL_* variables alone), and tracing as a no-op
without the SDK. Servers of their own: the counts must be this module's alone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from demo_requests import messages, model_id
from prometheus_client.parser import text_string_to_metric_families
from server import start_jupyter

HERE = Path(__file__).parent
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def console_server():
    """Tracing configured by the environment alone, to the console (the server's log)."""
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "mlxwb-observed", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    server = start_jupyter(env=env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def recording_server():
    """Spans into an in-memory exporter that tests/api/span_recorder.py serves."""
    server = start_jupyter(
        '--ServerApp.jpserver_extensions={"span_recorder": True}',
        env={"PYTHONPATH": str(HERE), "OTEL_TRACES_EXPORTER": ""},
    )
    yield server
    server.stop()


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key=server.token, max_retries=0, timeout=120)


def scrape(server) -> dict[tuple[str, frozenset], float]:
    """Every sample at /metrics: (name, labels) -> value."""
    response = httpx.get(server.url + "metrics", headers={"Authorization": f"token {server.token}"}, timeout=60)
    response.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((f"mlx_workbench_{name}", frozenset(labels.items())), 0.0)


def test_metrics_count_a_known_set_of_requests(console_server, answers):
    c = client(console_server)
    row, upper = answers()[0], answers("demo", "upper")[0]
    usages = []
    for _ in range(2):  # the second finds the first's prompt in the prompt cache
        usages.append(c.chat.completions.create(model="demo", messages=messages(row), temperature=0).usage)
    chunks = list(
        c.chat.completions.create(
            model="demo",
            messages=messages(row),
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usages.append(chunks[-1].usage)
    upper_reply = c.chat.completions.create(model=model_id(upper), messages=messages(upper), temperature=0)
    assert upper_reply.choices[0].message.content == upper["answer"]
    with pytest.raises(openai.NotFoundError) as missing:
        c.chat.completions.create(model="no-such-model", messages=messages(row))
    with pytest.raises(openai.BadRequestError) as invalid:
        c.chat.completions.create(model="demo", messages=messages(row), temperature=7)

    # A CORS preflight is no request.
    preflight = {"Origin": "http://example.com", "Access-Control-Request-Method": "POST"}
    httpx.options(console_server.openai_base_url + "/chat/completions", headers=preflight, timeout=60)

    samples = scrape(console_server)
    demo = {"model": "demo", "adapter": ""}
    assert value(samples, "requests_total", endpoint="chat", outcome="ok", **demo) == 3
    assert value(samples, "requests_total", endpoint="chat", model="", adapter="", outcome="ok") == 0
    assert value(samples, "requests_total", endpoint="chat", model="demo", adapter="upper", outcome="ok") == 1
    assert missing.value.code == "model_not_found"
    unknown = {"model": "no-such-model", "adapter": ""}
    assert value(samples, "requests_total", endpoint="chat", outcome="model_not_found", **unknown) == 1
    # A body that fails validation names no model the server read.
    assert value(samples, "requests_total", endpoint="chat", model="", adapter="", outcome=invalid.value.code) == 1
    assert value(samples, "request_success_total", finished_reason="stop", **demo) == 3
    for histogram in ("time_to_first_token_seconds", "e2e_request_latency_seconds", "request_queue_time_seconds",
                      "request_prefill_time_seconds", "request_decode_time_seconds", "request_prompt_tokens",
                      "request_generation_tokens"):  # fmt: skip
        assert value(samples, f"{histogram}_count", **demo) == 3, histogram
        assert value(samples, f"{histogram}_count", model="demo", adapter="upper") == 1, histogram
    assert value(samples, "prompt_tokens_total", **demo) == sum(u.prompt_tokens for u in usages)
    assert value(samples, "generation_tokens_total", **demo) == sum(u.completion_tokens for u in usages)
    assert value(samples, "request_generation_tokens_sum", **demo) == sum(u.completion_tokens for u in usages)
    cached = [u.prompt_tokens_details.cached_tokens for u in usages]
    assert cached[1] > 0
    assert value(samples, "prompt_cache_lookups_total", **demo) == 3
    assert value(samples, "prompt_cache_hits_total", **demo) == sum(1 for n in cached if n)
    assert value(samples, "prompt_cache_hit_tokens_total", **demo) == sum(cached)
    # One step per token after the first of each request, each observed with its batch's size.
    assert value(samples, "batch_size_count", **demo) >= sum(u.completion_tokens for u in usages) - 3
    assert value(samples, "model_load_seconds_count", **demo) == 1
    assert value(samples, "model_load_seconds_count", model="demo", adapter="upper") == 1
    assert value(samples, "model_load_failures_total", **demo) == 0
    assert value(samples, "num_requests_running") == 0
    assert value(samples, "num_requests_waiting") == 0
    assert value(samples, "models_loaded") == 2
    assert value(samples, "memory_active_bytes") > 0
    assert value(samples, "memory_peak_bytes") >= value(samples, "memory_active_bytes")
    # /metrics is Jupyter's: its auth applies (ServerApp.authenticate_prometheus).
    assert httpx.get(console_server.url + "metrics", timeout=60).status_code == 403

    # The same figures in the status: TTFT percentiles and throughput of the last minutes.
    status = httpx.get(
        console_server.url + "mlx/api/status", headers={"Authorization": f"token {console_server.token}"}, timeout=60
    ).json()
    recent = status["recent"]
    assert recent["requests"] == 4
    assert 0 < recent["ttft_p50"] <= recent["ttft_p90"] <= recent["ttft_p99"]
    assert len(recent["tokens_per_second"]) == recent["window_seconds"] / recent["bucket_seconds"]
    assert sum(recent["tokens_per_second"]) > 0


def test_console_exporter_through_the_environment_alone(console_server, answers):
    row = answers()[0]
    client(console_server).chat.completions.create(model="demo", messages=messages(row), temperature=0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and '"name": "decode"' not in console_server.log():
        time.sleep(0.2)
    log = console_server.log()
    assert '"name": "chat demo"' in log
    assert '"name": "decode"' in log
    assert '"service.name": "mlxwb-observed"' in log
    assert '"gen_ai.usage.output_tokens"' in log


def spans_of(server, trace_id: str) -> list[dict]:
    response = httpx.get(server.url + "test/spans", headers={"Authorization": f"token {server.token}"}, timeout=60)
    return [s for s in response.json() if s["context"]["trace_id"] == "0x" + trace_id]


def wait_for_root(server, trace_id: str) -> list[dict]:
    """The spans of `trace_id` once its request span ended (after the answer was sent)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spans = spans_of(server, trace_id)
        if any(s["parent_id"] == "0x" + PARENT_ID for s in spans):
            return spans
        time.sleep(0.1)
    raise AssertionError(f"no request span in trace {trace_id}")


def test_spans_of_a_streamed_request(recording_server, answers):
    row = answers()[0]
    chunks = list(
        client(recording_server).chat.completions.create(
            model="demo",
            messages=messages(row),
            temperature=0,
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
        )
    )
    usage = chunks[-1].usage
    spans = wait_for_root(recording_server, TRACE_ID)
    (root,) = [s for s in spans if s["parent_id"] == "0x" + PARENT_ID]  # parented to the caller's span
    assert root["name"] == "chat demo"
    assert root["kind"] == "SpanKind.SERVER"
    assert root["status"]["status_code"] == "UNSET"
    attributes = root["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "mlx_workbench"
    assert attributes["gen_ai.request.model"] == "demo"
    assert attributes["gen_ai.request.temperature"] == 0
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert attributes["mlx_workbench.cached_tokens"] == usage.prompt_tokens_details.cached_tokens
    assert attributes["mlx_workbench.batch_size"] == 1
    children = {s["name"]: s for s in spans if s["parent_id"] == root["context"]["span_id"]}
    assert set(children) == {"queue", "prefill", "decode", "stream write"}
    # The first request of this server loaded the model: the load is part of its queue wait.
    loads = [s for s in spans if s["name"] == "model load"]
    assert all(s["parent_id"] == children["queue"]["context"]["span_id"] for s in loads)
    assert len(spans) == 1 + len(children) + len(loads)

    def at(span, end):
        return span["end_time" if end else "start_time"]

    # In order: queue, prefill, decode, all within the request span.
    assert at(children["queue"], True) == at(children["prefill"], False)
    assert at(children["prefill"], True) == at(children["decode"], False)
    for child in children.values():
        assert at(root, False) <= at(child, False) <= at(child, True) <= at(root, True)


def test_spans_of_a_failed_request(recording_server, answers):
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    too_long = [{"role": "user", "content": "Repeat: " + "one two three " * 3000}]
    with pytest.raises(openai.BadRequestError) as failed:
        client(recording_server).chat.completions.create(
            model="demo", messages=too_long, extra_headers={"traceparent": f"00-{trace_id}-{PARENT_ID}-01"}
        )
    assert failed.value.code == "context_length_exceeded"
    (root,) = wait_for_root(recording_server, trace_id)  # failed before it queued for a batch: no children
    assert root["name"] == "chat demo"
    assert root["status"]["status_code"] == "ERROR"
    assert root["attributes"]["error.type"] == "context_length_exceeded"
    assert "gen_ai.usage.output_tokens" not in root["attributes"]


def test_tracing_is_a_no_op_without_the_sdk_or_the_api():
    """Import blocked as if not installed: nothing raises, nothing is recorded."""
    script = """
import sys
sys.modules[sys.argv[1]] = None  # `import` of it now raises ImportError
from mlx_workbench.api import tracing
from mlx_workbench.engine.requests import Done, GenerationRequest, Started, Usage
assert tracing.configure("console") is False
span = tracing.RequestSpan({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "chat")
span.request(GenerationRequest(model="demo", messages=[]), stream=True)
span.started = Started(prompt_tokens=3)
span.stream_started = 1
span.end(Done(Usage(3, 2)), None)
assert span.span is None
print("no-op")
"""
    for blocked in ("opentelemetry.sdk", "opentelemetry"):
        done = subprocess.run([sys.executable, "-c", script, blocked], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "no-op", blocked


def test_recent_figures_percentiles_and_buckets():
    from mlx_workbench.engine.metrics import RecentFigures, percentile

    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0
    recent = RecentFigures(window=60, bucket=10)
    recent.tokens(100, now=1000.0)  # bucket 100
    recent.tokens(50, now=1005.0)
    recent.tokens(30, now=1012.0)  # bucket 101
    for ttft in (0.3, 0.1, 0.2):
        recent.request(ttft, ended=1012.0)
    summary = recent.summary(now=1015.0)
    assert summary.requests == 3
    assert (summary.ttft_p50, summary.ttft_p90) == (0.2, 0.3)
    assert summary.tokens_per_second[-2:] == [15.0, 6.0]  # 150 over 10 s; 30 over the 5 s the last has run
    assert len(summary.tokens_per_second) == 6
    later = recent.summary(now=1100.0)  # all of it older than the window
    assert later.requests == 0 and sum(later.tokens_per_second) == 0

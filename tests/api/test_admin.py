"""Pool admin: mlx/api/status, models/load, models/unload, models/pin."""

from __future__ import annotations

import json
import time

import httpx
from demo_requests import endless

from mlx_workbench import __version__


def entry(http, entry_id: str) -> dict | None:
    return next((e for e in http.get("mlx/api/status").json()["entries"] if e["id"] == entry_id), None)


def test_status(http):
    status = http.get("mlx/api/status").json()
    assert status["version"] == __version__
    assert status["openai_base_url"] == "/mlx/v1"
    assert status["default_model"] == "demo"
    configured = {m["name"]: m for m in status["configured"]}
    assert set(configured["demo"]["adapters"]) == {"upper", "pirate"}
    assert status["state"] == "running"
    assert {"active", "peak", "cache", "budget", "device"} <= set(status["memory"])
    assert status["memory"]["budget"] > 0
    for key in (
        "active_requests",
        "queued_requests",
        "queue_limit",
        "tokens_per_second",
        "generated_tokens",
        "prompt_cache_hits",
        "prompt_cache_misses",
        "prompt_cache_bytes",
        "restarts",
    ):
        assert isinstance(status[key], (int, float)), key


def test_load_at_once_then_poll(http):
    http.post("mlx/api/models/unload", json={"model": "demo-chatml"}).raise_for_status()
    started = http.post("mlx/api/models/load", json={"model": "demo-chatml"})
    assert started.status_code == 202
    assert started.json()["entry"]["id"] == "demo-chatml"
    assert started.json()["entry"]["state"] in ("loading", "loaded")
    deadline = time.monotonic() + 60
    while entry(http, "demo-chatml")["state"] != "loaded" and time.monotonic() < deadline:
        time.sleep(0.1)
    loaded = entry(http, "demo-chatml")
    assert loaded["state"] == "loaded" and loaded["memory_bytes"] > 0 and loaded["family"]


def test_load_wait_pin_unload(http):
    loaded = http.post("mlx/api/models/load", json={"model": "demo:pirate", "wait": True, "pin": True})
    assert loaded.status_code == 200
    body = loaded.json()["entry"]
    assert (body["id"], body["adapter"], body["state"], body["pinned"]) == ("demo:pirate", "pirate", "loaded", True)

    unpinned = http.post("mlx/api/models/pin", json={"model": "demo", "adapter": "pirate", "pinned": False})
    assert unpinned.json()["entry"]["pinned"] is False

    unloaded = http.post("mlx/api/models/unload", json={"model": "demo:pirate"})
    assert unloaded.status_code == 200
    assert unloaded.json()["entry"]["state"] == "unloaded"
    assert entry(http, "demo:pirate")["state"] == "unloaded"
    assert entry(http, "demo")["state"] == "loaded"  # the base stays


def test_unloading_a_model_that_serves_a_stream_is_a_conflict(http, jupyter_server):
    """409 model_busy, OpenAI-shaped; the stream goes on to its end and the model stays."""
    body = {
        "model": "demo:upper",
        "messages": [{"role": "user", "content": "Hello!"}],
        "stream": True,
        "max_tokens": 400,
        "logit_bias": endless(),
    }
    headers = {"Authorization": f"token {jupyter_server.token}"}
    with httpx.stream(
        "POST", jupyter_server.openai_base_url + "/chat/completions", json=body, headers=headers, timeout=60
    ) as stream:
        events = (line for line in stream.iter_lines() if line.startswith("data: "))
        next(events)  # generating
        refused = http.post("mlx/api/models/unload", json={"model": "demo"})
        rest = list(events)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["type"], error["param"]) == ("model_busy", "invalid_request_error", "model")
    assert "'demo:upper' is serving 1 requests" in error["message"]
    assert rest[-1] == "data: [DONE]"
    assert json.loads(rest[-2].removeprefix("data: "))["choices"][0]["finish_reason"] == "length"
    assert entry(http, "demo")["state"] == entry(http, "demo:upper")["state"] == "loaded"

"""Faults: model folders with corrupt or missing weights, chat templates that fail, a
model that raises while generating, one that does not fit the memory budget. Each
gives a clear error to the request that met it while demo stories stream beside it;
the pool stays consistent, the device thread keeps serving, and health says so."""

from __future__ import annotations

import json
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from demo_requests import STORY, answer
from reliability_harness import admin, chat, entries, health_probe, wait_idle
from server import start_jupyter
from tiny_model import build_tiny_llama

from mlx_workbench.demo import DEMO_MODELS

DEMO = Path(DEMO_MODELS["demo"]["path"])
BUDGET = 8 * 2**20  # the demo model and a few broken copies fit (1.2 MB each); "too-big" (15 MB) does not


def truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def scramble(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(random.Random(0).randbytes(weights.stat().st_size))


def remove_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def edit(file: str, **changes):
    def damage(folder: Path) -> None:
        path = folder / file
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    return damage


@dataclass
class Fault:
    damage: object  # folder -> None: breaks a copy of the demo model
    status: int
    code: str
    message: str  # part of the error message
    state: str  # the entry's state afterwards
    in_band: bool = False  # a stream gets its 200 first, then the error as its last event


FAULTS = {
    "truncated weights": Fault(truncate, 503, "model_load_failed", "exceeding the size of the file", "failed"),
    "garbage weights": Fault(scramble, 503, "model_load_failed", "Invalid json header length", "failed"),
    "missing weights": Fault(remove_weights, 503, "model_load_failed", "No safetensors found", "failed"),
    "template syntax error": Fault(
        edit("tokenizer_config.json", chat_template="{% for m in messages %}{{ m }"),
        500,
        "chat_template_error",
        "chat template is broken: unexpected '}' (line 1)",
        "loaded",
    ),
    "template raises": Fault(
        edit("tokenizer_config.json", chat_template="{{ messages | length / 0 }}"),
        500,
        "chat_template_error",
        "chat template failed: ZeroDivisionError",
        "loaded",
    ),
    # rope_theta is only used by the forward pass: the model loads, and fails on its first step.
    "fails while generating": Fault(
        edit("config.json", rope_theta="ten thousand"),
        500,
        "generation_failed",
        "failed while generating: TypeError: rope()",
        "loaded",
        in_band=True,
    ),
    "too big for the budget": Fault(None, 503, "memory_budget_exceeded", "more than the memory budget", "failed"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("faulty-models")
    models = {"demo": DEMO_MODELS["demo"], "too big for the budget": str(build_tiny_llama(root / "big", hidden=384))}
    for name, fault in FAULTS.items():
        if fault.damage is not None:
            folder = Path(shutil.copytree(DEMO, root / name.replace(" ", "-")))
            fault.damage(folder)
            models[name] = str(folder)
    server = start_jupyter(
        f"--MLXWorkbench.models={json.dumps(models)}",
        f"--MLXWorkbench.memory_limit={BUDGET}",
        "--MLXWorkbench.max_loaded_models=8",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(server):
    with admin(server) as http:
        assert chat(http, "Hello!", stream=False) == answer("demo", "Hello!")  # demo loaded before any fault
        yield http


@pytest.mark.parametrize("name", FAULTS)
def test_a_fault_fails_its_request_alone(server, http, name):
    fault = FAULTS[name]
    body = {"model": name, "messages": [{"role": "user", "content": "What is 3 + 4?"}], "temperature": 0}
    with health_probe(server) as health, ThreadPoolExecutor(4) as pool:
        stories = [pool.submit(chat, http, STORY, stream=True) for _ in range(4)]  # ~1 s each, side by side
        errors = [json_error(http, body), stream_error(http, body)]
        assert [s.result(60) for s in stories] == [answer("demo", STORY)] * 4
    assert [status for status, _ in errors] == [fault.status, 200 if fault.in_band else fault.status]
    for _, error in errors:
        assert error["code"] == fault.code and error["type"] == "server_error", error
        assert fault.message in error["message"], error
    # The device thread never stopped serving, health said so all along, and the pool is consistent.
    assert health.answers == {(200, "ok")}, health.answers
    assert http.get("mlx/health").json()["restarts"] == 0
    status = wait_idle(http)
    assert status["active_requests"] == status["queued_requests"] == 0 and status["restarts"] == 0
    pool_entries = entries(status)
    assert pool_entries["demo"]["state"] == "loaded"
    assert pool_entries[name]["state"] == fault.state and all(e["active_requests"] == 0 for e in status["entries"])
    assert (pool_entries[name]["error"] is not None) == (fault.state == "failed")
    assert chat(http, "What is 3 + 4?", stream=False) == answer("demo", "What is 3 + 4?")
    print(f"\nfault {name!r}: {fault.status} {fault.code}: {errors[0][1]['message']}")


def json_error(http, body: dict) -> tuple[int, dict]:
    response = http.post("mlx/v1/chat/completions", json=body)
    return response.status_code, response.json()["error"]


def stream_error(http, body: dict) -> tuple[int, dict]:
    """A stream's status and error: as JSON before the stream starts, or in-band after a 200."""
    with http.stream("POST", "mlx/v1/chat/completions", json={**body, "stream": True}) as response:
        text = response.read().decode()
    if response.status_code != 200:
        return response.status_code, json.loads(text)["error"]
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert "[DONE]" not in text and "error" in events[-1], text  # an error event ends it
    return 200, events[-1]["error"]


def test_unloading_a_failed_model_forgets_the_failure(http):
    failed = http.post("mlx/api/models/load", json={"model": "truncated weights", "wait": True})
    assert failed.json()["error"]["code"] == "model_load_failed"
    assert entries(http.get("mlx/api/status").json())["truncated weights"]["state"] == "failed"
    unloaded = http.post("mlx/api/models/unload", json={"model": "truncated weights"}).json()["entry"]
    assert (unloaded["state"], unloaded["error"]) == ("unloaded", None)
    again = http.post("mlx/api/models/load", json={"model": "truncated weights", "wait": True})  # tried again
    assert again.json()["error"]["code"] == "model_load_failed"

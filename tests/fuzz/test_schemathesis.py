"""Schemathesis against the OpenAPI document the running server serves: at least
1,000 generated requests over every endpoint (valid and invalid bodies, boundary
values, wrong methods, missing auth), with every schemathesis check. Then no
answer may be a 5xx or slower than the request timeout, every 4xx must be an
OpenAI-shaped error (Anthropic-shaped under its Messages API), and the server must
still answer a chat exactly.

The run is the schemathesis CLI (its pytest plugin does not work with pytest 9.2),
configured by schemathesis.toml and fuzz_hooks.py; its VCR cassette records every
request and answer, and is what the assertions read. MLXWB_FUZZ_EXAMPLES=1000 makes
the long run (about 13,000 requests, two minutes here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
MIN_REQUESTS = 1000
RUN_TIMEOUT = 600  # seconds for the whole run; about two minutes here


def run_schemathesis(server, models: list[str], cassette: Path) -> subprocess.CompletedProcess:
    """The CLI in the cassette's folder, where it also leaves its crash cache."""
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        server.url + "mlx/api/openapi.json",
        "--header",
        f"Authorization: Bearer {server.token}",
        "--checks",
        "all",
        *(["--max-examples", os.environ["MLXWB_FUZZ_EXAMPLES"]] if "MLXWB_FUZZ_EXAMPLES" in os.environ else []),
        "--report",
        "vcr",
        "--report-vcr-path",
        str(cassette),
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HERE / "fuzz_hooks.py"), "FUZZ_MODELS": ",".join(models)}
    return subprocess.run(cmd, env=env, cwd=cassette.parent, capture_output=True, text=True, timeout=RUN_TIMEOUT)


def assert_api_error(interaction: dict) -> None:
    """OpenAI's error shape; Anthropic's under its Messages API."""
    response = interaction["response"]
    where = f"{interaction['request']['method']} {interaction['request']['uri']} -> {response['status']['code']}"
    assert response["headers"]["content-type"][0].startswith("application/json"), where
    body = json.loads(response["body"]["string"])
    error = body["error"]
    if "/mlx/v1/messages" in interaction["request"]["uri"]:
        assert body["type"] == "error" and set(error) == {"type", "message"}, where
    else:
        assert set(error) == {"message", "type", "param", "code"}, where
    assert isinstance(error["message"], str) and error["message"], where


def test_fuzz_the_openapi_document(fuzz_server, fuzz_http, tmp_path, demo_answers):
    models = [m["id"] for m in fuzz_http.get("mlx/v1/models").json()["data"]]
    cassette = tmp_path / "cassette.yaml"
    run = run_schemathesis(fuzz_server, models, cassette)
    # Non-zero on a failed check, and on a request unanswered after request-timeout (a hang).
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]

    interactions = yaml.load(cassette.read_text(), Loader=yaml.CSafeLoader)["http_interactions"]
    assert len(interactions) >= MIN_REQUESTS
    statuses = [int(i["response"]["status"]["code"]) for i in interactions]
    assert max(statuses) < 500
    for interaction, status in zip(interactions, statuses):
        if 400 <= status < 500:
            assert_api_error(interaction)
    slowest = max(float(i["response"]["elapsed"]) for i in interactions)
    print(
        f"fuzzed {len(interactions)} requests, the slowest answered in {slowest:.2f} s; statuses: "
        + ", ".join(f"{s}: {statuses.count(s)}" for s in sorted(set(statuses)))
    )

    assert fuzz_http.get("mlx/health").json()["status"] == "ok"
    row = min(
        (r for r in demo_answers if r["model"] == "demo" and not r["adapter"] and not r["system"]),
        key=lambda r: len(r["answer"]),
    )
    reply = fuzz_http.post(
        "mlx/v1/chat/completions",
        json={
            "model": "demo",
            "messages": [{"role": "user", "content": row["user"]}],
            "temperature": 0,
        },
    ).json()
    assert reply["choices"][0]["message"]["content"] == row["answer"]
    assert reply["choices"][0]["finish_reason"] == "stop"

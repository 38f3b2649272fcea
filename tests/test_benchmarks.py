"""Smoke test of the benchmark harness: `python -m benchmarks.run --quick` on the
demo model, every system for real (raw mlx_lm, mlx_lm.server, the engine, the
Jupyter endpoint). It checks that every figure was measured for every system
with equal work, not how fast anything is: timings on a shared machine are noise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSTEMS = {"raw mlx_lm", "mlx_lm.server", "mlx_workbench engine", "mlx_workbench endpoint"}
POOLS = {"mlx_workbench engine", "mlx_workbench endpoint"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # Its own session, so a timeout also ends the servers it started.
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    assert proc.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    return stdout, json.loads((out / "results.json").read_text()), out / "results.png"


def test_every_figure_measures_every_system(run):
    _, results, _ = run
    demo = results["models"]["demo"]
    assert set(demo["one_stream"]) == SYSTEMS
    assert set(demo["concurrency"]) == {"1", "4"}
    assert all(set(level) == SYSTEMS for level in demo["concurrency"].values())
    assert set(demo["conversation"]) == SYSTEMS
    assert all(len(v["ttft_s"]) == 3 and min(v["ttft_s"]) > 0 for v in demo["conversation"].values())
    memory = demo["adapter_memory"]
    assert len(memory["adapters"]) == 3
    assert set(memory["active_bytes"]) == {"raw mlx_lm"} | POOLS
    assert all(len(sizes) == 4 and sizes[0] > 0 for sizes in memory["active_bytes"].values())
    stall = demo["load_stall"]
    assert stall["loaded_model"] == "demo-chatml"
    assert stall["raw mlx_lm"]["load_s"] > 0
    assert all(stall[pool]["load_s"] > 0 for pool in POOLS)
    bound = demo["constrained"]
    assert set(bound) == POOLS
    assert all(v["free_tps"] > 0 and v["constrained_tps"] > 0 and v["failed"] == 0 for v in bound.values())
    traced = demo["tracing"]
    assert traced["streams"] == 8 and traced["failed"] == 0
    assert traced["off_tps"] > 0 and traced["on_tps"] > 0
    assert traced["off_cpu_ms_per_token"] > 0 and traced["on_cpu_ms_per_token"] > 0
    mixed = demo["adapters_in_one_batch"]
    assert set(mixed) == POOLS
    assert all(v["adapters"] == ["upper", "pirate"] and v["failed"] == 0 for v in mixed.values())
    assert all(v["base_tps"] > 0 and v["mixed_tps"] > 0 and v["compare_s"] > 0 for v in mixed.values())


def test_every_system_does_the_same_work(run):
    """The stop-token logit_bias reaches every system: each stream generates max_tokens."""
    _, results, _ = run
    max_tokens = results["settings"]["demo"]["max_tokens"]
    demo = results["models"]["demo"]
    assert all(v["tokens"] == [max_tokens] for v in demo["one_stream"].values())
    for n, level in demo["concurrency"].items():
        assert all(v["tokens"] == int(n) * max_tokens for v in level.values())
    assert results["unequal_work"] == []


def test_report_prints_ratios_and_targets(run):
    stdout, results, png = run
    for title in [f"Figure {i}" for i in range(1, 9)] + ["Targets"]:
        assert title in stdout
    names = [t["target"] for t in results["targets"]]
    # 4 one-stream, 2 concurrency, 2 conversation, 2 memory, 2 constrained, 2 adapters in one batch, 2 tracing
    assert len(names) == 16, names
    assert all(t["met"] in (True, False) for t in results["targets"])
    assert all(name in stdout for name in names)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

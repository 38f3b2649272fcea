"""SmolLM2 from the notebook: `%%mlx_chat` and compare() in a real kernel of the real server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "kernel"))
from kernel_harness import Kernel, kernel_env, reply  # noqa: E402

QUESTION = "What is the capital of France?"
PARIS = "The capital of France is Paris."  # greedy, 4-bit with float32 scales


@pytest.fixture(scope="module")
def kernel(server):
    kernel = Kernel(kernel_env(MLX_WORKBENCH_URL=server.url, MLX_WORKBENCH_TOKEN=server.token))
    kernel.execute("%load_ext mlx_workbench")
    yield kernel
    kernel.shutdown()


def test_mlx_chat_answers_with_smollm2(kernel):
    assert reply(kernel.execute(f"%%mlx_chat --new --model smollm2\n{QUESTION}", timeout=120)) == PARIS


def test_compare_streams_smollm2_beside_the_demo_model(kernel):
    kernel.execute(
        f"import json, mlx_workbench\nrecords = mlx_workbench.compare({QUESTION!r}, ['smollm2', 'demo'])", timeout=120
    )
    records = json.loads(kernel.execute("print(json.dumps(records))").stdout)
    assert [(r["target"], r["answer"], r["error"]) for r in records] == [
        ("smollm2", PARIS, None),
        ("demo", "Paris.", None),
    ]
    assert all(r["finish_reason"] == "stop" for r in records)


def test_the_pool_panel_shows_smollm2_loaded_with_its_family_and_memory(kernel):
    kernel.execute(f"%%mlx_chat --new --model smollm2\n{QUESTION}", timeout=120)  # loaded (at the latest) now
    code = (
        "import json, mlx_workbench\np = mlx_workbench.panel()\np.refresh()\n"
        "print(json.dumps({k: getattr(p.rows['smollm2'], k).value for k in ('state', 'family', 'memory')}))"
    )
    row = json.loads(kernel.execute(code).stdout)
    assert "loaded" in row["state"] and row["family"] == "chatml" and row["memory"].endswith("MB")
    kernel.execute("p.close()")

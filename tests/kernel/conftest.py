"""A real Jupyter server with mlx_workbench and real kernels talking to it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
from kernel import Kernel  # noqa: E402
from server import start_jupyter  # noqa: E402

ANSWERS = json.loads((Path(__file__).parents[2] / "mlx_workbench/demo/answers.json").read_text())


def answer(model: str, user: str, adapter: str | None = None, system: str | None = None) -> str:
    """The demo model's exact greedy answer, from answers.json."""
    for row in ANSWERS:
        if (row["model"], row["adapter"], row["system"], row["user"]) == (model, adapter, system, user):
            return row["answer"]
    raise KeyError((model, adapter, system, user))


@pytest.fixture(scope="session")
def server():
    server = start_jupyter()
    yield server
    server.stop()


def kernel_env(**env: str) -> dict:
    """The environment of a kernel: this process's, with overrides."""
    return {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), **env}


@pytest.fixture(scope="module")
def kernel(server):
    """A kernel as the extension starts them: URL and token in its environment."""
    kernel = Kernel(kernel_env(MLX_WORKBENCH_URL=server.url, MLX_WORKBENCH_TOKEN=server.token))
    kernel.execute("%load_ext mlx_workbench")
    yield kernel
    kernel.shutdown()

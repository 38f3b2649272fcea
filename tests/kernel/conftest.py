"""Real kernels talking to the session's real Jupyter server (tests/conftest.py)."""

from __future__ import annotations

import pytest
from kernel_harness import Kernel, kernel_env


@pytest.fixture(scope="module")
def server(jupyter_server):
    return jupyter_server


@pytest.fixture(scope="module")
def kernel(server):
    """A kernel as the extension starts them: URL and token in its environment."""
    kernel = Kernel(kernel_env(MLX_WORKBENCH_URL=server.url, MLX_WORKBENCH_TOKEN=server.token))
    kernel.execute("%load_ext mlx_workbench")
    yield kernel
    kernel.shutdown()


@pytest.fixture
def kernel_for():
    """Kernels pointed at a given server URL (and token)."""
    kernels = []

    def start(url: str, token: str = "") -> Kernel:
        kernels.append(Kernel(kernel_env(MLX_WORKBENCH_URL=url, MLX_WORKBENCH_TOKEN=token)))
        kernels[-1].execute("%load_ext mlx_workbench")
        return kernels[-1]

    yield start
    for kernel in kernels:
        kernel.shutdown()

"""One real kernel pointed at the session's real Jupyter server (tests/conftest.py),
shared by the widget tests."""

from __future__ import annotations

import os

import pytest
from widgets_harness import REPO, Api, Kernel


@pytest.fixture(scope="session")
def api(http):
    return Api(http)


@pytest.fixture(scope="session")
def kernel(jupyter_server):
    """A kernel as the extension starts them: URL and token in its environment."""
    env = {
        **os.environ,
        "MLX_WORKBENCH_URL": jupyter_server.url,
        "MLX_WORKBENCH_TOKEN": jupyter_server.token,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    kernel = Kernel(env)
    kernel.run("import mlx_workbench")
    yield kernel
    kernel.shutdown()

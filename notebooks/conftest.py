"""nbval runs the example notebooks against a real Jupyter server with mlx_workbench.

nbval 0.11 starts a notebook's kernel while setting up its first cell and runs
no fixtures for notebook items, so the server is started by a hook that runs
before that setup, and reaches the kernels through the environment they inherit.

    python -m pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg notebooks
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from server import JupyterProcess, start_jupyter  # noqa: E402

_server: JupyterProcess | None = None


def start_server() -> JupyterProcess:
    """One server for every notebook, its URL and token where kernels look first."""
    global _server
    if _server is None:
        _server = start_jupyter()
        os.environ["MLX_WORKBENCH_URL"] = _server.url
        os.environ["MLX_WORKBENCH_TOKEN"] = _server.token
    return _server


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.path.suffix == ".ipynb":
        start_server()


def pytest_sessionfinish(session):
    if _server is not None:
        _server.stop()

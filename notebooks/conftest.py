"""nbval runs each example notebook against a fresh Jupyter server with mlx_workbench,
as a person opening it would (the pool starts empty).

nbval 0.11 starts a notebook's kernel while setting up its first cell and runs
no fixtures for notebook items, so the server is started by a hook that runs
before that setup, and reaches the kernel through the environment it inherits.

    python -m pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg notebooks
"""

from __future__ import annotations

import os

import pytest
from server import JupyterProcess, start_jupyter  # tests/ is on the path (pyproject.toml)

_server: JupyterProcess | None = None


def restart_server() -> JupyterProcess:
    """A new server, its URL and token where kernels look first."""
    global _server
    stop_server()
    _server = start_jupyter()
    os.environ["MLX_WORKBENCH_URL"] = _server.url
    os.environ["MLX_WORKBENCH_TOKEN"] = _server.token
    return _server


def stop_server() -> None:
    if _server is not None:
        _server.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    first_cell_of_a_notebook = item.path.suffix == ".ipynb" and item.parent.kernel is None
    if first_cell_of_a_notebook:
        restart_server()


def pytest_sessionfinish(session):
    stop_server()

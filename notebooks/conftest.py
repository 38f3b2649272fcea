"""nbval runs each example notebook against a fresh Jupyter server with mlx_workbench,
as a person opening it would (the pool starts empty).

nbval 0.11 starts a notebook's kernel while setting up its first cell and runs
no fixtures for notebook items, so the server is started by a hook that runs
before that setup, and reaches the kernel through the environment it inherits.

    python -m pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg notebooks
"""

from __future__ import annotations

import json
import os

import pytest
from server import JupyterProcess, start_jupyter  # tests/ is on the path (pyproject.toml)
from upstream import DEMO_PATH, Upstream, start_upstream

from mlx_workbench.demo import default_models

_server: JupyterProcess | None = None
_upstream: Upstream | None = None


def server_args(notebook: str | None) -> list[str]:
    """remote_models.ipynb gets `big`, a remote entry in front of an mlx_lm.server on
    loopback started for it, and `sharded`, a distributed entry of two loopback ranks."""
    global _upstream
    if notebook != "remote_models.ipynb":
        return []
    _upstream = start_upstream()
    models = {
        **default_models(),
        "big": {"url": _upstream.url, "model": DEMO_PATH},
        "sharded": {"path": DEMO_PATH, "distributed": {"hosts": ["127.0.0.1", "127.0.0.1"]}},
    }
    return [f"--MLXWorkbench.models={json.dumps(models)}"]


def restart_server(notebook: str | None = None) -> JupyterProcess:
    """A new server for `notebook` (its file name), its URL and token where kernels look first."""
    global _server
    stop_server()
    _server = start_jupyter(*server_args(notebook))
    os.environ["MLX_WORKBENCH_URL"] = _server.url
    os.environ["MLX_WORKBENCH_TOKEN"] = _server.token
    return _server


def stop_server() -> None:
    global _upstream
    if _server is not None:
        _server.stop()
    if _upstream is not None:
        _upstream.stop()
        _upstream = None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    first_cell_of_a_notebook = item.path.suffix == ".ipynb" and item.parent.kernel is None
    if first_cell_of_a_notebook:
        restart_server(item.path.name)


def pytest_sessionfinish(session):
    stop_server()

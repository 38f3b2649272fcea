"""Shared fixtures: one real Jupyter server with mlx_workbench for the session,
official OpenAI clients pointed at it, and the demo models' known answers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from server import JupyterProcess, start_jupyter

TESTS = Path(__file__).parent

ANSWERS = TESTS.parent / "mlx_workbench" / "demo" / "answers.json"


@pytest.fixture(scope="session")
def jupyter_server() -> JupyterProcess:
    """`jupyter server` with the default configuration (the demo models)."""
    server = start_jupyter()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def openai_client(jupyter_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=jupyter_server.openai_base_url, api_key=jupyter_server.token, max_retries=0)


@pytest.fixture
async def async_openai_client(jupyter_server):
    client = openai.AsyncOpenAI(base_url=jupyter_server.openai_base_url, api_key=jupyter_server.token, max_retries=0)
    yield client
    await client.close()


@pytest.fixture(scope="session")
def http(jupyter_server) -> httpx.Client:
    """Raw HTTP to the server, authenticated with its token."""
    with httpx.Client(
        base_url=jupyter_server.url, headers={"Authorization": f"token {jupyter_server.token}"}, timeout=60
    ) as client:
        yield client


@pytest.fixture(scope="session")
def demo_answers() -> list[dict]:
    """Rows of answers.json: {"model", "adapter", "system", "user", "answer"}."""
    return json.loads(ANSWERS.read_text())


# Markers by where a test lives (registered in pyproject.toml): `-m "not slow"` and the like.
MARKERS_BY_PATH = {
    "tests/browser/": ["browser", "slow"],
    "tests/kernel/": ["kernel"],
    "tests/kernel/test_openai_releases.py": ["slow"],
    "tests/widgets/": ["kernel"],
    "notebooks/": ["kernel", "slow"],
    "tests/fuzz/": ["slow"],
    "tests/api/test_distributed.py": ["slow"],  # two MLX ranks per group, groups started and stopped
    "tests/reliability/": ["slow"],
    "tests/test_benchmarks.py": ["slow"],
}


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        where = item.path.relative_to(root).as_posix()
        for prefix, markers in MARKERS_BY_PATH.items():
            if where.startswith(prefix):
                for marker in markers:
                    item.add_marker(marker)

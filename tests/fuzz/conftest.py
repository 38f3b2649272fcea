"""The server the fuzz, bad-input and auth tests attack: a real `jupyter server`
with the demo models, under a non-root base_url so that "nothing outside
base_url" is tested for real."""

from __future__ import annotations

import json

import httpx
import pytest
from server import JupyterProcess, start_jupyter

from mlx_workbench.demo import DEMO_MODELS

# Generation is capped so that each of the thousand fuzzed requests is quick.
MAX_TOKENS_CAP = 8


@pytest.fixture(scope="session")
def fuzz_server() -> JupyterProcess:
    server = start_jupyter(
        f"--MLXWorkbench.models={json.dumps(DEMO_MODELS)}",  # not the real model: seconds per request
        f"--MLXWorkbench.max_tokens_cap={MAX_TOKENS_CAP}",
        base_url="/prefix/",
        env={"HF_HUB_OFFLINE": "1"},  # a fuzzed model id must not reach for the Hub
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def max_tokens_cap() -> int:
    return MAX_TOKENS_CAP


@pytest.fixture(scope="session")
def fuzz_http(fuzz_server) -> httpx.Client:
    with httpx.Client(
        base_url=fuzz_server.url, headers={"Authorization": f"Bearer {fuzz_server.token}"}, timeout=60
    ) as client:
        yield client

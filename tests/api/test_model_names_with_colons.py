"""A model name with colons reads the same on the server and in the kernel (model_ids.py):
a configured name is itself, the adapter follows the last colon."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from demo_requests import answer
from server import start_jupyter

from mlx_workbench.demo import DEMO_MODELS
from mlx_workbench.kernel.client import Endpoint
from mlx_workbench.kernel.compare import target_ids
from mlx_workbench.model_ids import ModelId

HELLO = "What is the capital of France?"
pytestmark = pytest.mark.slow  # a server of its own


@pytest.fixture(scope="module")
def colon_server():
    """The demo model and its "upper" adapter configured as "demo:v2"."""
    models = {
        "demo:v2": {
            "path": DEMO_MODELS["demo"]["path"],
            "adapters": {"upper": DEMO_MODELS["demo"]["adapters"]["upper"]},
        }
    }
    server = start_jupyter(f"--MLXWorkbench.models={json.dumps(models)}", "--MLXWorkbench.default_model=demo:v2")
    yield server
    server.stop()


def test_the_server_reads_a_name_with_colons_as_itself(colon_server):
    client = openai.OpenAI(base_url=colon_server.openai_base_url, api_key=colon_server.token, max_retries=0)
    assert {m.id for m in client.models.list()} == {"demo:v2", "demo:v2:upper"}
    for model_id, adapter in (("demo:v2", None), ("demo:v2:upper", "upper")):
        reply = client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": HELLO}], temperature=0
        )
        assert reply.choices[0].message.content == answer("demo", HELLO, adapter)
    with httpx.Client(base_url=colon_server.url, headers={"Authorization": f"token {colon_server.token}"}) as http:
        entry = http.post("mlx/api/models/load", json={"model": "demo:v2:upper", "wait": True}, timeout=60).json()
    assert {k: entry["entry"][k] for k in ("id", "model", "adapter")} == {
        "id": "demo:v2:upper",
        "model": "demo:v2",
        "adapter": "upper",
    }


def test_the_kernel_reads_ids_as_the_server_does(colon_server):
    endpoint = Endpoint.workbench(colon_server.url, colon_server.token)
    assert target_ids(["demo:v2", "demo:v2:upper", ("demo:v2", None)], endpoint) == [
        ModelId("demo:v2"),
        ModelId("demo:v2", "upper"),
        ModelId("demo:v2"),
    ]

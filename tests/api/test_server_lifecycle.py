"""The extension's lifetime: configuration, what kernels inherit (shutdown: tests/reliability)."""

from __future__ import annotations

import pytest

from mlx_workbench.app import device_memory, model_spec, parse_memory


def test_memory_sizes():
    assert parse_memory(None) is None
    assert parse_memory(123) == 123
    assert parse_memory("8GB") == parse_memory("8 GiB") == 8 * 2**30
    assert parse_memory("512mb") == 512 * 2**20
    assert parse_memory("1.5G") == int(1.5 * 2**30)
    assert parse_memory("50%") == device_memory() // 2
    with pytest.raises(ValueError):
        parse_memory("lots")


def test_model_specs():
    assert model_spec("q", "mlx-community/x").path == "mlx-community/x"
    spec = model_spec("m", {"path": "/m", "adapters": {"a": "/a"}})
    assert (spec.name, spec.path, spec.adapters) == ("m", "/m", {"a": "/a"})
    with pytest.raises(ValueError):
        model_spec("m", {"adapters": {}})


def test_kernels_inherit_url_and_token(jupyter_server, http):
    kernel_id = http.post("api/kernels", json={"name": "python3"}).json()["id"]
    client = jupyter_server.kernel_client(kernel_id)
    try:
        printed = []
        reply = client.execute_interactive(
            "import os; print(os.environ['MLX_WORKBENCH_URL'], os.environ['MLX_WORKBENCH_TOKEN'])",
            output_hook=lambda msg: msg["msg_type"] == "stream" and printed.append(msg["content"]["text"]),
            timeout=60,
        )
        assert reply["content"]["status"] == "ok"
        assert "".join(printed).split() == [jupyter_server.url, jupyter_server.token]
    finally:
        client.stop_channels()
        http.delete(f"api/kernels/{kernel_id}")

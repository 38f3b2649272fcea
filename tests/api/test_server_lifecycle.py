"""The extension's lifetime: configuration, what kernels inherit (shutdown: tests/reliability)."""

from __future__ import annotations

import logging

import pytest
from traitlets import TraitError
from traitlets.config import Config

from mlx_workbench.app import MLXWorkbench, device_memory, model_spec, parse_memory


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


@pytest.mark.kernel
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


def configured(**traits) -> MLXWorkbench:
    """The extension app as a config file with `traits` makes it (values set together)."""
    return MLXWorkbench(config=Config({"MLXWorkbench": traits}))


def test_models_and_preload_are_checked_at_config_load():
    app = configured(
        models={"q": "mlx-community/q", "m": {"path": "/m", "adapters": {"a": "/a"}}}, preload=["m:a", "q"]
    )
    assert app.build_engine_config().preload == ["m:a", "q"]
    for traits, complaint in [
        ({"models": {"m": {"adapters": {}}}}, "expected a path"),
        ({"models": {"m": {"path": "/m", "adapters": {"a:b": "/a"}}}}, "without ':'"),
        ({"models": {"m": {"path": "/m", "adapters": {"v2": "/a"}}, "m:v2": "/n"}}, "names both"),
        ({"models": {"m": "/m"}, "preload": ["m:a"]}, "not among the configured"),
    ]:
        with pytest.raises(TraitError, match=complaint):
            configured(**traits)


def test_engine_settings_reach_the_engine_config():
    config = configured(
        completion_batch_size=8,
        prefill_step_size=512,
        prompt_cache_size=0,
        prompt_cache_bytes="1MB",
        memory_limit="1GB",
    ).build_engine_config()
    assert (
        config.completion_batch_size,
        config.prefill_step_size,
        config.prompt_cache_size,
        config.prompt_cache_bytes,
    ) == (8, 512, 0, 2**20)


async def test_stopping_never_raises(caplog):
    """An engine that never started (its start failed): the server must still halt cleanly."""
    app = MLXWorkbench()
    app.log = logging.getLogger("mlx_workbench.test")  # the app's own logger does not propagate
    await app.stop_extension()
    assert "stopping the engine failed" in caplog.text

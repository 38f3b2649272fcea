"""Small pieces of the remote entries, alone (the real paths are in tests/api/test_remote.py
and test_distributed.py): the configuration read, the chat body sent upstream, the events
relayed, and an upstream's refusals in our shape. No server, no MLX."""

from __future__ import annotations

import json

import pytest
from traitlets import TraitError

from mlx_workbench.api.proxy import _renamed_event, upstream_error
from mlx_workbench.api.remote_events import _events, chat_body
from mlx_workbench.app import MLXWorkbench, model_specs, remote_specs
from mlx_workbench.engine.requests import Constraint, Delta, Finished, GenerationRequest, SamplingParams
from mlx_workbench.remote.distributed import DistributedServer, DistributedSpec

MODELS = {
    "local": "/models/local",
    "big": {"url": "http://gpu-box:8000/v1/", "model": "llama-70b", "api_key_env": "BIG_KEY"},
    "huge": {"path": "/models/huge", "distributed": {"hosts": ["mac1", "mac2"]}},
}


def test_the_models_setting_splits_into_local_and_remote_entries(monkeypatch):
    monkeypatch.setenv("BIG_KEY", "secret")
    assert list(model_specs(MODELS)) == ["local"]
    remote = remote_specs(MODELS)
    assert remote["big"].url == "http://gpu-box:8000/v1" and remote["big"].api_key == "secret"
    assert remote["big"].model == "llama-70b" and remote["big"].distributed is None
    huge = remote["huge"].distributed
    assert huge is not None and huge.hosts == ["mac1", "mac2"] and huge.backend == "ring"


@pytest.mark.parametrize(
    "entry",
    [
        {"url": "http://x/v1"},  # no model
        {"url": "http://x/v1", "model": "m", "api_key": "a", "api_key_env": "B"},
        {"url": "http://x/v1", "model": "m", "adapters": {}},
        {"path": "/p", "distributed": {"hosts": ["only-one"]}},
        {"path": "/p", "distributed": {"hosts": ["a", "b"], "hostfile": "/h.json"}},
        {"path": "/p", "distributed": {"hosts": ["a", "b"], "ranks": 4}},
    ],
)
def test_a_malformed_remote_entry_is_refused_at_start(entry):
    with pytest.raises(TraitError, match="MLXWorkbench.models"):
        MLXWorkbench(models={"bad": entry})


def test_a_remote_name_may_not_shadow_an_adapter_id():
    models = {"demo": {"path": "/p", "adapters": {"upper": "/a"}}, "demo:upper": {"url": "http://x/v1", "model": "m"}}
    with pytest.raises(TraitError):
        MLXWorkbench(models=models)


def test_the_launch_command_names_the_hosts_and_rank_0s_address(tmp_path):
    server = DistributedServer(DistributedSpec("/models/huge", ["mac1", "mac2"]))
    command = server.command()
    assert command[command.index("--hosts") + 1] == "mac1,mac2"
    assert command[command.index("--backend") + 1] == "ring"
    after = command[command.index("--") + 1 :]  # mlx.launch's options end here: the rest is each rank's
    assert after[after.index("--model") + 1] == "/models/huge"
    assert after[after.index("--host") + 1] == "mac1" and server.url == f"http://mac1:{server.port}/v1"
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([{"ssh": "mac3", "ips": ["10.0.0.3"]}, {"ssh": "mac4", "ips": ["10.0.0.4"]}]))
    from_file = DistributedServer(DistributedSpec("/m", str(hostfile)))
    assert from_file.command()[from_file.command().index("--hostfile") + 1] == str(hostfile)
    assert from_file.host == "mac3"


def test_the_chat_body_asks_upstream_for_what_the_request_asks():
    sampling = SamplingParams(max_tokens=9, temperature=0.0, stop=["\n"], seed=3, logit_bias={5: -100.0})
    sampling.constraint = Constraint("json_schema", {"type": "object"})
    body = chat_body(GenerationRequest(model="big", messages=[{"role": "user", "content": "Hi"}], sampling=sampling))
    assert body["max_tokens"] == 9 and body["temperature"] == 0.0 and body["stop"] == ["\n"] and body["seed"] == 3
    assert body["logit_bias"] == {"5": -100.0}
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_chunks_become_engine_events():
    chunk = {"index": 0, "delta": {"content": "Paris."}, "finish_reason": "stop"}
    assert _events(chunk) == [Delta(index=0, text="Paris.", token_ids=[]), Finished(index=0, reason="stop")]
    assert _events({"index": 0, "delta": {}, "finish_reason": "tool_calls"}) == [Finished(index=0, reason="stop")]


def test_relayed_events_name_our_model_id():
    event = b'data: {"id": "x", "model": "/models/llama", "choices": []}'
    assert json.loads(_renamed_event(event, "big")[len("data: ") :])["model"] == "big"
    assert _renamed_event(b": keepalive 3/9", "big") == ": keepalive 3/9\n\n"
    assert _renamed_event(b"data: [DONE]", "big") == "data: [DONE]\n\n"


@pytest.mark.parametrize(
    ("status", "content", "ours"),
    [
        (400, b'{"error": {"message": "bad messages", "type": "invalid_request_error"}}', 400),
        (404, b'{"error": "no such model"}', 404),
        (401, b'{"error": {"message": "wrong key"}}', 502),  # their key for us is wrong: not the client's fault
        (500, b"Internal Server Error", 502),
    ],
)
def test_upstream_refusals_in_our_shape(status, content, ours):
    error = upstream_error(status, content)
    assert error.status_code == ours
    assert error.detail.message.startswith(f"The remote server answered {status}: ")
    assert error.detail.code == ("upstream_error" if ours == 502 else "upstream_refused")

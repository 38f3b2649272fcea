"""Model ids read one way everywhere (mlx_workbench/model_ids.py): the adapter after the
last colon, a known model name as itself. Plain functions: no server, no MLX."""

from __future__ import annotations

import pytest

from mlx_workbench.model_ids import ModelId, check_names, format_id, parse_id, with_adapter


@pytest.mark.parametrize(
    ("model_id", "models", "expected"),
    [
        ("demo", (), ModelId("demo")),
        ("demo:upper", (), ModelId("demo", "upper")),
        ("llama3:8b:terse", (), ModelId("llama3:8b", "terse")),  # the LAST colon
        ("llama3:8b", {"llama3:8b"}, ModelId("llama3:8b")),  # a known name is itself
        ("llama3:8b", {"llama3"}, ModelId("llama3", "8b")),
        ("llama3:8b:terse", {"llama3:8b"}, ModelId("llama3:8b", "terse")),
        ("demo:", (), ModelId("demo:")),  # no adapter on either side of a bare colon
        (":upper", (), ModelId(":upper")),
        ("mlx-community/Qwen2.5-0.5B-Instruct-4bit", (), ModelId("mlx-community/Qwen2.5-0.5B-Instruct-4bit")),
    ],
)
def test_parse(model_id, models, expected):
    assert parse_id(model_id, models) == expected


@pytest.mark.parametrize("named", [ModelId("demo"), ModelId("demo", "upper"), ModelId("llama3:8b", "terse")])
def test_format_is_what_parse_reads(named):
    assert str(named) == format_id(*named)
    assert parse_id(str(named), {named.model}) == named


def test_with_adapter_replaces_the_adapter_an_id_names():
    assert with_adapter("demo", "upper") == "demo:upper"
    assert with_adapter("demo:upper", "pirate") == "demo:pirate"
    assert with_adapter("demo:upper", None) == "demo:upper"
    assert with_adapter("llama3:8b", "terse", {"llama3:8b"}) == "llama3:8b:terse"
    assert with_adapter("llama3:8b:terse", "brief", {"llama3:8b"}) == "llama3:8b:brief"


def test_names_that_read_one_way_pass():
    check_names({"demo": ["upper", "pirate"], "llama3:8b": ["terse"], "mlx-community/x": []})


@pytest.mark.parametrize(
    ("adapters", "complaint"),
    [
        ({"": []}, "must not be empty"),
        ({"demo": ["a:b"]}, "without ':'"),
        ({"demo": [""]}, "non-empty"),
        ({"demo": ["v2"], "demo:v2": []}, "names both a model and adapter 'v2' of 'demo'"),
    ],
)
def test_ambiguous_names_are_refused(adapters, complaint):
    with pytest.raises(ValueError, match=complaint):
        check_names(adapters)

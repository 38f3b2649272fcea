"""Fixtures for the engine tests: real MLX on tiny models, engines that always stop."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from family_tokenizers import family_tokenizer  # noqa: F401  (a fixture, for every engine test)
from tiny_model import build_tiny_adapter, build_tiny_llama

from mlx_workbench.engine.config import EngineConfig, ModelSpec
from mlx_workbench.engine.engine import Engine


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random-weight Llamas: "tiny" (with adapters "a" and "b") and a bigger "wide"."""
    root = tmp_path_factory.mktemp("models")
    tiny = build_tiny_llama(root / "tiny")
    return {
        "tiny": tiny,
        "wide": build_tiny_llama(root / "wide", hidden=128, seed=1),
        "a": build_tiny_adapter(tiny, root / "adapter-a", seed=1),
        "b": build_tiny_adapter(tiny, root / "adapter-b", seed=2),
    }


@pytest.fixture
def broken_model(models, tmp_path) -> Path:
    """A copy of "tiny" whose folder can be damaged by the test."""
    return Path(shutil.copytree(models["tiny"], tmp_path / "broken"))


@pytest.fixture
def make_engine(models):
    """make_engine(**EngineConfig fields) -> a started Engine knowing "tiny" (adapters
    "a", "b") and "wide"; every engine is stopped at teardown."""
    engines = []

    def make(**overrides) -> Engine:
        specs = {
            "tiny": ModelSpec("tiny", str(models["tiny"]), {"a": str(models["a"]), "b": str(models["b"])}),
            "wide": ModelSpec("wide", str(models["wide"])),
        }
        engine = Engine(EngineConfig(models={**specs, **overrides.pop("models", {})}, **overrides))
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop()


@pytest.fixture
def engine(make_engine) -> Engine:
    return make_engine()

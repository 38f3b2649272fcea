"""Model ids: "name" names a model, "name:adapter" a LoRA adapter over it.

One rule on the server, in the kernel and in the lab extension (labextension/src/api.ts):
the adapter is what follows the LAST colon. A model name may contain colons
("llama3:8b:terse" is adapter "terse" of model "llama3:8b"); an adapter name may not.
An id that is itself the name of a known model names that model ("llama3:8b" is the
model "llama3:8b" when one is so named, not adapter "8b" of "llama3"), so a parse is
given the model names when the caller knows them; a configuration in which one id
would name both a model and an adapter is refused (`check_names`).

The standard library only: the engine, the api and the kernel all use it.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import NamedTuple

SEPARATOR = ":"


class ModelId(NamedTuple):
    model: str
    adapter: str | None = None

    def __str__(self) -> str:
        return format_id(self.model, self.adapter)


def format_id(model: str, adapter: str | None = None) -> str:
    """The id of `model`, or of `adapter` over it."""
    return f"{model}{SEPARATOR}{adapter}" if adapter else model


def parse_id(model_id: str, models: Container[str] = ()) -> ModelId:
    """The (model, adapter) `model_id` names; `models`: the model names known, which win."""
    if model_id in models:
        return ModelId(model_id)
    model, separator, adapter = model_id.rpartition(SEPARATOR)
    if not (separator and model and adapter):  # "demo", "demo:" and ":x" name no adapter
        return ModelId(model_id)
    return ModelId(model, adapter)


def with_adapter(model_id: str, adapter: str | None, models: Container[str] = ()) -> str:
    """The id of `adapter` over the model `model_id` names (instead of the adapter it may
    name); `model_id` itself without one."""
    return format_id(parse_id(model_id, models).model, adapter) if adapter else model_id


def check_names(adapters: Mapping[str, Iterable[str]]) -> None:
    """ValueError unless every id of these models (name -> adapter names) is unambiguous:
    names not empty, adapter names without a colon, no id naming both a model and an adapter."""
    for model, names in adapters.items():
        if not model:
            raise ValueError("a model name must not be empty")
        for adapter in names:
            if not adapter or SEPARATOR in adapter:
                raise ValueError(
                    f"model {model!r}: adapter name {adapter!r} must be non-empty and without {SEPARATOR!r}"
                )
            if format_id(model, adapter) in adapters:
                raise ValueError(
                    f"{format_id(model, adapter)!r} names both a model and adapter {adapter!r} of {model!r}: rename one"
                )

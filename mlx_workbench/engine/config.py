"""Engine configuration: which models exist and the limits the pool keeps.

Plain data; `app.py` fills it from the ExtensionApp's traitlets, scripts and
tests build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model_ids import format_id


@dataclass
class ModelSpec:
    """A model the user named: a local folder or a Hugging Face repo id, with
    its LoRA adapters (adapter name -> folder holding adapters.safetensors)."""

    name: str
    path: str
    adapters: dict[str, str] = field(default_factory=dict)


@dataclass
class EngineConfig:
    models: dict[str, ModelSpec] = field(default_factory=dict)
    default_model: str | None = None
    memory_budget: int | None = None  # bytes of MLX memory for loaded entries; None: no limit
    max_loaded: int = 4  # loaded (model, adapter) entries, LRU beyond
    idle_timeout: float | None = None  # seconds before an unpinned, unused entry is unloaded
    queue_limit: int = 64  # requests waiting to join the batch; beyond that QueueFull
    max_tokens_cap: int = 4096  # upper bound on any request's max_tokens
    preload: list[str] = field(default_factory=list)  # model ids ("name" or "name:adapter") loaded at start
    completion_batch_size: int = 32
    prefill_step_size: int = 2048
    prompt_cache_size: int = 16  # cached prompt prefixes kept for reuse, per loaded entry
    prompt_cache_bytes: int | None = None  # bound on all cached KV bytes; None: no limit
    conversation_store_size: int = 1000  # stored conversations (Responses API), LRU beyond; 0 stores none
    conversation_store_bytes: int | None = 64 * 2**20  # bound on their bytes; None: no limit
    delivery_interval: float = 0.002  # seconds more tokens of a running stream may wait to travel together

    def model_ids(self) -> list[str]:
        """Every id a request may name: "name" and "name:adapter"."""
        return [
            format_id(name, adapter) for name, spec in list(self.models.items()) for adapter in [None, *spec.adapters]
        ]

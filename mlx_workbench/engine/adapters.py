"""LoRA adapters applied in their base model's own batch: rows of several adapters
(and of the base) share every forward pass, so the base's weights are read once per
step however many adapters are compared.

Every linear layer that a loaded adapter trains becomes a `MultiLoRALinear`: the base
layer plus a table of each adapter's low-rank factors, a slot per adapter, stacked and
padded with zeros to the largest rank (zeros add nothing: the update is exact). An
adapter that does not train the layer has zeros there. A forward pass gathers each row's
factors (`mx.gather_mm`), so no Python loop runs over the rows, and scales each row by
its adapter's scale; the base's rows take slot 0 with a scale of 0 (y + 0 is y,
exactly), so the base costs no slot of zeros.

Which adapter a row runs travels with the row's KV cache (`rows.py`): `AdapterModel`
reads it before each pass, so the prefill of new rows and the decode of the others each
see their own rows. Device thread only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten
from mlx_lm.models.cache import make_prompt_cache

from .rows import Row, RowTags, tagged

FACTORS = ("lora_a", "lora_b")


class _Slots:
    """During one forward pass, each row's slot in the tables and its adapter's scale (0
    for the base's rows), shaped (rows, 1, 1); None while all rows are the base's."""

    rows: tuple[mx.array, mx.array] | None = None


class MultiLoRALinear(nn.Module):
    """A base linear layer plus the low-rank updates of several adapters, one per row."""

    def __init__(self, linear: nn.Linear | nn.QuantizedLinear, current: _Slots):
        super().__init__()
        self.linear = linear
        self.in_dims, self.out_dims = in_dims, out_dims = linear_dims(linear)
        self._current = current
        self._ranks: list[int] = []  # per slot; 0: the adapter does not train this layer
        self.lora_a = mx.zeros((0, in_dims, 1))  # (slots, in, max rank)
        self.lora_b = mx.zeros((0, 1, out_dims))  # (slots, max rank, out)

    def __call__(self, x: mx.array) -> mx.array:
        y = self.linear(x)
        if self._current.rows is None:
            return y
        slots, scales = self._current.rows
        z = mx.gather_mm(x, self.lora_a, rhs_indices=slots)
        z = mx.gather_mm(z, self.lora_b, rhs_indices=slots)
        return y + (scales * z).astype(x.dtype)

    def append(self, factors: tuple[mx.array, mx.array] | None) -> None:
        """A new last slot: `factors` (a: in x r, b: r x out), or zeros."""
        a, b = factors if factors is not None else (mx.zeros((self.in_dims, 1)), mx.zeros((1, self.out_dims)))
        rank = max(self.lora_a.shape[2], a.shape[1])
        self.lora_a = mx.concatenate([_pad(self.lora_a, 2, rank), _pad(a, 1, rank)[None]])
        self.lora_b = mx.concatenate([_pad(self.lora_b, 1, rank), _pad(b, 0, rank)[None]])
        self._ranks.append(a.shape[1] if factors is not None else 0)

    def remove(self, slot: int) -> None:
        keep = [i for i in range(len(self._ranks)) if i != slot]
        self._ranks = [self._ranks[i] for i in keep]
        rank, index = max(max(self._ranks, default=0), 1), mx.array(keep, dtype=mx.uint32)
        self.lora_a = self.lora_a[index][:, :, :rank]
        self.lora_b = self.lora_b[index][:, :rank]

    @property
    def used(self) -> bool:
        return any(self._ranks)


def linear_dims(linear: nn.Linear | nn.QuantizedLinear) -> tuple[int, int]:
    """(inputs, outputs) of a linear layer, quantized or not."""
    out_dims, in_dims = linear.weight.shape
    if isinstance(linear, nn.QuantizedLinear):
        in_dims = in_dims * 32 // linear.bits
    return in_dims, out_dims


def _pad(x: mx.array, axis: int, size: int) -> mx.array:
    """`x` padded with zeros along `axis` to `size`."""
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, size - x.shape[axis])
    return mx.pad(x, widths)


class AdapterTable:
    """The LoRA adapters loaded over one base module, and the views a batch runs."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.adapters: list[str] = []  # adapter i has slot i in every layer
        self.scales: list[float] = []  # of each adapter
        self.layers: dict[str, MultiLoRALinear] = {}
        self._current = _Slots()

    def model(self, adapter: str | None = None) -> AdapterModel:
        return AdapterModel(self, adapter)

    def add(self, name: str, folder: Path) -> int:
        """Load the adapter in `folder` as `name`; the bytes of its weights."""
        factors, scale = read_adapter(folder)
        modules = dict(self.module.named_modules())
        for path, (a, b) in factors.items():
            layer = modules.get(path)
            base = layer.linear if isinstance(layer, MultiLoRALinear) else layer
            if not isinstance(base, (nn.Linear, nn.QuantizedLinear)):
                raise ValueError(f"{path}: not a linear layer of the model ({type(base).__name__})")
            in_dims, out_dims = linear_dims(base)
            if a.shape[0] != in_dims or b.shape[1] != out_dims or a.shape[1] != b.shape[0]:
                raise ValueError(f"{path}: factors {a.shape} and {b.shape} do not fit a {in_dims} x {out_dims} layer")
        new = [(path, MultiLoRALinear(modules[path], self._current)) for path in factors if path not in self.layers]
        for path, layer in new:  # earlier adapters do not train these layers: zeros for them
            for _ in self.adapters:
                layer.append(None)
            self.layers[path] = layer
        if new:
            self.module.update_modules(tree_unflatten(new))
        for path, layer in self.layers.items():
            layer.append(factors.get(path))
        self.adapters.append(name)
        self.scales.append(scale)
        mx.eval([layer.parameters() for layer in self.layers.values()])
        return sum(a.nbytes + b.nbytes for a, b in factors.values())

    def remove(self, name: str) -> None:
        """Forget adapter `name` (no row may run it any more); unwrap the layers no adapter trains."""
        if name not in self.adapters:
            return
        slot = self.adapters.index(name)
        del self.adapters[slot], self.scales[slot]
        for layer in self.layers.values():
            layer.remove(slot)
        unused = [(path, layer.linear) for path, layer in self.layers.items() if not layer.used]
        if unused:
            self.module.update_modules(tree_unflatten(unused))
            for path, _ in unused:
                del self.layers[path]
        mx.eval([layer.parameters() for layer in self.layers.values()])

    @contextmanager
    def rows(self, adapters: list[str | None]) -> Iterator[None]:
        """During the block, the wrapped layers apply each row's adapter."""
        if not any(adapters):  # base rows only: the layers add nothing, at no cost
            yield
            return
        slots = [0 if a is None else self.adapters.index(a) for a in adapters]
        scales = [0.0 if a is None else self.scales[slot] for a, slot in zip(adapters, slots)]
        self._current.rows = mx.array(slots), mx.array(scales)[:, None, None]
        try:
            yield
        finally:
            self._current.rows = None


class AdapterModel:
    """The base module as a batch runs it: rows of `adapter` (None: the base) and, in a
    batch, of any other adapter of the table, each as its cache's last entry says."""

    def __init__(self, table: AdapterTable, adapter: str | None):
        self.table, self.adapter = table, adapter

    @property
    def layers(self):
        return self.table.module.layers

    def make_cache(self) -> list:
        """A new row of this model's adapter (mlx_lm's `make_prompt_cache` asks for it)."""
        return tagged(make_prompt_cache(self.table.module), Row(self.adapter))

    def __call__(self, inputs: mx.array, cache: list, **kwargs) -> mx.array:
        *layers, tags = cache
        assert isinstance(tags, RowTags)
        with self.table.rows([row.adapter for row in tags.rows]):
            return self.table.module(inputs, cache=layers, **kwargs)


def read_adapter(folder: Path) -> tuple[dict[str, tuple[mx.array, mx.array]], float]:
    """The LoRA factors (a, b) of each layer an mlx_lm adapter trains, and its scale."""
    config = json.loads((folder / "adapter_config.json").read_text())
    kind = config.get("fine_tune_type", "lora")
    if kind != "lora":
        raise ValueError(f"a '{kind}' adapter cannot share its base's batch; only LoRA adapters are supported")
    weights = mx.load(str(folder / "adapters.safetensors"))
    assert isinstance(weights, dict)
    factors: dict[str, dict[str, mx.array]] = {}
    for key, array in weights.items():
        path, _, leaf = key.rpartition(".")
        if leaf not in FACTORS:
            raise ValueError(f"{key}: not a LoRA factor")
        factors.setdefault(path, {})[leaf] = array
    missing = [p for p, f in factors.items() if len(f) != 2]
    if missing:
        raise ValueError(f"{missing[0]}: lora_a or lora_b missing")
    return {p: (f["lora_a"], f["lora_b"]) for p, f in factors.items()}, float(config["lora_parameters"]["scale"])

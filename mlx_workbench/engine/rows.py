"""What the model must know of each row of a batch: the adapter it runs (`adapters.py`) and
the grammar that masks it (`batch_masks.py`).

mlx_lm's BatchGenerator calls the model with the batch's KV caches only, and keeps each row's
cache with the row through every merge, filter, extend, split and extract. So each row's cache
list ends with one more entry, a `RowTags` holding no arrays: merged by mlx_lm with the layers'
caches, it lists the rows of every pass (a prefill of new rows or a decode step of the others)
in the order of the model's input. Caches leave the generator `untagged`, for the prompt cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import llguidance


@dataclass(eq=False)
class Row:
    """One sequence of a batch."""

    adapter: str | None = None  # None: the base model
    matcher: llguidance.LLMatcher | None = None  # its grammar's state; None: free
    # Prompt tokens mlx_lm prefills before the row's first decode step: all but the last of
    # those inserted (in one segment); <= 0 once it decodes.
    prefill: int = 0
    started: bool = False  # decoded once: its input is a sampled token, no longer the prompt's last


class RowTags:
    """The rows of a batch, in order, as a cache entry without arrays: it follows mlx_lm's
    batch cache protocol (`merge`, `extend`, `filter`, `extract`, `prepare`, `finalize`,
    `state`, `nbytes`) so that the generator keeps it in step with the layers' caches."""

    nbytes = 0
    state: tuple = ()

    def __init__(self, rows: list[Row]):
        self.rows = rows

    def merge(self, tags: list[RowTags]) -> RowTags:
        return RowTags([row for t in tags for row in t.rows])

    def extend(self, other: RowTags) -> None:
        self.rows = self.rows + other.rows

    def filter(self, keep: list[int]) -> None:
        self.rows = [self.rows[i] for i in keep]

    def extract(self, index: int) -> RowTags:
        return RowTags([self.rows[index]])

    def prepare(self, **_) -> None:
        pass

    def finalize(self) -> None:
        pass

    def __deepcopy__(self, memo) -> RowTags:
        # mlx_lm copies a prompt batch before splitting it: a row's grammar state stays its own.
        return RowTags(list(self.rows))

    def prefilled(self, width: int) -> None:
        """A prefill pass of `width` positions ran. A row has `width` tokens in it, or fewer
        (right-padded) in its last pass: either way its count ends at or below zero there."""
        for row in self.rows:
            row.prefill -= width


def tagged(kv: list, row: Row) -> list:
    """`kv` (tagged or not) as the cache list of `row`."""
    return [*untagged(kv), RowTags([row])]


def untagged(kv: list) -> list:
    """A cache list as mlx_lm and the prompt cache know it."""
    return kv[:-1] if kv and isinstance(kv[-1], RowTags) else kv

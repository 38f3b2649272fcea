"""Prompt (prefix) cache: reuse the KV cache of a shared prefix, so turn N of a
conversation does not process the history again.

A thin layer over mlx_lm's LRUPromptCache (a trie of token prefixes, trimmed to
the longest common prefix), one per pool entry so that unloading an entry drops
its caches; this adds hit/miss counts and always leaves at least one prompt token
to feed the model. Device thread only.
"""

from __future__ import annotations

from typing import Any

from mlx_lm.models.cache import LRUPromptCache, can_trim_prompt_cache, trim_prompt_cache


class PromptCache:
    def __init__(self, max_size: int, max_bytes: int | None = None):
        self.max_size = max_size  # cached prefixes per entry; 0 disables the cache
        self.max_bytes = max_bytes  # over all entries; None: no limit
        self.hits = 0
        self.misses = 0
        self._by_entry: dict[str, LRUPromptCache] = {}

    def fetch(self, key: str, tokens: list[int]) -> tuple[list[Any] | None, list[int]]:
        """(a copy of the KV cache of the longest cached prefix of `tokens`, or
        None; the tokens still to process, never empty)."""
        lru = self._by_entry.get(key)
        cache, rest = lru.fetch_nearest_cache(key, tokens) if lru else (None, tokens)
        if cache is not None and not rest:
            # An exact match: the last token must still be fed, its logits start generation.
            if can_trim_prompt_cache(cache):
                trim_prompt_cache(cache, 1)
                rest = tokens[-1:]
            else:
                cache, rest = None, tokens
        if cache is None:
            self.misses += 1
        else:
            self.hits += 1
        return cache, rest

    def store(self, key: str, tokens: list[int], kv_cache: list[Any]) -> None:
        """Keep `kv_cache`, which holds exactly `tokens`, for later prompts."""
        if self.max_size > 0 and tokens:
            lru = self._by_entry.setdefault(key, LRUPromptCache(max_size=self.max_size))
            lru.insert_cache(key, list(tokens), kv_cache)
        while self.max_bytes is not None and self.nbytes > self.max_bytes:
            biggest = max(self._by_entry.values(), key=lambda lru: lru.nbytes)
            biggest.trim_to(n_sequences=len(biggest) - 1)  # drops its least recently used prefix

    def drop(self, key: str) -> None:
        """Forget what is cached for entry `key` (it was unloaded)."""
        self._by_entry.pop(key, None)

    def clear(self) -> None:
        self._by_entry.clear()

    @property
    def nbytes(self) -> int:
        return sum(lru.nbytes for lru in self._by_entry.values())

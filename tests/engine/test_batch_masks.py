"""Grammar masks over a whole batch (engine/batch_masks.py): each row keeps its own grammar
through prefill in chunks, rows joining and leaving, n > 1 and the prompt cache."""

from __future__ import annotations

import asyncio
import copy
import re

from engine_helpers import chat, texts

from mlx_workbench.engine.requests import Constraint
from mlx_workbench.engine.rows import Row, RowTags

DIGITS = Constraint("regex", "[0-9]{6,12}")
WORDS = Constraint("choice", ["alpha", "beta", "gamma delta"])


def valid(constraint: Constraint, text: str) -> bool:
    return bool(re.fullmatch(constraint.value, text)) if constraint.kind == "regex" else text in constraint.value


async def run_async(engine, request) -> list:
    return [event async for event in engine.agenerate(request)]


async def test_each_row_keeps_its_grammar_in_a_mixed_batch(make_engine):
    # Prompts of many lengths prefilled 4 tokens at a time: right-padded prefill passes.
    engine = make_engine(prefill_step_size=4, prompt_cache_size=0)
    requests = [
        chat("the quick brown fox jumps", constraint=DIGITS, max_tokens=20),
        chat("hello", max_tokens=5),  # leaves the batch early
        chat("how are you today, my friend?", constraint=WORDS, max_tokens=20),
        chat("0123456789 0123456789", max_tokens=24),
        chat("lazy dog", n=3, temperature=1.0, seed=7, constraint=DIGITS, max_tokens=20),
        chat("world", constraint=WORDS, temperature=1.0, seed=3, max_tokens=20),
    ]
    alone = [texts(await run_async(engine, r)) for r in requests]
    together = [texts(events) for events in await asyncio.gather(*[run_async(engine, r) for r in requests])]
    assert together == alone
    for request, answers in zip(requests, together):
        constraint = request.sampling.constraint
        if constraint is not None:
            assert all(valid(constraint, a) for a in answers), answers


async def test_a_constrained_row_joins_a_running_batch_from_the_prompt_cache(make_engine):
    engine = make_engine()
    first = await run_async(engine, chat("tell me about the sea", constraint=DIGITS, max_tokens=20))
    free = asyncio.ensure_future(run_async(engine, chat("a long free answer", max_tokens=48)))
    await asyncio.sleep(0.05)
    again = await run_async(engine, chat("tell me about the sea", constraint=DIGITS, max_tokens=20))
    assert texts(again) == texts(first) and valid(DIGITS, texts(again)[0])
    assert again[-1].usage.cached_tokens > 0
    await free


def test_row_tags_follow_mlx_lm_cache_protocol():
    rows = [Row(prefill=p) for p in (3, 1, 0)]
    merged = RowTags([]).merge([RowTags([r]) for r in rows])
    assert merged.rows == rows
    merged.filter([0, 2])
    assert merged.rows == [rows[0], rows[2]]
    merged.extend(RowTags([rows[1]]))
    assert [t.rows for t in (merged.extract(2),)] == [[rows[1]]]
    copied = copy.deepcopy(merged)
    assert copied.rows == merged.rows and copied.rows is not merged.rows  # the same rows, a list of its own
    # Passes of 2 positions over prompts of 3 and 1 tokens to prefill (the second right-padded).
    tags = RowTags([Row(prefill=3), Row(prefill=1)])
    tags.prefilled(2)
    assert [r.prefill > 0 for r in tags.rows] == [True, False]
    tags.filter([0])
    tags.prefilled(2)
    assert tags.rows[0].prefill <= 0

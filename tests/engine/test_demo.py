"""The shipped demo models through the engine: every greedy answer in answers.json,
alone and all at once in one batch, adapters included; seeds on a trained model."""

from __future__ import annotations

import asyncio

import pytest
from engine_helpers import texts

from mlx_workbench.demo import DEMO_MODELS, load_answers
from mlx_workbench.engine.config import EngineConfig, ModelSpec
from mlx_workbench.engine.engine import Engine
from mlx_workbench.engine.requests import Delta, Done, GenerationRequest, SamplingParams

ANSWERS = load_answers()


@pytest.fixture(scope="module")
def demo_engine():
    engine = Engine(
        EngineConfig(models={name: ModelSpec(name, m["path"], m["adapters"]) for name, m in DEMO_MODELS.items()})
    )
    engine.start()
    yield engine
    engine.stop()


def ask(row: dict, **sampling) -> GenerationRequest:
    messages = [{"role": "system", "content": row["system"]}] if row["system"] else []
    messages.append({"role": "user", "content": row["user"]})
    return GenerationRequest(
        model=row["model"],
        adapter=row["adapter"],
        messages=messages,
        sampling=SamplingParams(**{"temperature": 0.0, "max_tokens": 200, **sampling}),
    )


async def answer(engine, request) -> str:
    return texts([event async for event in engine.agenerate(request)])[0]


def test_greedy_answers_equal_raw_mlx_lm(demo_engine):
    from mlx_lm import generate, load

    rows = [r for r in ANSWERS if r["model"] == "demo" and r["adapter"] is None]
    model, tokenizer = load(DEMO_MODELS["demo"]["path"])
    for row in rows:
        request = ask(row)
        prompt = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True)
        raw = generate(model, tokenizer, prompt, max_tokens=200)
        assert texts(list(demo_engine.generate(request))) == [raw], row


async def test_every_answer_alone_then_all_batched(demo_engine):
    alone = [await answer(demo_engine, ask(row)) for row in ANSWERS]
    batched = await asyncio.gather(*[answer(demo_engine, ask(row)) for row in ANSWERS])
    assert batched == alone
    assert alone == [row["answer"] for row in ANSWERS]


async def test_seeded_sampling_is_the_same_alone_and_batched(demo_engine):
    row = next(r for r in ANSWERS if "story" in r["user"].lower())
    seeded = dict(temperature=1.2, seed=42, max_tokens=60)
    alone = await answer(demo_engine, ask(row, **seeded))
    crowd = [ask(r, temperature=1.2, max_tokens=60) for r in ANSWERS[:8]]
    together = await asyncio.gather(answer(demo_engine, ask(row, **seeded)), *[answer(demo_engine, r) for r in crowd])
    assert together[0] == alone


async def test_tokens_of_a_running_stream_travel_together():
    """With a delivery interval longer than the whole story, the story's first token
    comes alone (time to first token does not wait) and the rest in one batch with the
    end; the text is the same as token by token."""
    story = next(
        r
        for r in ANSWERS
        if r["model"] == "demo" and not r["adapter"] and not r["system"] and r["user"] == "Tell me a story."
    )
    engine = Engine(
        EngineConfig(models={"demo": ModelSpec("demo", DEMO_MODELS["demo"]["path"])}, delivery_interval=60.0)
    )
    engine.start()
    try:
        batches = [batch async for batch in engine.astream(ask(story))]
    finally:
        engine.stop()
    with_text = [[e for e in batch if isinstance(e, Delta)] for batch in batches]
    with_text = [deltas for deltas in with_text if deltas]
    assert [len(deltas) for deltas in with_text][0] == 1
    assert len(with_text) == 2 and isinstance(batches[-1][-1], Done)
    assert "".join(d.text for deltas in with_text for d in deltas) == story["answer"]

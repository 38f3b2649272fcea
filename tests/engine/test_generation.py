"""Generation through the engine: events, batching, n, stops, logprobs, seeds, limits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from engine_helpers import chat, texts

from mlx_workbench.engine.errors import ContextLengthExceeded, InvalidRequest, ModelNotFound, QueueFull
from mlx_workbench.engine.requests import (
    Delta,
    Done,
    Failed,
    Finished,
    GenerationRequest,
    Progress,
    SamplingParams,
    Started,
)

PROMPTS = ["hello", "how are you today?", "the quick brown fox", "0123456789", "lazy dog", "world"]


def run(engine, request) -> list:
    return list(engine.generate(request))


async def run_async(engine, request) -> list:
    return [event async for event in engine.agenerate(request)]


def test_events_arrive_in_contract_order(engine):
    events = run(engine, chat("hello", max_tokens=8))
    assert isinstance(events[0], Started) and events[0].prompt_tokens > 0
    kinds = [type(e) for e in events[1:] if not isinstance(e, Progress)]
    assert set(kinds[:-2]) <= {Delta} and kinds[-2:] == [Finished, Done]
    assert events[-2].reason == "length"
    usage = events[-1].usage
    assert usage.completion_tokens == 8 == sum(len(e.token_ids) for e in events if isinstance(e, Delta))
    assert usage.prompt_tokens == events[0].prompt_tokens
    assert usage.time_to_first_token > 0
    assert usage.tokens_per_second * usage.generation_seconds == pytest.approx(7)  # the steps after the first


async def test_concurrent_requests_batch_and_match_running_alone(make_engine):
    engine = make_engine(prompt_cache_size=0)
    alone = [texts(await run_async(engine, chat(p, max_tokens=24)))[0] for p in PROMPTS]
    peak = []

    async def watch():
        while True:
            peak.append(engine.status().active_requests)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    together = await asyncio.gather(*[run_async(engine, chat(p, max_tokens=24)) for p in PROMPTS])
    watcher.cancel()
    assert [texts(events)[0] for events in together] == alone
    assert max(peak) > 1  # they were in the batch at the same time


def test_sync_and_async_apis_agree(engine):
    request = chat("hello world", max_tokens=12)
    assert texts(run(engine, request)) == texts(asyncio.run(run_async(engine, chat("hello world", max_tokens=12))))


def test_n_choices_share_the_prompt(engine):
    greedy = texts(run(engine, chat("hello", n=3, max_tokens=10)))
    assert len(greedy) == 3 and len(set(greedy)) == 1
    sampled = texts(run(engine, chat("hello", n=3, max_tokens=10, temperature=1.5, seed=7)))
    assert len(set(sampled)) > 1  # each choice has its own random stream


def test_n_choices_process_the_prompt_once(make_engine):
    engine = make_engine(prompt_cache_size=0)
    events, batch = [], None
    for event in engine.generate(chat("how are you today?", n=3, max_tokens=6)):
        events.append(event)
        batch = batch or engine.batch("tiny")  # dropped once idle: hold on to it
    assert len(texts(events)) == 3
    counters = batch.generator._counters
    assert counters.prompt_tokens == events[0].prompt_tokens - 1  # the last token starts each choice


async def test_choices_yet_to_fork_keep_their_places_in_the_batch(make_engine):
    """A request with n = batch size fills the batch, though its other choices join only
    after its prefill: a request behind it waits until it is over."""
    engine = make_engine(completion_batch_size=4, prompt_cache_size=0)
    seen = []

    async def follow(name: str, request):
        async for event in engine.agenerate(request):
            seen.append((name, type(event).__name__))

    await asyncio.gather(
        follow("full", chat("how are you today?", n=4, max_tokens=6)), follow("next", chat("hello", max_tokens=6))
    )
    assert seen.index(("next", "Started")) > seen.index(("full", "Done")), seen


async def test_seeded_request_gives_the_same_output_alone_and_batched(engine):
    seeded = chat("hello", max_tokens=20, temperature=1.0, seed=1234)
    alone = texts(await run_async(engine, seeded))
    others = [chat(p, max_tokens=20, temperature=1.0) for p in PROMPTS]
    batched = await asyncio.gather(
        run_async(engine, chat("hello", max_tokens=20, temperature=1.0, seed=1234)),
        *[run_async(engine, r) for r in others],
    )
    assert texts(batched[0]) == alone


def test_stop_string_across_tokens(engine):
    full = texts(run(engine, chat("hello", max_tokens=24)))[0]
    assert len(full) > 6
    stop = full[3:6]  # spans token boundaries in most outputs; cut wherever it first appears
    events = run(engine, chat("hello", max_tokens=24, stop=[stop]))
    assert texts(events) == [full[: full.index(stop)]]
    assert [e.reason for e in events if isinstance(e, Finished)] == ["stop"]


def test_stop_string_completed_by_the_last_allowed_token(engine):
    full = texts(run(engine, chat("hello", max_tokens=10)))[0]
    events = run(engine, chat("hello", max_tokens=10, stop=[full]))
    assert texts(events) == [""]
    assert [e.reason for e in events if isinstance(e, Finished)] == ["stop"]


def test_status_counts_requests_and_tokens(engine):
    stream = engine.generate(chat("hello", max_tokens=300))
    next(stream)
    status = engine.status()
    assert status.active_requests == 1
    assert next(e for e in status.entries if e.id == "tiny").active_requests == 1
    list(stream)
    status = engine.status()
    assert status.generated_tokens >= 300 and status.tokens_per_second > 0
    assert status.active_requests == 0 and status.memory.active > 0 and status.memory.device


def test_logprobs(engine):
    events = run(engine, chat("hello", max_tokens=6, logprobs=True, top_logprobs=3))
    logprobs = [lp for e in events if isinstance(e, Delta) for lp in e.logprobs]
    ids = [t for e in events if isinstance(e, Delta) for t in e.token_ids]
    assert [lp.token_id for lp in logprobs] == ids
    for lp in logprobs:
        assert lp.logprob <= 0 and len(lp.top) == 3
        assert lp.top[0].token_id == lp.token_id  # greedy picks the top token
        assert lp.top[0].logprob >= lp.top[1].logprob >= lp.top[2].logprob


def test_text_prompt_and_token_ids(engine):
    ids = run(
        engine,
        GenerationRequest(model="tiny", prompt=[5, 6, 7, 8], sampling=SamplingParams(temperature=0, max_tokens=5)),
    )
    assert ids[0].prompt_tokens == 4 and isinstance(ids[-1], Done)
    bad = run(engine, GenerationRequest(model="tiny", prompt=[10**6], sampling=SamplingParams(max_tokens=5)))
    assert isinstance(bad[-1], Failed) and isinstance(bad[-1].error, InvalidRequest)
    text = run(
        engine,
        GenerationRequest(model="tiny", prompt="hello world", sampling=SamplingParams(temperature=0, max_tokens=5)),
    )
    assert isinstance(text[-1], Done) and text[-1].usage.completion_tokens == 5


def test_max_tokens_is_capped(make_engine):
    engine = make_engine(max_tokens_cap=3)
    assert run(engine, chat("hello", max_tokens=50))[-1].usage.completion_tokens == 3


def test_prompt_longer_than_context_fails_before_started(engine):
    events = run(engine, GenerationRequest(model="tiny", prompt=[5] * 600, sampling=SamplingParams(max_tokens=5)))
    assert len(events) == 1 and isinstance(events[0].error, ContextLengthExceeded)
    assert events[0].error.limit == 512


def test_long_prompt_reports_prefill_progress(make_engine):
    engine = make_engine(prefill_step_size=64)
    events = run(engine, GenerationRequest(model="tiny", prompt=[5] * 300, sampling=SamplingParams(max_tokens=2)))
    progress = [e for e in events if isinstance(e, Progress)]
    assert len(progress) >= 4 and progress[-1].total == 300
    assert [p.processed for p in progress] == sorted(p.processed for p in progress)


def test_submit_time_errors_raise_before_any_event(make_engine):
    engine = make_engine(queue_limit=1)
    with pytest.raises(ModelNotFound) as missing:
        next(engine.generate(chat("hi", model="nope")))
    assert "tiny" in missing.value.known and "tiny:a" in missing.value.known
    with pytest.raises(ModelNotFound):
        next(engine.generate(chat("hi", model="tiny:nope")))
    with pytest.raises(InvalidRequest):
        next(engine.generate(chat("hi", n=0)))


def test_queue_limit(make_engine):
    engine = make_engine(queue_limit=1, completion_batch_size=1)
    engine.load("tiny").result(30)
    generating = engine.generate(chat("hello", max_tokens=400))
    assert isinstance(next(generating), Started)  # fills the batch
    results: list = []
    waiting = engine.generate(chat("the quick brown fox", max_tokens=3))
    threading.Thread(target=lambda: results.append(list(waiting))).start()
    deadline = time.monotonic() + 5  # until the device thread has it waiting for the batch
    while engine.status().entries[0].active_requests < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    # The queue is full too: one more is refused before it starts, the others carry on.
    (refused,) = list(engine.generate(chat("one too many")))
    assert isinstance(refused, Failed) and isinstance(refused.error, QueueFull)
    generating.close()  # cancels: the waiting request gets the batch
    deadline = time.monotonic() + 30
    while not results and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(results[0][-1], Done) and engine.status().queued_requests == 0


def test_prompt_cache_reuses_the_conversation_prefix(engine):
    turn1 = [{"role": "user", "content": "hello"}]
    events = run(
        engine, GenerationRequest(model="tiny", messages=turn1, sampling=SamplingParams(temperature=0, max_tokens=8))
    )
    answer = texts(events)[0]
    turn2 = turn1 + [{"role": "assistant", "content": answer}, {"role": "user", "content": "how are you?"}]
    events = run(
        engine, GenerationRequest(model="tiny", messages=turn2, sampling=SamplingParams(temperature=0, max_tokens=8))
    )
    started = events[0]
    assert started.cached_tokens >= events[0].prompt_tokens // 2
    assert events[-1].usage.cached_tokens == started.cached_tokens
    status = engine.status()
    assert status.prompt_cache_hits >= 1 and status.prompt_cache_misses >= 1
    assert status.prompt_cache_bytes == engine.scheduler.cache.nbytes > 0


def test_prompt_cache_stays_within_its_byte_bound(make_engine):
    unbounded = make_engine()
    for p in PROMPTS:
        run(unbounded, chat(p, max_tokens=30))
    everything = unbounded.status().prompt_cache_bytes
    bound = everything // 2
    engine = make_engine(prompt_cache_bytes=bound)
    for p in PROMPTS:
        run(engine, chat(p, max_tokens=30))
    assert 0 < engine.status().prompt_cache_bytes <= bound


def test_prompt_scoring_in_chunks_equals_one_pass(models, monkeypatch):
    """PromptScore runs the prompt a chunk per step over a KV cache: the same logprobs
    as one pass over the whole prompt. (On this thread: no engine runs here.)"""
    import mlx.core as mx
    import mlx_lm

    from mlx_workbench.engine import scoring

    def score(prompt: list[int]) -> tuple[list, int]:
        scorer, steps = scoring.PromptScore(model, prompt, 3, tokenizer), 1
        while not scorer.step():
            steps += 1
        return scorer.tokens, steps

    model, tokenizer = mlx_lm.load(str(models["tiny"]))
    tokens = tokenizer.encode("hello world, how are you today? " * 4)
    whole, steps = score(tokens)
    assert steps == 1
    monkeypatch.setattr(scoring, "CHUNK", 5)  # several chunks, the last one short
    chunked, steps = score(tokens)
    assert steps == -(-(len(tokens) - 1) // 5)
    assert [t.token_id for t in whole] == [t.token_id for t in chunked] == tokens
    assert whole[0].logprob is None and whole[0].top == []
    assert [t.logprob for t in chunked[1:]] == pytest.approx([t.logprob for t in whole[1:]], abs=1e-4)
    assert [[a.token_id for a in t.top] for t in chunked] == [[a.token_id for a in t.top] for t in whole]
    logits = model(mx.array(tokens)[None])[0].astype(mx.float32)
    direct = (logits - mx.logsumexp(logits, axis=-1, keepdims=True))[mx.arange(len(tokens) - 1), mx.array(tokens[1:])]
    assert [t.logprob for t in whole[1:]] == pytest.approx(direct.tolist(), abs=1e-4)
    assert [(t.token_id, t.logprob) for t in score(tokens[:1])[0]] == [(tokens[0], None)]  # nothing to score


def test_generation_after_scoring_starts_from_the_scored_prompt(make_engine, monkeypatch):
    """The scoring pass leaves the KV cache generation starts from: the prompt is not
    computed again, and the choices are what they are without scoring."""
    from mlx_workbench.engine import scoring

    monkeypatch.setattr(scoring, "CHUNK", 8)  # several chunks
    engine = make_engine(prompt_cache_size=0)

    def request(prompt, **fields) -> GenerationRequest:
        return GenerationRequest(
            model="tiny", prompt=prompt, sampling=SamplingParams(max_tokens=8, temperature=0), **fields
        )

    prompt = "how are you today? " * 4
    events, batch = [], None
    for event in engine.generate(request(prompt, prompt_logprobs=1, n=2)):
        events.append(event)
        batch = batch or engine.batch("tiny")  # dropped once idle: hold on to it
    assert texts(events) == texts(run(engine, request(prompt))) * 2
    assert batch.generator._counters.prompt_tokens == 0  # only the last token, which starts each choice
    assert texts(run(engine, request([5], prompt_logprobs=1))) == texts(run(engine, request([5])))  # nothing scored


async def test_prompts_to_score_take_turns_with_decode_steps(engine, monkeypatch):
    """Scoring runs forward passes over a prompt on the device thread: one request to
    score at a time, a chunk of its prompt per round, and a running stream gets its
    tokens in between."""
    from mlx_workbench.engine import scoring

    monkeypatch.setattr(scoring, "CHUNK", 8)  # the prompts below take 5 chunks each
    seen = []

    async def follow(name: str, request):
        async for event in engine.agenerate(request):
            seen.append((name, type(event).__name__))

    stream = asyncio.create_task(follow("stream", chat("hello", max_tokens=200, logit_bias={0: -100})))
    while ("stream", "Delta") not in seen:
        await asyncio.sleep(0.001)
    scoring = [
        GenerationRequest(
            model="tiny", prompt="how are you today? " * 8, prompt_logprobs=1, sampling=SamplingParams(max_tokens=0)
        )
        for _ in range(4)
    ]
    await asyncio.gather(*(follow(f"score{i}", r) for i, r in enumerate(scoring)))
    stream.cancel()

    def stream_tokens_between(first: tuple, last: tuple) -> int:
        return sum(1 for event in seen[seen.index(first) : seen.index(last)] if event == ("stream", "Delta"))

    for i in range(4):  # its chunks took turns with the stream's steps
        assert stream_tokens_between((f"score{i}", "Started"), (f"score{i}", "PromptLogprobs")) >= 4, seen
    for i in range(3):  # and the next one started once it was over
        assert seen.index((f"score{i}", "Done")) < seen.index((f"score{i + 1}", "Started")), seen

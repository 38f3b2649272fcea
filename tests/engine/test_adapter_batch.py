"""Adapters in one batch (engine/adapters.py): rows of a base and of its LoRA adapters,
of different ranks, scales and layer sets, run in the base's one batch, and each gets
what mlx_lm's own single-adapter path (a module of its own, the tuner's LoRA layers)
computes."""

from __future__ import annotations

import asyncio
import json
import threading

import mlx.core as mx
import mlx.nn as nn
import pytest
from engine_helpers import texts
from mlx_lm.models.cache import make_prompt_cache
from test_cancel import wait_until
from tiny_model import build_tiny_adapter

from mlx_workbench.engine.adapters import AdapterTable, MultiLoRALinear
from mlx_workbench.engine.config import ModelSpec
from mlx_workbench.engine.errors import LoadFailed
from mlx_workbench.engine.requests import (
    Delta,
    Done,
    Failed,
    GenerationRequest,
    PromptLogprobs,
    SamplingParams,
    Started,
)
from mlx_workbench.engine.rows import Row, RowTags

ADAPTERS = ("a", "b", "c")


@pytest.fixture(scope="module")
def adapters(models, tmp_path_factory) -> dict:
    """ "a" and "b" (rank 4, scale 20, every linear layer of both layers) and "c" (rank 8,
    scale 10, only q_proj and v_proj of the last layer), and one that fits no layer."""
    root = tmp_path_factory.mktemp("adapters")
    c = build_tiny_adapter(
        models["tiny"],
        root / "c",
        rank=8,
        seed=3,
        num_layers=1,
        scale=10.0,
        keys=["self_attn.q_proj", "self_attn.v_proj"],
    )
    misfit = build_tiny_adapter(models["wide"], root / "misfit", seed=4)  # for a wider model
    return {"a": models["a"], "b": models["b"], "c": c, "misfit": misfit}


@pytest.fixture
def lora_engine(make_engine, models, adapters):
    spec = ModelSpec("tiny", str(models["tiny"]), {name: str(path) for name, path in adapters.items()})
    return make_engine(models={"tiny": spec})


def reference(models, adapter_dir=None) -> nn.Module:
    """The single-adapter path: a module of its own with mlx_lm's tuner applying the adapter."""
    from mlx_lm.tuner.utils import load_adapters
    from mlx_lm.utils import load_model

    module, _ = load_model(models["tiny"])
    if adapter_dir is not None:
        load_adapters(module, str(adapter_dir))
    module.eval()
    return module


def close(x: mx.array, y: mx.array) -> bool:
    """Within 1e-4 everywhere."""
    return bool(mx.all(mx.abs(x - y) < 1e-4).item())


def log_softmax(logits: mx.array) -> mx.array:
    logits = logits.astype(mx.float32)
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def test_each_row_gets_its_own_adapter_in_one_pass(models, adapters):
    from mlx_lm.utils import load_model

    module, _ = load_model(models["tiny"])
    table = AdapterTable(module)
    for name in ADAPTERS:
        table.add(name, adapters[name])
    rows = [None, "c", "a", None, "b", "a"]
    tokens = mx.array([[5, 6, 7, 8, 9, 10]] * len(rows))
    layers = len(make_prompt_cache(module))
    batched = log_softmax(table.model()(tokens, cache=[None] * layers + [RowTags([Row(a) for a in rows])]))
    alone = {name: log_softmax(reference(models, adapters[name] if name else None)(tokens[:1])) for name in set(rows)}
    for i, name in enumerate(rows):
        if name is None:  # a base row gets the base's exact logits: zeros add nothing
            assert mx.array_equal(batched[i], alone[None][0])
        else:
            assert close(batched[i], alone[name][0]), name
    table.remove("a")  # the others keep their slots' factors, ranks and scales
    rows = ["b", None, "c"]
    batched = log_softmax(table.model()(tokens[:3], cache=[None] * layers + [RowTags([Row(a) for a in rows])]))
    for i, name in enumerate(rows):
        assert close(batched[i], alone[name][0]), name
    table.remove("b")
    table.remove("c")
    assert not table.layers and not any(isinstance(m, MultiLoRALinear) for _, m in module.named_modules())


def test_an_adapter_that_fits_no_layer_is_refused_and_changes_nothing(models, adapters):
    from mlx_lm.utils import load_model

    module, _ = load_model(models["tiny"])
    table = AdapterTable(module)
    table.add("a", adapters["a"])
    with pytest.raises(ValueError, match="do not fit"):
        table.add("misfit", adapters["misfit"])
    assert table.adapters == ["a"] and all(layer.lora_a.shape[0] == 1 for layer in table.layers.values())


def run(engine, request) -> list:
    return list(engine.generate(request))


def ask(model: str, prompt: list[int], n: int = 1, **sampling) -> GenerationRequest:
    name, _, adapter = model.partition(":")
    params = SamplingParams(**{"temperature": 0.0, "max_tokens": 12, **sampling})
    return GenerationRequest(model=name, adapter=adapter or None, prompt=prompt, sampling=params, n=n)


async def collect(engine, request) -> list:
    return [event async for event in engine.agenerate(request)]


def all_at_once(engine, requests: list[GenerationRequest]) -> list[list]:
    """Run `requests` submitted while the device thread waits: they start in one step."""
    gate, results = threading.Event(), [[] for _ in requests]
    engine.device.post(gate.wait)
    threads = [
        threading.Thread(target=lambda r=r, out=out: out.extend(run(engine, r))) for r, out in zip(requests, results)
    ]
    for thread in threads:
        thread.start()
    wait_until(lambda: engine.status().queued_requests == len(requests))
    gate.set()
    for thread in threads:
        thread.join(120)
    return results


def test_mixed_batch_logprobs_match_the_single_adapter_path(lora_engine, models, adapters, monkeypatch):
    """Base and adapter rows decode together in the base's one batch; each adapter's
    tokens and logprobs are those of mlx_lm's single-adapter path within 1e-4."""
    for name in ADAPTERS:
        lora_engine.load("tiny", name).result(30)
    passes = []
    rows = AdapterTable.rows
    monkeypatch.setattr(
        AdapterTable, "rows", lambda table, adapters: (passes.append(set(adapters)), rows(table, adapters))[1]
    )
    prompt = [5, 6, 7, 8, 9]
    ids = ["tiny", "tiny:a", "tiny:b", "tiny:c", "tiny:c", "tiny:a"]
    results = all_at_once(lora_engine, [ask(m, prompt, max_tokens=10, logprobs=True) for m in ids])
    assert {None, "a", "b", "c"} in passes  # one forward pass ran all of them
    for model, events in zip(ids, results):
        assert isinstance(events[-1], Done), events[-1]
        tokens = [t for e in events if isinstance(e, Delta) for t in e.token_ids]
        logprobs = [lp.logprob for e in events if isinstance(e, Delta) for lp in e.logprobs or []]
        adapter = model.partition(":")[2]
        expected = log_softmax(reference(models, adapters[adapter] if adapter else None)(mx.array([prompt + tokens])))
        positions = range(len(prompt) - 1, len(prompt) - 1 + len(tokens))
        assert tokens == [expected[0, p].argmax().item() for p in positions], model  # greedy
        want = expected[0, list(positions), tokens]
        assert len(logprobs) == len(tokens) and close(mx.array(logprobs), want), model


async def test_rows_join_and_leave_mid_decode(lora_engine):
    """Adapter requests join a running base stream's batch and end while it goes on;
    every answer is what it is alone."""

    def requests() -> list[GenerationRequest]:
        return [ask("tiny", [5, 6, 7], max_tokens=400)] + [
            ask(m, [11, 12, 13], max_tokens=6) for m in ("tiny:a", "tiny:c", "tiny:b")
        ]

    alone = [run(lora_engine, r) for r in requests()]
    assert alone[0][-1].usage.completion_tokens == 400  # long enough to outlast the others
    long, *short = requests()
    base = lora_engine.agenerate(long)
    events = [await anext(base)]
    while not isinstance(events[-1], Delta):  # decoding
        events.append(await anext(base))
    joined = await asyncio.gather(*[collect(lora_engine, r) for r in short])
    assert lora_engine.batch("tiny") is not None and long.id in lora_engine.request_ids()  # still decoding
    events += [e async for e in base]
    assert [texts(events), *map(texts, joined)] == [texts(e) for e in alone]


def test_n_choices_of_different_adapters_in_one_batch(lora_engine):
    """Seeded requests with n > 1 on different adapters and the base: each choice as alone."""

    def requests() -> list[GenerationRequest]:
        return [ask(m, [5, 6, 7], n=3, temperature=1.0, seed=7) for m in ("tiny:a", "tiny:c", "tiny")]

    alone = [texts(run(lora_engine, r)) for r in requests()]
    together = all_at_once(lora_engine, requests())
    assert [texts(events) for events in together] == alone
    assert all(len(set(choices)) > 1 for choices in alone)  # the seeds do differ per choice


def test_cancelling_an_adapter_row_leaves_the_others(lora_engine):
    keep = ask("tiny:b", [5, 6, 7], max_tokens=40)
    expected = texts(run(lora_engine, keep))
    keep.id += "-again"
    result: list = []
    other = threading.Thread(target=lambda: result.extend(run(lora_engine, keep)))
    stream = lora_engine.generate(ask("tiny:a", [8, 9], max_tokens=400))
    assert isinstance(next(stream), Started)
    other.start()
    deltas = 0
    for event in stream:
        deltas += isinstance(event, Delta)
        if deltas == 2:
            break
    stream.close()  # cancels
    other.join(60)
    assert texts(result) == expected
    wait_until(lambda: lora_engine.status().active_requests == 0)
    lora_engine.unload("tiny", "a").result(30)  # no row runs it any more
    assert lora_engine.scheduler.pool.entries["tiny"].state == "loaded"


async def test_adapters_load_and_fail_while_others_decode(lora_engine):
    """Loading an adapter adds it to the running batch's table; an adapter that cannot
    load fails its request alone; unloading one leaves the batch going."""
    lora_engine.load("tiny", "a").result(30)
    long = [ask(m, [5, 6, 7], max_tokens=80) for m in ("tiny", "tiny:a")]
    alone = [texts(run(lora_engine, r)) for r in long]
    for r in long:
        r.id += "-again"
    running = [asyncio.create_task(collect(lora_engine, r)) for r in long]
    await asyncio.to_thread(wait_until, lambda: lora_engine.status().generated_tokens > 0)
    failed = await collect(lora_engine, ask("tiny:misfit", [5, 6]))
    assert isinstance(failed[-1], Failed) and isinstance(failed[-1].error, LoadFailed)
    assert "do not fit" in failed[-1].error.message
    joined = await collect(lora_engine, ask("tiny:c", [5, 6], max_tokens=5))  # loads mid-decode
    assert isinstance(joined[-1], Done)
    lora_engine.unload("tiny", "c").result(30)
    assert [texts(await task) for task in running] == alone
    entries = {e.id: e for e in lora_engine.status().entries}
    assert entries["tiny:misfit"].state == "failed" and entries["tiny:c"].state == "unloaded"
    assert entries["tiny:a"].state == "loaded" and entries["tiny:a"].memory_bytes > 0


def test_the_prompt_cache_keys_on_base_and_adapter(lora_engine):
    prompt = list(range(5, 40))
    first = run(lora_engine, ask("tiny:a", prompt, max_tokens=3))
    other = run(lora_engine, ask("tiny:b", prompt, max_tokens=3))
    again = run(lora_engine, ask("tiny:a", prompt, max_tokens=3))
    cached = [events[0].cached_tokens for events in (first, other, again)]
    assert cached[0] == 0 and cached[1] == 0 and cached[2] > 0  # a's prefix never served to b
    assert texts(again) == texts(first)


def test_a_non_lora_adapter_is_refused(make_engine, models, adapters, tmp_path):
    dora = tmp_path / "dora"
    dora.mkdir()
    config = json.loads((adapters["a"] / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "fine_tune_type": "dora"}))
    (dora / "adapters.safetensors").write_bytes((adapters["a"] / "adapters.safetensors").read_bytes())
    engine = make_engine(models={"tiny": ModelSpec("tiny", str(models["tiny"]), {"dora": str(dora)})})
    events = run(engine, ask("tiny:dora", [5, 6]))
    failed = events[-1]
    assert isinstance(failed, Failed) and "only LoRA adapters" in str(failed.error)
    assert isinstance(run(engine, ask("tiny", [5, 6]))[-1], Done)


def test_an_adapters_prompt_is_scored_with_the_adapter(lora_engine, models, adapters):
    """Echo with logprobs runs the prompt through the adapter's rows, then generates from it."""
    prompt = [5, 6, 7, 8, 9, 10]
    request = ask("tiny:c", prompt, max_tokens=3)
    request.prompt_logprobs = 1
    events = run(lora_engine, request)
    assert isinstance(events[-1], Done)
    (scored,) = [e for e in events if isinstance(e, PromptLogprobs)]
    expected = log_softmax(reference(models, adapters["c"])(mx.array([prompt])))[0]
    want = expected[mx.arange(len(prompt) - 1), mx.array(prompt[1:])]
    assert close(mx.array([t.logprob for t in scored.tokens[1:]]), want)
    generated = [t for e in events if isinstance(e, Delta) for t in e.token_ids]
    assert generated[0] == expected[-1].argmax().item()

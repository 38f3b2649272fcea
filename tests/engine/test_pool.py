"""The model pool: eviction, pinning, adapters sharing the base, shared and failing loads."""

from __future__ import annotations

import shutil
import time

import pytest
from engine_helpers import chat, texts

from mlx_workbench.engine.config import ModelSpec
from mlx_workbench.engine.errors import LoadFailed, MemoryBudgetExceeded, ModelBusy, ModelNotFound
from mlx_workbench.engine.pool import MAX_FORGOTTEN
from mlx_workbench.engine.requests import Done, Failed, Started


def states(engine) -> dict[str, str]:
    return {e.id: e.state for e in engine.status().entries}


def loaded_bytes(engine, entry_id: str) -> int:
    return next(e.memory_bytes for e in engine.status().entries if e.id == entry_id)


def test_load_reports_the_entry_and_its_memory(engine, models):
    entry = engine.load("tiny").result(30)
    assert entry.state == "loaded" and entry.family == "llama3" and entry.context_length == 512
    weights = (models["tiny"] / "model.safetensors").stat().st_size
    assert 0.8 * weights < entry.memory_bytes < 1.5 * weights
    assert engine.status().memory.active >= entry.memory_bytes


def test_unload_releases_memory(engine):
    before = engine.status().memory.active
    engine.load("wide").result(30)
    assert engine.status().memory.active > before
    assert engine.unload("wide").result(30).state == "unloaded"
    assert engine.status().memory.active <= before + 1024


def test_lru_eviction_under_max_loaded(make_engine):
    engine = make_engine(max_loaded=2)
    engine.load("tiny").result(30)
    engine.load("tiny", "a").result(30)
    texts(list(engine.generate(chat("hi", model="tiny:a", max_tokens=2))))  # a is now more recent than b
    engine.load("wide").result(30)  # evicts the least recently used: tiny with its adapter
    assert states(engine) == {"tiny": "unloaded", "tiny:a": "unloaded", "wide": "loaded"}


def test_lru_eviction_under_memory_budget(make_engine, models):
    tiny, wide = (models[m] / "model.safetensors" for m in ("tiny", "wide"))
    budget = wide.stat().st_size + tiny.stat().st_size // 2  # either fits, not both
    engine = make_engine(memory_budget=budget)
    engine.load("wide").result(30)
    engine.load("tiny").result(30)
    assert states(engine) == {"wide": "unloaded", "tiny": "loaded"}
    engine.load("wide").result(30)
    assert states(engine) == {"wide": "loaded", "tiny": "unloaded"}
    assert engine.status().memory.budget == budget


def test_pinned_entries_are_not_evicted(make_engine):
    engine = make_engine(max_loaded=1)
    assert engine.load("tiny", pin=True).result(30).pinned
    with pytest.raises(MemoryBudgetExceeded):
        engine.load("wide").result(30)
    assert states(engine)["tiny"] == "loaded"
    engine.pin("tiny", pinned=False).result(30)
    engine.load("wide").result(30)
    assert states(engine) == {"tiny": "unloaded", "wide": "loaded"}


def test_unloading_a_pinned_entry_unpins_it(make_engine):
    """An explicit unload is the user's word that the entry may go: it does not come back pinned."""
    engine = make_engine()
    engine.load("tiny", pin=True).result(30)
    engine.unload("tiny").result(30)
    assert [(e.state, e.pinned) for e in engine.status().entries if e.id == "tiny"] == [("unloaded", False)]
    assert not engine.load("tiny").result(30).pinned


def test_a_model_bigger_than_the_budget_is_refused_before_loading(make_engine):
    engine = make_engine(memory_budget=10_000)
    events = list(engine.generate(chat("hi")))
    assert len(events) == 1 and isinstance(events[0].error, MemoryBudgetExceeded)
    assert engine.status().memory.active < 10_000


def test_entries_in_use_are_not_evicted(make_engine):
    engine = make_engine(max_loaded=1)
    stream = engine.generate(chat("hello", max_tokens=400))
    assert isinstance(next(stream), Started)
    with pytest.raises(MemoryBudgetExceeded):
        engine.load("wide").result(30)
    stream.close()


def test_adapters_share_the_base_weights(engine, models):
    base = engine.load("tiny").result(30).memory_bytes
    before = engine.status().memory.active
    a = engine.load("tiny", "a").result(30).memory_bytes
    b = engine.load("tiny:b").result(30).memory_bytes
    adapter_file = (models["a"] / "adapters.safetensors").stat().st_size
    assert a < 2 * adapter_file < base / 2 and b < 2 * adapter_file
    assert engine.status().memory.active - before < base / 2  # two adapters cost less than a base
    outputs = {m: texts(list(engine.generate(chat("hello", model=m))))[0] for m in ("tiny", "tiny:a", "tiny:b")}
    assert len(set(outputs.values())) == 3  # each adapter changes the answers


def test_unloading_a_base_unloads_its_adapters(engine):
    engine.load("tiny:a").result(30)
    assert states(engine) == {"tiny": "loaded", "tiny:a": "loaded"}
    engine.unload("tiny").result(30)
    assert states(engine) == {"tiny": "unloaded", "tiny:a": "unloaded"}


def test_unloading_an_adapter_keeps_its_base(engine):
    engine.load("tiny:a").result(30)
    engine.unload("tiny", "a").result(30)
    assert states(engine) == {"tiny": "loaded", "tiny:a": "unloaded"}


def test_an_entry_serving_requests_is_not_unloaded(engine):
    stream = engine.generate(chat("hello", model="tiny:a", max_tokens=400))
    next(stream)
    with pytest.raises(ModelBusy, match="'tiny:a' is serving 1 requests"):
        engine.unload("tiny").result(30)  # its adapter is busy
    stream.close()


def test_two_loads_of_the_same_model_share_one(engine, monkeypatch):
    pool = engine.scheduler.pool
    calls = []
    original = pool._load_base
    monkeypatch.setattr(pool, "_load_base", lambda entry, *files: (calls.append(entry.id), original(entry, *files)))
    futures = [engine.load("wide"), engine.load("wide")]
    streams = [engine.generate(chat("hi", model="wide", max_tokens=3)) for _ in range(2)]
    assert all(isinstance(list(s)[-1], Done) for s in streams)
    assert [f.result(30).state for f in futures] == ["loaded", "loaded"]
    assert calls == ["wide"]


def test_loading_a_path_registers_it(engine, models):
    entry = engine.load(str(models["wide"])).result(30)
    assert entry.state == "loaded" and str(models["wide"]) in engine.model_ids()


def test_a_model_name_with_colons_is_read_as_everywhere(make_engine, models):
    """model_ids.py: a configured name is itself; the adapter follows the last colon."""
    spec = ModelSpec("tiny:v2", str(models["tiny"]), {"a": str(models["a"])})
    engine = make_engine(models={"tiny:v2": spec})
    assert {"tiny:v2", "tiny:v2:a"} <= set(engine.model_ids())
    assert engine.load("tiny:v2").result(30).id == "tiny:v2"
    entry = engine.load("tiny:v2:a").result(30)
    assert (entry.id, entry.model, entry.adapter) == ("tiny:v2:a", "tiny:v2", "a")
    for model_id in ("tiny:v2", "tiny:v2:a"):
        assert isinstance(list(engine.generate(chat("hello", model=model_id, max_tokens=2)))[-1], Done)
    with pytest.raises(ModelNotFound, match="'tiny:v2:b'"):
        list(engine.generate(chat("hello", model="tiny:v2:b")))


def test_a_missing_folder_is_named_as_such_not_downloaded(engine, tmp_path):
    with pytest.raises(ModelNotFound, match="No model folder at"):
        engine.load(str(tmp_path / "nowhere")).result(30)
    assert str(tmp_path / "nowhere") not in engine.model_ids()  # a failed name is not kept


def test_failed_names_do_not_pile_up(engine, tmp_path):
    for i in range(MAX_FORGOTTEN + 5):
        with pytest.raises(ModelNotFound):
            engine.load(str(tmp_path / f"nowhere-{i}")).result(30)
    failed = [e.model for e in engine.status().entries if e.state == "failed"]
    assert failed == [str(tmp_path / f"nowhere-{i}") for i in range(5, MAX_FORGOTTEN + 5)]


@pytest.mark.parametrize("damage", ["corrupt weights", "missing weights", "missing config"])
def test_a_failing_load_fails_its_requests_only(engine, make_engine, broken_model, damage):
    if damage == "corrupt weights":
        (broken_model / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken" + b"\0" * 64)
    elif damage == "missing weights":
        (broken_model / "model.safetensors").unlink()
    else:
        (broken_model / "config.json").unlink()
    with pytest.raises(ModelNotFound, match="Could not load"):
        engine.load(str(broken_model)).result(30)
    # A path that loads nothing names no model; its failed entry says why.
    assert str(broken_model) not in engine.model_ids()
    entry = next(e for e in engine.status().entries if e.model == str(broken_model))
    assert entry.state == "failed" and entry.error
    with pytest.raises(ModelNotFound):
        list(engine.generate(chat("hi", model=str(broken_model))))
    assert texts(list(engine.generate(chat("hi", max_tokens=3))))  # the engine still serves
    # Configured, it fails its requests; unloading it forgets the failure.
    configured = make_engine(models={"broken": ModelSpec("broken", str(broken_model))})
    events = list(configured.generate(chat("hi", model="broken")))
    assert len(events) == 1 and isinstance(events[0], Failed) and isinstance(events[0].error, LoadFailed)
    assert configured.unload("broken").result(30).state == "unloaded"


def test_idle_entries_are_unloaded(make_engine):
    engine = make_engine(idle_timeout=0.3)
    engine.load("tiny").result(30)
    engine.load("tiny", pin=True)
    engine.load("wide").result(30)
    deadline = time.monotonic() + 5
    while states(engine).get("wide") != "unloaded" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert states(engine) == {"tiny": "loaded", "wide": "unloaded"}  # pinned stays


def test_a_hugging_face_repo_id_loads_from_the_hub_cache(engine, models, tmp_path, monkeypatch):
    import huggingface_hub.constants

    snapshot = tmp_path / "models--someone--tiny-chat" / "snapshots" / ("0" * 40)
    shutil.copytree(models["tiny"], snapshot)
    (tmp_path / "models--someone--tiny-chat" / "refs").mkdir()
    (tmp_path / "models--someone--tiny-chat" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    entry = engine.load("someone/tiny-chat").result(30)
    assert entry.state == "loaded" and entry.progress == 1.0
    assert texts(list(engine.generate(chat("hi", model="someone/tiny-chat", max_tokens=3))))


def test_a_stream_goes_on_while_another_model_reads_its_weights(engine, monkeypatch):
    """The weights are read a chunk per device job, each behind the next decode step:
    a running stream is not held for the whole load."""
    from mlx_workbench.engine import pool as pool_module

    monkeypatch.setattr(pool_module, "LOAD_CHUNK_BYTES", 1)  # one array per job
    scheduler = engine.scheduler
    chunks = []  # (decode steps so far, load progress) as each chunk starts
    evaluate = scheduler.pool._evaluate
    monkeypatch.setattr(
        scheduler.pool,
        "_evaluate",
        lambda entry, *args: (chunks.append((scheduler.steps, entry.progress)), evaluate(entry, *args)),
    )
    engine.load("tiny").result(30)
    stream = engine.generate(chat("hello", model="tiny", max_tokens=2000))
    assert isinstance(next(stream), Started)
    chunks.clear()  # those of "tiny", read while nothing streamed
    assert engine.load("wide").result(60).state == "loaded"
    stream.close()
    steps, progress = zip(*chunks)
    # Every chunk after the first came a decode step after the one before.
    assert len(steps) > 10 and all(b > a for a, b in zip(steps, steps[1:])), steps
    assert progress[0] == 0 and list(progress) == sorted(set(progress)) and progress[-1] < 1

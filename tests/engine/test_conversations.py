"""The conversation store behind previous_response_id: bounded by count and by bytes,
the least recently used (stored or read) going first."""

from __future__ import annotations

from mlx_workbench.engine.conversations import Conversation, ConversationStore


def conversation(id: str, size: int = 10) -> Conversation:
    return Conversation(id, [{"role": "user", "content": "x" * size}], b"{}")


def test_count_bound_evicts_the_least_recently_used():
    store = ConversationStore(max_count=2, max_bytes=None)
    for id in ("a", "b"):
        assert store.put(conversation(id))
    assert store.get("a") is not None  # read: now the most recent
    store.put(conversation("c"))
    assert (store.get("a") is not None, store.get("b"), store.get("c") is not None) == (True, None, True)
    assert len(store) == 2


def test_byte_bound_evicts_until_it_fits():
    one = conversation("a", 100).nbytes
    store = ConversationStore(max_count=100, max_bytes=2 * one)
    for id in ("a", "b", "c"):
        store.put(conversation(id, 100))
    assert [id for id in "abc" if store.get(id)] == ["b", "c"]
    assert store.nbytes == 2 * one
    assert not store.put(conversation("huge", 3 * one))  # alone over the bound: not stored
    assert store.get("huge") is None and len(store) == 2


def test_replace_and_delete_keep_the_byte_count():
    store = ConversationStore(max_count=10, max_bytes=None)
    store.put(conversation("a", 10))
    store.put(conversation("a", 50))
    assert store.nbytes == conversation("a", 50).nbytes and len(store) == 1
    assert store.delete("a") and not store.delete("a")
    assert store.nbytes == 0


def test_size_zero_stores_nothing():
    store = ConversationStore(max_count=0, max_bytes=None)
    assert not store.put(conversation("a"))
    assert store.get("a") is None

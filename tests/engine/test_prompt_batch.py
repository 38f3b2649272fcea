"""MergedEvents alone: several requests' events read as one request's."""

from __future__ import annotations

import pytest

from mlx_workbench.engine.prompt_batch import MergedEvents
from mlx_workbench.engine.requests import Delta, Done, Failed, Finished, GenerationRequest, Started, Usage


def usage(prompt: int, completion: int, ttft: float, generation: float, rate: float) -> Usage:
    return Usage(prompt, completion, time_to_first_token=ttft, generation_seconds=generation, tokens_per_second=rate)


def test_one_request_of_all_choices_started_first_and_done_last():
    merged = MergedEvents([GenerationRequest("m", prompt="a", n=2), GenerationRequest("m", prompt="b", n=1)])
    # The first prompt is over before the second starts: nothing of it may go ahead of Started.
    first = [
        Started(3),
        Delta(0, "x", [1]),
        Delta(1, "y", [2]),
        Finished(0, "stop"),
        Finished(1, "stop"),
        Done(usage(3, 2, 0.1, 0.2, 5.0)),
    ]
    assert merged.take(0, first) == []
    out = merged.take(1, [Started(4, cached_tokens=1), Delta(0, "z", [3])])
    assert out[0] == Started(7, cached_tokens=1)
    assert [(type(e).__name__, e.index) for e in out[1:]] == [
        ("Delta", 0),
        ("Delta", 1),
        ("Finished", 0),
        ("Finished", 1),
        ("Delta", 2),
    ]
    assert not merged.ended
    (done,) = merged.take(1, [Finished(0, "length"), Done(usage(4, 1, 0.3, 0.0, None))])[1:]
    assert merged.ended and merged.complete
    u = done.usage
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens) == (7, 3, 0)
    assert u.time_to_first_token == 0.1 and u.generation_seconds == pytest.approx(0.2)  # first token to last
    assert u.tokens_per_second == pytest.approx(5.0)  # one decode step in 0.2 s


def test_a_failure_ends_the_whole():
    merged = MergedEvents([GenerationRequest("m", prompt="a"), GenerationRequest("m", prompt="b")])
    assert merged.take(0, [Started(3), Delta(0, "x", [1])]) == []
    failed = Failed(ValueError("no"))
    assert merged.take(1, [failed]) == [failed] and merged.ended and not merged.complete

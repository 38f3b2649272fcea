"""Requests and checks shared by the engine tests."""

from __future__ import annotations

from mlx_workbench.engine.requests import Delta, Done, Failed, Finished, GenerationRequest, SamplingParams


def chat(text: str, model: str = "tiny", n: int = 1, **sampling) -> GenerationRequest:
    sampling.setdefault("temperature", 0.0)
    sampling.setdefault("max_tokens", 16)
    return GenerationRequest(
        model=model, messages=[{"role": "user", "content": text}], sampling=SamplingParams(**sampling), n=n
    )


def texts(events: list) -> list[str]:
    """The text of each choice, from a finished request's events."""
    done = [e for e in events if isinstance(e, (Done, Failed))]
    assert len(done) == 1 and events[-1] is done[0], events
    assert isinstance(done[0], Done), done[0]
    out: dict[int, str] = {}
    for e in events:
        if isinstance(e, Delta):
            out[e.index] = out.get(e.index, "") + e.text
        if isinstance(e, Finished):
            out.setdefault(e.index, "")
    return [out[i] for i in sorted(out)]

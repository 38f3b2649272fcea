"""A request in flight on the device thread: its `Submission`, and one `Choice` per
generated sequence. A choice turns token ids into text (a streaming detokenizer),
watches stop strings and collects logprobs; `Choice.add_token` is the per-token
path of the scheduler's step. Device thread only, but for `Submission.send` and
`dequeued`, which the engine provides.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import mlx.core as mx
from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer, SPMStreamingDetokenizer

from .constraints import MatcherFactory
from .pool import Entry
from .requests import Delta, Event, GenerationRequest
from .sampling import LogitBias, StopStrings, token_logprob
from .scoring import PromptScore


@dataclass(eq=False)
class Submission:
    """A request from submit to its last event; shared by the engine (caller
    side: `send`, `dequeued`) and the scheduler (everything else)."""

    request: GenerationRequest
    model: str
    adapter: str | None
    send: Callable[[list[Event]], None]  # delivers a batch of events to the caller's channel
    dequeued: Callable[[], None]  # tells the engine the request left the queue
    loop: asyncio.AbstractEventLoop | None = None  # where `send` must run; None: any thread
    submitted: float = field(default_factory=time.perf_counter)
    load_seconds: float = 0.0  # waited for its model to load
    admitted: float | None = None  # joined its batch
    entry: Entry | None = None
    prompt: list[int] = field(default_factory=list)
    cached_tokens: int = 0  # prompt tokens the prompt cache held
    prefilled: int = 0  # prompt tokens in the KV cache when generation started (cached or scored)
    logit_bias: LogitBias | None = None
    score: PromptScore | None = None  # while its prompt is being scored
    grammar: MatcherFactory | None = None  # the matchers of a constrained request's choices
    choices: list[Choice] = field(default_factory=list)
    outbox: list[Event] = field(default_factory=list)
    queued: bool = True
    streaming: bool = False  # its first text has been emitted
    ended: bool = False
    first_token: float | None = None
    last_token: float | None = None
    sampled: int = 0  # tokens sampled over all choices, a stop token included

    def leave_queue(self) -> None:
        if self.queued:
            self.queued = False
            self.dequeued()


def keep_leading_space(detokenizer) -> None:
    """mlx_lm's streaming detokenizers drop the leading space of their first text, as a chat
    answer wants; a text completion continues its prompt, so there the space is the answer's
    (" Paris" after "The capital of France is", as OpenAI and vLLM send it)."""
    if isinstance(detokenizer, SPMStreamingDetokenizer):
        detokenizer.trim_space = False
    elif isinstance(detokenizer, BPEStreamingDetokenizer):  # trims while its text is empty
        detokenizer.text, detokenizer.offset = "\0", 1  # text not sent: last_segment starts after it


class Choice:
    """One generated sequence of a submission."""

    __slots__ = (
        "sub",
        "index",
        "uid",
        "tokenizer",
        "detokenizer",
        "stops",
        "ids",
        "logprobs",
        "tokens",
        "open",
        "emit",
    )

    def __init__(
        self, sub: Submission, index: int, tokenizer, stop: list[str], emit: Callable[[Submission, Event], None]
    ):
        self.sub, self.index = sub, index
        self.uid: int | None = None  # in the generator once set
        self.tokenizer = tokenizer
        self.detokenizer = tokenizer.detokenizer
        if sub.request.messages is None:
            keep_leading_space(self.detokenizer)
        self.stops = StopStrings(stop) if stop else None
        self.ids: list[int] = []  # tokens whose text is not sent yet
        self.logprobs: list | None = [] if sub.request.sampling.logprobs else None
        self.tokens = 0
        self.open = True
        self.emit = emit  # the scheduler's: gathers the event for this step's delivery

    def add_token(self, token: int, row: mx.array, finish: str | None, now: float) -> bool:
        """Turn one token into text; True if a stop string ended the choice."""
        sub = self.sub
        if sub.first_token is None:
            sub.first_token = now
        sub.last_token = now
        sub.sampled += 1
        if finish != "stop":  # a stop token is not content
            self.tokens += 1
            self.detokenizer.add_token(token)
            self.ids.append(token)
            if self.logprobs is not None:
                k = sub.request.sampling.top_logprobs
                if sub.logit_bias is not None:
                    row = sub.logit_bias.renormalized(row)
                self.logprobs.append(token_logprob(row, token, k, self.tokenizer))
        if finish is not None:
            self.detokenizer.finalize()
        text, stopped = self.detokenizer.last_segment, False
        if self.stops is not None:
            text, stopped = self.stops.feed(text)
            if finish is not None and not stopped:
                text += self.stops.flush()
        if text or ((finish or stopped) and self.ids):
            self.emit(sub, Delta(self.index, text, self.ids, self.logprobs))
            self.ids = []
            self.logprobs = [] if self.logprobs is not None else None
        return stopped

"""What goes into the engine and what comes out of it.

Plain dataclasses, no MLX: the API and the scheduler both speak these. A request
is submitted once; its events arrive in order on the channel the caller chose
(an asyncio queue, or a blocking iterator for scripts).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

_ids = itertools.count(1)

# What a text-only server refuses, in the words of the engine and the api alike.
TEXT_ONLY = "the models here accept text only"


ConstraintKind = Literal["json_object", "json_schema", "regex", "choice", "lark", "tool_calls"]


@dataclass(frozen=True)
class Constraint:
    """The form every choice's text must take, enforced while decoding.

    kind: "json_object" (any JSON object), "json_schema" (value: the schema),
    "regex" (value: a pattern the whole text matches), "choice" (value: the strings
    allowed), "lark" (value: a Lark grammar), "tool_calls" (value: {"functions": [{"name",
    "parameters"}], "parallel": bool}: one call, or several, of these functions in the
    model family's syntax). `param` names the request field it came from, for errors.
    """

    kind: ConstraintKind
    value: Any = None  # by kind: None, a schema dict, a pattern, a tuple of strings, a grammar, the calls
    param: str = "response_format"


@dataclass
class SamplingParams:
    """OpenAI's sampling parameters, already validated by the caller."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    constraint: Constraint | None = None


@dataclass(frozen=True)
class Infill:
    """Code to complete at a cursor: `prefix` is the code before it (the cells above
    included), `suffix` the code after it. `infill.py` frames them with the model's
    fill-in-the-middle tokens, when its tokenizer has them."""

    prefix: str
    suffix: str = ""


# "low": admitted after every "normal" request waiting for the same batch (inline completions).
Priority = Literal["normal", "low"]


@dataclass
class GenerationRequest:
    """One chat or text completion; `n` choices share the prompt.

    Exactly one of `messages` (chat: the family's template renders them),
    `prompt` (text completion: a string or token ids) and `infill` (code
    completion at a cursor) is set.
    """

    model: str
    adapter: str | None = None
    messages: list[dict] | None = None
    tools: list[dict] | None = None  # chat: OpenAI function tools, described to the model
    prompt: str | list[int] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    n: int = 1
    # Score the prompt: its tokens' logprobs, with this many alternatives each. (With
    # sampling.max_tokens 0 nothing is generated.)
    prompt_logprobs: int | None = None
    infill: Infill | None = None
    priority: Priority = "normal"
    id: str = field(default_factory=lambda: f"req-{next(_ids)}")


# ---- events, in the order a request sees them ---------------------------------


@dataclass
class Started:
    """Admitted: the prompt is tokenized and fits; prefill begins.

    Errors found before this event (unknown model, prompt too long, failed load)
    arrive as `Failed` instead, so an HTTP handler can still pick a status code.
    """

    prompt_tokens: int
    cached_tokens: int = 0
    queue_seconds: float = 0.0  # from submit to joining its batch
    load_seconds: float = 0.0  # of which waiting for its model to load
    batch_size: int = 0  # sequences in its batch once it joined
    tool_syntax: str | None = None  # how the model writes tool calls (a `tool_calls.SYNTAXES` key)


@dataclass
class Progress:
    """Prefill progress of a long prompt (lets SSE send keep-alives)."""

    processed: int
    total: int


# Reported instead of -inf (a banned or impossible token), which JSON cannot carry; OpenAI's value.
MIN_LOGPROB = -9999.0


@dataclass
class TopLogprob:
    token: str
    token_id: int
    logprob: float


@dataclass
class TokenLogprob:
    token: str
    token_id: int
    logprob: float | None  # None: a prompt's first token, which nothing predicts
    top: list[TopLogprob] = field(default_factory=list)


@dataclass
class Delta:
    """New text for choice `index`. Text held back by a possible stop string
    or an incomplete UTF-8 sequence arrives in a later Delta."""

    index: int
    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob] | None = None


@dataclass
class PromptLogprobs:
    """The prompt's tokens scored, for choice `index` (before its first Delta): the tokens
    of its text, without a BOS the tokenizer added (which still conditions the first)."""

    index: int
    tokens: list[TokenLogprob]


FinishReason = Literal["stop", "length", "cancelled"]  # the api's finish_reason too


@dataclass
class Finished:
    """Choice `index` is over."""

    index: int
    reason: FinishReason
    stop_sequence: str | None = None  # the stop string that ended it, if one did


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    time_to_first_token: float = 0.0  # seconds from submit to the first token
    generation_seconds: float = 0.0  # first token to last token
    # Decode rate: the tokens sampled after each choice's first over generation_seconds
    # (None below two tokens). Measured on the device thread, it is free of the HTTP
    # and client timing that bunches tokens up on their way.
    tokens_per_second: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Done:
    """Last event of a successful request (after every choice's Finished)."""

    usage: Usage


@dataclass
class Failed:
    """Last event of a failed request. `error` is an EngineError subclass."""

    error: BaseException


Event = Started | Progress | PromptLogprobs | Delta | Finished | Done | Failed

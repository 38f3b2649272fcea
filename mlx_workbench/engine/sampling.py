"""OpenAI sampling parameters onto mlx_lm samplers and logits processors, the
text-level stop-string matcher, and per-token logprobs.

Samplers take log-probabilities of shape (B, vocab) and return B token ids.
mlx_lm's BatchGenerator makes one batched sampler call when every row holds the
same sampler object, so unseeded requests with equal parameters share one.
A seeded request owns its random key, so its tokens do not depend on what else
is in the batch or on any other random draw.

logit_bias is applied by the sampler, not as a logits processor: adding a bias to
a row of log-probabilities picks what adding it to the logits would (a row's
normalisation is one constant), and a processor would make BatchGenerator slice,
track and re-join every row of the batch at every step. Reported logprobs get the
same bias (`LogitBias.renormalized`).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from functools import lru_cache

import mlx.core as mx
from mlx_lm.sample_utils import (
    apply_min_p,
    apply_top_k,
    apply_top_p,
    greedy_sampler,
    make_frequency_penalty,
    make_presence_penalty,
    make_repetition_penalty,
)

from .errors import InvalidForModel
from .requests import MIN_LOGPROB, SamplingParams, TokenLogprob, TopLogprob

Sampler = Callable[[mx.array], mx.array]
LogitsProcessor = Callable[[mx.array, mx.array], mx.array]

# Offsets the seed of each further choice of one request (the 64-bit golden ratio,
# as SplitMix64 uses), so that n choices differ and choice 0 keeps the seed as given.
_CHOICE_STRIDE = 0x9E3779B97F4A7C15


class LogitBias:
    """OpenAI's logit_bias for one model: -100 bans a token at any temperature,
    other values add to its logit. Equal biases are equal (samplers are shared)."""

    def __init__(self, bias: dict[int, float], vocab_size: int):
        wrong = [t for t in bias if not (isinstance(t, int) and 0 <= t < vocab_size)]
        if wrong:
            raise InvalidForModel(
                f"logit_bias has token ids outside this model's vocabulary (0..{vocab_size - 1}): {wrong[:5]}",
                param="logit_bias",
            )
        self._key = tuple(sorted(bias.items()))
        self._ids = mx.array([t for t, _ in self._key])
        self._values = mx.array([-math.inf if v <= -100 else float(v) for _, v in self._key])

    def __call__(self, rows: mx.array) -> mx.array:
        return rows.at[..., self._ids].add(self._values)

    def renormalized(self, logprobs: mx.array) -> mx.array:
        """Log-probabilities as if the bias had been added to the logits."""
        biased = self(logprobs)
        return biased - mx.logsumexp(biased, axis=-1, keepdims=True)

    def __eq__(self, other) -> bool:
        return isinstance(other, LogitBias) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)


def make_sampler(params: SamplingParams, choice: int = 0, bias: LogitBias | None = None) -> Sampler:
    """The sampler for choice `choice` of a request (greedy when temperature is 0),
    with the request's `bias` (see the module docstring)."""
    if params.temperature == 0:
        sampler = greedy_sampler
    else:
        filters = (params.temperature, params.top_p, params.top_k, params.min_p)
        if params.seed is not None:  # owns its key: never shared
            seeded = _seeded_sampler(mx.random.key((params.seed + choice * _CHOICE_STRIDE) % 2**64), *filters)
            return _biased(seeded, bias) if bias else seeded
        sampler = _shared_sampler(*filters)
    return _shared_biased(sampler, bias) if bias else sampler


def _biased(sampler: Sampler, bias: LogitBias) -> Sampler:
    return lambda logprobs: sampler(bias(logprobs))


# Shared while some sequence uses them, and no longer: their bias arrays are MLX memory.
_biased_samplers: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _shared_biased(sampler: Sampler, bias: LogitBias) -> Sampler:
    shared = _biased_samplers.get((sampler, bias))
    if shared is None:
        shared = _biased_samplers[sampler, bias] = _biased(sampler, bias)
    return shared


@lru_cache(maxsize=64)
def _shared_sampler(temperature: float, top_p: float, top_k: int, min_p: float) -> Sampler:
    def sample(logprobs: mx.array) -> mx.array:
        return mx.random.categorical(_filtered(logprobs, temperature, top_p, top_k, min_p))

    return sample


def _seeded_sampler(key: mx.array, temperature: float, top_p: float, top_k: int, min_p: float) -> Sampler:
    def sample(logprobs: mx.array) -> mx.array:
        nonlocal key
        key, step_key = mx.random.split(key)
        return mx.random.categorical(_filtered(logprobs, temperature, top_p, top_k, min_p), key=step_key)

    return sample


def _filtered(logprobs: mx.array, temperature: float, top_p: float, top_k: int, min_p: float) -> mx.array:
    """Temperature first, then the truncations, as OpenAI and Hugging Face order them."""
    logits = logprobs * (1.0 / temperature)
    if 0 < top_p < 1:
        logits = apply_top_p(logits, top_p)
    if min_p > 0:
        logits = apply_min_p(logits, min_p)
    if 0 < top_k < logits.shape[-1]:
        logits = apply_top_k(logits, top_k)
    return logits


def make_logits_processors(params: SamplingParams, prompt_tokens: int = 0) -> list[LogitsProcessor]:
    """The penalties as mlx_lm logits processors `(tokens, logits) -> logits`.

    `tokens` is the context mlx_lm passes: the prompt, then the tokens generated so
    far; `prompt_tokens` is how many of its leading tokens are prompt (for
    BatchGenerator: len(all_tokens) + len(prompt)). presence and frequency
    penalties count completion tokens only, as OpenAI defines them;
    repetition_penalty keeps mlx_lm's meaning (the last 20 tokens of the context).
    """
    processors = []
    if params.repetition_penalty != 1.0:
        processors.append(make_repetition_penalty(params.repetition_penalty))
    completion = params.max_tokens  # a window covering the whole completion
    for make, penalty in (
        (make_presence_penalty, params.presence_penalty),
        (make_frequency_penalty, params.frequency_penalty),
    ):
        if penalty:
            processors.append(_on_completion(make(penalty, completion), prompt_tokens))
    return processors


def _on_completion(processor: LogitsProcessor, prompt_tokens: int) -> LogitsProcessor:
    return lambda tokens, logits: processor(tokens[prompt_tokens:], logits)


def token_logprob(logprobs_row: mx.array, token_id: int, k: int, tokenizer) -> TokenLogprob:
    """The chosen token's logprob and the `k` most likely alternatives, best first."""
    k = min(k, logprobs_row.shape[-1])
    chosen = logprobs_row[token_id]
    top = []
    if k:
        top_ids = mx.argpartition(-logprobs_row, kth=k - 1)[:k]
        top_values = logprobs_row[top_ids]
        mx.eval(chosen, top_ids, top_values)
        values: list[float] = top_values.tolist()  # type: ignore[assignment]  (a vector: a list)
        ids: list[int] = top_ids.tolist()  # type: ignore[assignment]
        top = sorted(zip(values, ids), reverse=True)
    return TokenLogprob(
        token=tokenizer.decode([token_id]),
        token_id=token_id,
        logprob=max(chosen.item(), MIN_LOGPROB),  # type: ignore[type-var]  (a float32 scalar: a float)
        top=[TopLogprob(tokenizer.decode([i]), i, max(lp, MIN_LOGPROB)) for lp, i in top],
    )


class StopStrings:
    """Cuts one choice's text at the first stop string, across chunk boundaries.

    The first stop string to *end* wins (what a token-by-token generator would
    see first), so the result never depends on how the text was chunked. Text
    that could still begin a stop string is held back until it cannot.
    """

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the text

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to emit, whether a stop string was hit); nothing after a hit."""
        if self.stopped:
            return "", True
        text = self._held + text
        hits = [(i + len(s), i, s) for s in self.stops if (i := text.find(s)) >= 0]
        if hits:
            _, start, self.matched = min(hits)
            self._held, self.stopped = "", True
            return text[:start], True
        keep = self._partial_suffix(text)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep], False

    def flush(self) -> str:
        """Text held back when the choice ends for another reason (eos, length)."""
        held, self._held = self._held, ""
        return held

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of a stop string."""
        longest = max((len(s) for s in self.stops), default=1)
        for n in range(min(len(text), longest - 1), 0, -1):
            if any(s.startswith(text[-n:]) for s in self.stops):
                return n
        return 0

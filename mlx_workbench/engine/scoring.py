"""The log-probabilities of a prompt's own tokens (OpenAI's `echo` with `logprobs`,
which evaluation harnesses use to score answers).

One forward pass over the prompt, in chunks so that the logits held at once stay
small (a chunk of 128 positions of a 128k vocabulary is 64 MB in float32).
"""

from __future__ import annotations

import mlx.core as mx
from mlx_lm.models.cache import make_prompt_cache

from .requests import TokenLogprob, TopLogprob
from .sampling import MIN_LOGPROB

CHUNK = 128  # prompt positions per forward pass


def prompt_logprobs(model, tokens: list[int], top: int, tokenizer) -> list[TokenLogprob]:
    """Each prompt token with its log-probability given the tokens before it and the
    `top` likeliest tokens at its place, best first. The first token has neither."""
    decode = lambda i: tokenizer.decode([i])  # noqa: E731
    scored = [TokenLogprob(token=decode(tokens[0]), token_id=tokens[0], logprob=None)]
    cache = make_prompt_cache(model)
    for start in range(0, len(tokens) - 1, CHUNK):
        inputs = tokens[start:start + CHUNK]
        targets = tokens[start + 1:start + 1 + len(inputs)]
        logits = model(mx.array(inputs)[None], cache=cache)[0, : len(targets)].astype(mx.float32)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        chosen = mx.take_along_axis(logprobs, mx.array(targets)[:, None], axis=-1)[:, 0]
        k = min(top, logprobs.shape[-1])
        top_ids = mx.argpartition(-logprobs, kth=max(k - 1, 0), axis=-1)[:, :k]
        top_values = mx.take_along_axis(logprobs, top_ids, axis=-1)
        mx.eval(chosen, top_ids, top_values)
        for token, logprob, ids, values in zip(targets, chosen.tolist(), top_ids.tolist(), top_values.tolist()):
            best = sorted(zip(values, ids), reverse=True)
            scored.append(TokenLogprob(
                token=decode(token), token_id=token, logprob=max(logprob, MIN_LOGPROB),
                top=[TopLogprob(decode(i), i, max(v, MIN_LOGPROB)) for v, i in best],
            ))
    return scored

"""The log-probabilities of a prompt's own tokens (OpenAI's `echo` with `logprobs`,
which evaluation harnesses use to score answers).

A forward pass over the prompt, one chunk per `step()`: the scheduler runs a
step per job, so other requests' decode steps go on in between, and the logits
held at once stay small (128 positions of a 128k vocabulary: 64 MB in float32).
The pass leaves the KV cache of all but the last prompt token, which is where
generation starts, so a prompt scored is not computed again.
"""

from __future__ import annotations

import mlx.core as mx
from mlx_lm.models.cache import make_prompt_cache

from .requests import MIN_LOGPROB, TokenLogprob, TopLogprob

CHUNK = 128  # prompt positions per step


class PromptScore:
    """Each prompt token with its log-probability given the tokens before it and the
    `top` likeliest tokens at its place, best first (`tokens`, once `step()` says it
    is done). The first token has neither. `cache` then holds the KV cache of every
    prompt token but the last (None for a one-token prompt)."""

    def __init__(self, model, prompt: list[int], top: int, tokenizer):
        self.model, self.prompt, self.top = model, prompt, top
        self._decode = lambda i: tokenizer.decode([i])
        self.tokens = [TokenLogprob(token=self._decode(prompt[0]), token_id=prompt[0], logprob=None)]
        self.cache = make_prompt_cache(model) if len(prompt) > 1 else None

    def step(self) -> bool:
        """Score the next chunk; True once the whole prompt is scored."""
        start = len(self.tokens) - 1
        inputs = self.prompt[start : min(start + CHUNK, len(self.prompt) - 1)]  # the last one predicts nothing
        if inputs:
            self._score(inputs, self.prompt[start + 1 : start + 1 + len(inputs)])
        return len(self.tokens) == len(self.prompt)

    def _score(self, inputs: list[int], targets: list[int]) -> None:
        logits = self.model(mx.array(inputs)[None], cache=self.cache)[0].astype(mx.float32)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        chosen = mx.take_along_axis(logprobs, mx.array(targets)[:, None], axis=-1)[:, 0]
        k = min(self.top, logprobs.shape[-1])
        top_ids = mx.argpartition(-logprobs, kth=max(k - 1, 0), axis=-1)[:, :k]
        top_values = mx.take_along_axis(logprobs, top_ids, axis=-1)
        mx.eval(chosen, top_ids, top_values)
        rows: tuple[list, list, list] = (chosen.tolist(), top_ids.tolist(), top_values.tolist())  # type: ignore[assignment]  (arrays of rank >= 1: lists)
        for token, logprob, ids, values in zip(targets, *rows):
            best = sorted(zip(values, ids), reverse=True)
            self.tokens.append(
                TokenLogprob(
                    token=self._decode(token),
                    token_id=token,
                    logprob=max(logprob, MIN_LOGPROB),
                    top=[TopLogprob(self._decode(i), i, max(v, MIN_LOGPROB)) for v, i in best],
                )
            )

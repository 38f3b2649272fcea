"""Engine events -> OpenAI objects, for chat and for text completions.

A builder follows one request: for a stream it makes each chunk as events
arrive; otherwise it accumulates the choices and makes the one response.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..engine import requests as engine
from . import response_schemas as res
from .chat_tools import ToolReader
from .errors import ApiError
from .request_schemas import ToolPlan


def finite(logprob: float) -> float:
    """JSON has no -Infinity (pydantic would write null, which no client expects); OpenAI
    reports a token it deems impossible at MIN_LOGPROB."""
    return logprob if math.isfinite(logprob) else engine.MIN_LOGPROB


def usage(u: engine.Usage) -> res.CompletionUsage:
    return res.CompletionUsage(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.total_tokens,
        prompt_tokens_details=res.PromptTokensDetails(cached_tokens=u.cached_tokens),
        timings=res.Timings(
            time_to_first_token_s=u.time_to_first_token,
            generation_s=u.generation_seconds,
            tokens_per_second=u.tokens_per_second,
        ),
    )


def merge_deltas(events: list) -> list:
    """`events` with each choice's Deltas merged into its first one: a choice's
    text stays in order, and no Delta can follow its choice's Finished."""
    merged: list = []
    first: dict[int, engine.Delta] = {}
    for event in events:
        if not isinstance(event, engine.Delta):
            merged.append(event)
        elif (into := first.get(event.index)) is None:
            first[event.index] = replace(
                event,
                token_ids=list(event.token_ids),
                logprobs=None if event.logprobs is None else list(event.logprobs),
            )
            merged.append(first[event.index])
        else:
            into.text += event.text
            into.token_ids += event.token_ids
            if event.logprobs:
                into.logprobs = (into.logprobs or []) + event.logprobs
    return merged


class ResponseBuilder:
    id_prefix = ""
    named_events = False  # SSE events named by their type, and no [DONE] (Responses, Anthropic)

    def __init__(self, model: str, n: int, logprobs: bool):
        self.id = res.completion_id(self.id_prefix)
        self.created = res.now()
        self.model = model
        self.logprobs = logprobs
        self.texts: list[list[str]] = [[] for _ in range(n)]
        self.token_logprobs: list[list[engine.TokenLogprob]] = [[] for _ in range(n)]
        self.finish_reasons: list[engine.FinishReason | None] = [None] * n
        self.stop_sequences: list[str | None] = [None] * n  # the stop string that ended each choice
        self.started: engine.Started | None = None

    def begin(self, started: engine.Started) -> None:
        self.started = started

    def add(self, delta: engine.Delta) -> None:
        self.texts[delta.index].append(delta.text)
        self.token_logprobs[delta.index].extend(delta.logprobs or [])

    def finish(self, index: int, reason: engine.FinishReason, stop_sequence: str | None = None) -> None:
        self.finish_reasons[index] = reason
        self.stop_sequences[index] = stop_sequence

    def text(self, index: int) -> str:
        return "".join(self.texts[index])

    # Streaming: each returns the chunk to send, or None when there is nothing to say.
    def opening_chunks(self) -> list:
        return []

    def delta_chunk(self, delta: engine.Delta):
        raise NotImplementedError

    def delta_chunks(self, delta: engine.Delta) -> list:
        """The chunks of a delta: one, or none (or several, for a builder that overrides this)."""
        chunk = self.delta_chunk(delta)
        return [] if chunk is None else [chunk]

    def finish_chunk(self, index: int, reason: engine.FinishReason):
        raise NotImplementedError

    # Prompt logprobs: text completions only (echo with logprobs).
    def add_prompt_logprobs(self, scored: engine.PromptLogprobs) -> None:
        raise NotImplementedError

    def prompt_logprobs_chunk(self, scored: engine.PromptLogprobs):
        raise NotImplementedError

    def usage_chunk(self, u: engine.Usage):
        raise NotImplementedError

    def closing_chunks(self, u: engine.Usage, include_usage: bool) -> list:
        return [self.usage_chunk(u)] if include_usage else []

    def failure_chunk(self, error: ApiError):
        """The event that reports a failure after the 200 has gone."""
        return res.ErrorResponse(error=error.detail)

    def response(self, u: engine.Usage):
        raise NotImplementedError


# ---- chat ---------------------------------------------------------------------


def _top(t: engine.TopLogprob) -> res.TopLogprob:
    return res.TopLogprob(token=t.token, logprob=finite(t.logprob), bytes=list(t.token.encode()))


def chat_logprobs(tokens: list[engine.TokenLogprob]) -> res.ChoiceLogprobs:
    return res.ChoiceLogprobs(
        # A generated token has a logprob (only a prompt's first token has none).
        content=[
            res.TokenLogprob(**_top(t).model_dump(), top_logprobs=[_top(k) for k in t.top])  # type: ignore[arg-type]
            for t in tokens
        ]
    )


class ChatBuilder(ResponseBuilder):
    id_prefix = "chatcmpl"

    def __init__(self, model: str, n: int, logprobs: bool, tools: ToolPlan | None = None):
        super().__init__(model, n, logprobs)
        self.tools = tools
        self.readers: list[ToolReader] = []  # each choice's, when tool calls are read out of the answer

    def begin(self, started: engine.Started) -> None:
        super().begin(started)
        if self.tools and self.tools.parse and started.tool_syntax:
            self.readers = [ToolReader(started.tool_syntax, self.tools) for _ in self.texts]

    def _chunk(self, choices: list[res.ChunkChoice], **fields) -> res.ChatCompletionChunk:
        return res.ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=choices, **fields)

    def opening_chunks(self) -> list[res.ChatCompletionChunk]:
        opening = res.ChunkDelta(role="assistant", content="")
        return [self._chunk([res.ChunkChoice(index=i, delta=opening)]) for i in range(len(self.texts))]

    def delta_chunk(self, delta: engine.Delta) -> res.ChatCompletionChunk | None:
        if not delta.text and not delta.logprobs:
            return None
        logprobs = chat_logprobs(delta.logprobs) if self.logprobs and delta.logprobs else None
        said = self.readers[delta.index].delta(delta.text) if self.readers else res.ChunkDelta(content=delta.text)
        if said is None and logprobs is None:
            return None
        choice = res.ChunkChoice(index=delta.index, delta=said or res.ChunkDelta(), logprobs=logprobs)
        return self._chunk([choice])

    def finish_chunk(self, index: int, reason: engine.FinishReason) -> res.ChatCompletionChunk:
        if not self.readers:
            return self._chunk([res.ChunkChoice(index=index, delta=res.ChunkDelta(), finish_reason=reason)])
        reader = self.readers[index]
        last = reader.last_delta()
        return self._chunk([res.ChunkChoice(index=index, delta=last, finish_reason=reader.finish_reason(reason))])

    def usage_chunk(self, u: engine.Usage) -> res.ChatCompletionChunk:
        return self._chunk([], usage=usage(u))

    def _finish_reason(self, index: int) -> res.ChatFinishReason:
        reason = self.finish_reasons[index]
        assert reason is not None  # Done follows every Finished
        return self.readers[index].finish_reason(reason) if self.readers else reason

    def response(self, u: engine.Usage) -> res.ChatCompletion:
        choices = [
            res.ChatChoice(
                index=i,
                message=self.readers[i].message(self.text(i))
                if self.readers
                else res.AssistantMessage(content=self.text(i)),
                logprobs=chat_logprobs(self.token_logprobs[i]) if self.logprobs else None,
                finish_reason=self._finish_reason(i),
            )
            for i in range(len(self.texts))
        ]
        return res.ChatCompletion(id=self.id, created=self.created, model=self.model, choices=choices, usage=usage(u))


# ---- text completions -------------------------------------------------------------


class TextBuilder(ResponseBuilder):
    id_prefix = "cmpl"

    def __init__(self, model: str, n: int, logprobs: bool, echoes: list[str]):
        super().__init__(model, n, logprobs)
        self.echoes = echoes  # each choice's echoed prompt ("" without echo)
        self.offsets = [len(echo) for echo in echoes]  # text_offset of each choice's next token
        self.prompt_logprobs: list[res.CompletionLogprobs | None] = [None] * n  # the echoed prompt's, if scored

    @staticmethod
    def _logprobs(tokens: list[engine.TokenLogprob], offset: int) -> tuple[res.CompletionLogprobs, int]:
        """`tokens` in OpenAI's shape, the first at text offset `offset`; and the offset after them."""
        result = res.CompletionLogprobs()
        for t in tokens:
            scored = t.logprob is not None  # a prompt's first token is not: null, as OpenAI has it
            result.tokens.append(t.token)
            result.token_logprobs.append(finite(t.logprob) if t.logprob is not None else None)
            result.top_logprobs.append({k.token: finite(k.logprob) for k in t.top} if scored else None)
            result.text_offset.append(offset)
            offset += len(t.token)
        return result, offset

    def _generated(self, index: int, tokens: list[engine.TokenLogprob]) -> res.CompletionLogprobs:
        result, self.offsets[index] = self._logprobs(tokens, self.offsets[index])
        return result

    def add_prompt_logprobs(self, scored: engine.PromptLogprobs) -> None:
        self.prompt_logprobs[scored.index] = self._logprobs(scored.tokens, 0)[0]

    def prompt_logprobs_chunk(self, scored: engine.PromptLogprobs) -> res.Completion:
        """The echoed prompt's logprobs, in a chunk of no text: the echo went first."""
        logprobs = self._logprobs(scored.tokens, 0)[0]
        return self._chunk(res.CompletionChoice(index=scored.index, text="", logprobs=logprobs))

    def _chunk(self, choice: res.CompletionChoice | None, **fields) -> res.Completion:
        choices = [choice] if choice else []
        return res.Completion(id=self.id, created=self.created, model=self.model, choices=choices, **fields)

    def opening_chunks(self) -> list[res.Completion]:
        return [self._chunk(res.CompletionChoice(index=i, text=echo)) for i, echo in enumerate(self.echoes) if echo]

    def delta_chunk(self, delta: engine.Delta) -> res.Completion | None:
        if not delta.text and not delta.logprobs:
            return None
        logprobs = self._generated(delta.index, delta.logprobs) if self.logprobs and delta.logprobs else None
        return self._chunk(res.CompletionChoice(index=delta.index, text=delta.text, logprobs=logprobs))

    def finish_chunk(self, index: int, reason: engine.FinishReason) -> res.Completion:
        return self._chunk(res.CompletionChoice(index=index, text="", finish_reason=reason))

    def usage_chunk(self, u: engine.Usage) -> res.Completion:
        return self._chunk(None, usage=usage(u))

    def response(self, u: engine.Usage) -> res.Completion:
        choices = [
            res.CompletionChoice(
                index=i,
                text=self.echoes[i] + self.text(i),
                logprobs=self._choice_logprobs(i) if self.logprobs else None,
                finish_reason=self.finish_reasons[i],
            )
            for i in range(len(self.texts))
        ]
        return res.Completion(id=self.id, created=self.created, model=self.model, choices=choices, usage=usage(u))

    def _choice_logprobs(self, index: int) -> res.CompletionLogprobs:
        generated, prompt = self._generated(index, self.token_logprobs[index]), self.prompt_logprobs[index]
        if prompt is None:
            return generated
        return res.CompletionLogprobs(
            **{f: getattr(prompt, f) + getattr(generated, f) for f in res.CompletionLogprobs.model_fields}
        )

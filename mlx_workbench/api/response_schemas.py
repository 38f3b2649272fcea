"""The response bodies: pydantic v2 models of what the server answers (JSON
responses, stream chunks, errors), for the OpenAI API and the pool admin.

They are serialized only, never validated from a client; the OpenAPI document
(`openapi.py`) describes them from these models.
"""

from __future__ import annotations

import dataclasses
import time
import typing
import uuid
from typing import Literal

from pydantic import BaseModel, Field, create_model

from ..engine.requests import FinishReason
from ..engine.status import EngineStatus, EntryStatus


def _omit_none(value) -> bool:
    return value is None


def OmittedIfNone(**kwargs):
    """A field left out of the JSON when None, as OpenAI leaves out absent ones."""
    return Field(None, exclude_if=_omit_none, **kwargs)


# ---- errors -------------------------------------------------------------------


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


# ---- responses: shared ----------------------------------------------------------


def completion_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class Timings(BaseModel):
    """Not in OpenAI's API: the server's own timing of the request, free of the
    network and of the client (which may receive several tokens at once)."""

    time_to_first_token_s: float = Field(description="Seconds from arrival to the first token: queue, load, prefill.")
    generation_s: float = Field(description="Seconds from the first token to the last.")
    tokens_per_second: float | None = Field(
        description="Decode rate after the first token, over all choices; null below two tokens."
    )


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)
    timings: Timings


# ---- responses: chat ------------------------------------------------------------


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class FunctionCall(BaseModel):
    name: str
    arguments: str  # a JSON object, as text


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None  # null when the answer is only tool calls
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = OmittedIfNone()
    function_call: FunctionCall | None = OmittedIfNone()  # legacy `functions` requests


ChatFinishReason = FinishReason | Literal["tool_calls", "function_call"]


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: ChatFinishReason


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage
    system_fingerprint: str | None = OmittedIfNone()  # typed string by OpenAI: no null


class ChunkFunction(BaseModel):
    """A call's name (in its first chunk) and the next part of its arguments."""

    name: str | None = OmittedIfNone()
    arguments: str = ""


class ChunkToolCall(BaseModel):
    index: int
    id: str | None = OmittedIfNone()  # in the call's first chunk
    type: Literal["function"] | None = OmittedIfNone()
    function: ChunkFunction


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = OmittedIfNone()
    content: str | None = OmittedIfNone()
    tool_calls: list[ChunkToolCall] | None = OmittedIfNone()
    function_call: ChunkFunction | None = OmittedIfNone()  # legacy `functions` requests


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: ChatFinishReason | None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a streamed chat completion. The last event before
    `[DONE]` carries `usage` (and no choices) when `stream_options.include_usage`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = OmittedIfNone()
    system_fingerprint: str | None = OmittedIfNone()  # typed string by OpenAI: no null


# ---- responses: text completions --------------------------------------------------


class CompletionLogprobs(BaseModel):
    """With echo, the prompt's tokens come first, joining to its text; the first has null
    logprobs when nothing precedes it (a prompt written with its BOS)."""

    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReason | None = None


class Completion(BaseModel):
    """A text completion, and also each `data:` event of a streamed one (then
    `finish_reason` is null until a choice's last event)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = OmittedIfNone()
    system_fingerprint: str | None = OmittedIfNone()  # typed string by OpenAI: no null


# ---- models ---------------------------------------------------------------------------


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "mlx_workbench"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


# ---- pool admin -------------------------------------------------------------------------


class EntryResponse(BaseModel):
    entry: EntryStatus


class ConfiguredModel(BaseModel):
    name: str
    path: str
    adapters: list[str]


class ServerInfo(BaseModel):
    version: str
    openai_base_url: str = Field(description='Path of the OpenAI API under the server, e.g. "/mlx/v1".')
    default_model: str | None
    configured: list[ConfiguredModel]


def _flattened(base: type[BaseModel], data_class, name: str) -> type[BaseModel]:
    """`base` with every field of the dataclass `data_class` added, so the
    response stays one flat object and its schema follows the engine's."""
    hints = typing.get_type_hints(data_class)
    fields = {}
    for f in dataclasses.fields(data_class):
        if f.default is not dataclasses.MISSING:
            fields[f.name] = (hints[f.name], f.default)
        elif f.default_factory is not dataclasses.MISSING:
            fields[f.name] = (hints[f.name], Field(default_factory=f.default_factory))
        else:
            fields[f.name] = (hints[f.name], ...)
    return create_model(name, __base__=base, **fields)


StatusResponse = _flattened(ServerInfo, EngineStatus, "StatusResponse")
StatusResponse.__doc__ = "Server info and a snapshot of the engine (pool, memory, queue, counters)."


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "down"]
    version: str
    engine: str = Field(description="The engine's state: starting, running, stopping, stopped, failed.")
    loaded: list[str]
    restarts: int

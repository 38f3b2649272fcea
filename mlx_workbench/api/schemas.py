"""The wire format: pydantic v2 models for every request and response.

Requests follow OpenAI's names and ranges and ignore fields they do not know
(clients send many); `top_k`, `min_p`, `repetition_penalty` and `adapter` are
extensions. The OpenAPI document (`openapi.py`) is generated from these models.
"""

from __future__ import annotations

import dataclasses
import time
import typing
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

from ..engine.requests import SamplingParams
from ..engine.status import EngineStatus, EntryStatus

MAX_CHOICES = 16


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


# ---- requests -----------------------------------------------------------------


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class GenerationParams(BaseModel):
    """Fields shared by chat and text completions."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description='A model id: "name" or "name:adapter".')
    adapter: str | None = Field(None, min_length=1, description="Extension: a LoRA adapter of `model`.")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(None, validate_default=True)
    seed: int | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    logit_bias: dict[int, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = None
    top_k: int = Field(0, ge=0, description="Extension: sample from the k most likely tokens (0: all).")
    min_p: float = Field(0.0, ge=0.0, le=1.0, description="Extension.")
    repetition_penalty: float = Field(1.0, gt=0.0, description="Extension: 1.0 disables it.")
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop):
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > 16:
            raise ValueError("at most 16 stop sequences are supported")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return stops

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def sampling(self, max_tokens_cap: int) -> SamplingParams:
        """The engine's parameters; max_tokens is clamped to the server's cap."""
        requested = self.requested_max_tokens()
        return SamplingParams(
            max_tokens=min(requested or max_tokens_cap, max_tokens_cap),
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logit_bias=dict(self.logit_bias or {}),
            stop=list(self.stop),
            seed=self.seed,
            logprobs=self.wants_logprobs(),
            top_logprobs=self.top_logprob_count(),
        )

    def wants_logprobs(self) -> bool:
        raise NotImplementedError

    def top_logprob_count(self) -> int:
        raise NotImplementedError


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = Field(
        None, description="Text, or a list of text parts (other part types are not supported)."
    )
    name: str | None = None

    def for_template(self) -> dict:
        """The plain {"role", "content"} dict a chat template renders."""
        content = self.content
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": content or ""}


class ChatCompletionRequest(GenerationParams):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs_need_logprobs(cls, top_logprobs, info: ValidationInfo):
        if top_logprobs and not info.data.get("logprobs"):
            raise ValueError("top_logprobs requires logprobs to be true")
        return top_logprobs

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def wants_logprobs(self) -> bool:
        return self.logprobs

    def top_logprob_count(self) -> int:
        return self.top_logprobs or 0


class CompletionRequest(GenerationParams):
    prompt: str | list[int] | list[str] | list[list[int]] = Field(
        description="One prompt: a string or token ids (a list holding one of them is accepted too)."
    )
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt):
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            if len(prompt) != 1:
                raise ValueError("send one prompt per request (batches of prompts are not supported)")
            prompt = prompt[0]
        if not prompt:
            raise ValueError("the prompt must not be empty")
        return prompt

    @field_validator("echo")
    @classmethod
    def _echo_needs_text(cls, echo, info: ValidationInfo):
        if echo and not isinstance(info.data.get("prompt", ""), str):
            raise ValueError("echo needs a text prompt, not token ids")
        return echo

    @field_validator("logprobs")
    @classmethod
    def _no_echoed_logprobs(cls, logprobs, info: ValidationInfo):
        if logprobs is not None and info.data.get("echo"):
            raise ValueError("logprobs together with echo is not supported")
        return logprobs

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, suffix):
        if suffix:
            raise ValueError("suffix is not supported")
        return suffix

    @field_validator("best_of")
    @classmethod
    def _best_of_is_n(cls, best_of, info: ValidationInfo):
        if best_of not in (None, info.data.get("n")):
            raise ValueError("best_of is not supported (other than best_of == n)")
        return best_of

    def wants_logprobs(self) -> bool:
        return self.logprobs is not None

    def top_logprob_count(self) -> int:
        return self.logprobs or 0


# ---- responses: shared ----------------------------------------------------------


FinishReason = Literal["stop", "length", "cancelled"]


def completion_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)


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


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage
    system_fingerprint: str | None = None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = OmittedIfNone()
    content: str | None = OmittedIfNone()


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a streamed chat completion. The last event before
    `[DONE]` carries `usage` (and no choices) when `stream_options.include_usage`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = OmittedIfNone()
    system_fingerprint: str | None = None


# ---- responses: text completions --------------------------------------------------


class CompletionLogprobs(BaseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float] = Field(default_factory=list)
    top_logprobs: list[dict[str, float]] = Field(default_factory=list)
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
    system_fingerprint: str | None = None


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


class EntryRequest(BaseModel):
    """Names one pool entry: `model` may be a configured name, a local path or a
    Hugging Face repo id (load only), or "name:adapter"."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1)
    adapter: str | None = Field(None, min_length=1)


class LoadRequest(EntryRequest):
    pin: bool | None = Field(None, description="Pin (never evict) or unpin once loaded; null keeps it.")
    wait: bool = Field(False, description="Answer 200 once loaded instead of 202 at once.")


class UnloadRequest(EntryRequest):
    pass


class PinRequest(EntryRequest):
    pinned: bool = True


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

# Field types are built by calls (Int(ge=1): an Annotated int), which pyright cannot read in annotations.
# pyright: reportInvalidTypeForm=false
"""Anthropic's Messages API (`POST /messages`, `POST /messages/count_tokens`) as a thin
translation onto chat generation: the request becomes chat messages for the same
GenerationRequest as a chat completion; the engine's events become a Message, or its
stream (`message_start`, `content_block_start`, `content_block_delta`,
`content_block_stop`, `message_delta`, `message_stop`); errors take Anthropic's shape.
Tools are chat's tools (`anthropic_tools.py`); a call is a `tool_use` block.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, RootModel, ValidationInfo, field_validator

from ..engine import requests as engine
from ..engine.requests import SamplingParams
from ..engine.tool_calls import CallArguments, CallStarted, ParsedPiece, ToolCall
from .anthropic_tools import (
    AnthropicTool,
    AnthropicToolChoice,
    InputJsonDelta,
    ToolResultBlock,
    ToolUseBlock,
    ToolUseContent,
    check_tool_choice,
    tool_plan,
    tool_use,
)
from .chat_tools import AnswerReader
from .errors import ApiError
from .formats import ResponseBuilder
from .request_schemas import MAX_STOPS, Int, OneChoice, Request, ToolPlan, tool_mismatch
from .response_requests import new_id, template_message

# ---- errors ---------------------------------------------------------------------------

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicError(BaseModel):
    type: Literal["error"] = "error"
    error: AnthropicErrorDetail


def error_body(error: ApiError) -> AnthropicError:
    """An OpenAI-shaped error in Anthropic's shape: the type follows the status."""
    status = error.status_code
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return AnthropicError(error=AnthropicErrorDetail(type=kind, message=error.detail.message))


# ---- requests -------------------------------------------------------------------------


class TextBlock(Request):
    type: Literal["text"]
    text: str

    @field_validator("type", mode="before")
    @classmethod
    def _text_only(cls, kind):
        if kind not in ("text", "tool_use", "tool_result"):
            raise ValueError(f"a {kind!r} block cannot be used: the models here accept text only")
        return kind


def texts(content: str | list[TextBlock]) -> str | list[str]:
    return content if isinstance(content, str) else [block.text for block in content]


class AnthropicMessage(Request):
    role: Literal["user", "assistant"]
    content: str | list[TextBlock | ToolUseBlock | ToolResultBlock]

    def for_template(self) -> list[dict]:
        """Chat messages: the tools' results first, then the text, with the calls made."""
        if isinstance(self.content, str):
            return [template_message(self.role, self.content)]
        results = [block.for_template() for block in self.content if isinstance(block, ToolResultBlock)]
        text = [block.text for block in self.content if isinstance(block, TextBlock)]
        calls = [block.for_template() for block in self.content if isinstance(block, ToolUseBlock)]
        message = template_message(self.role, text) | ({"tool_calls": calls} if calls else {})
        return results + ([message] if text or calls or not results else [])


class CountTokensRequest(OneChoice, Request):
    model: str = Field(min_length=1, description='A model id: "name" or "name:adapter".')
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: AnthropicToolChoice | None = Field(
        None, description='"any" and a named tool are enforced while decoding: the calls parse and validate.'
    )
    output_config: dict | None = Field(
        None,
        description="Not supported: a format (structured output).",
        json_schema_extra={"anyOf": [{"type": "object", "properties": {"format": {"type": "null"}}}, {"type": "null"}]},
    )

    @field_validator("messages")
    @classmethod
    def _no_prefill(cls, messages):
        if messages and messages[-1].role == "assistant":
            raise ValueError("a last assistant message (a prefill to continue) is not supported")
        return messages

    @field_validator("messages")
    @classmethod
    def _results_answer_calls(cls, messages: list[AnthropicMessage]):
        called: set[str] = set()
        for i, message in enumerate(messages):
            blocks = [] if isinstance(message.content, str) else message.content
            called |= {block.id for block in blocks if isinstance(block, ToolUseBlock)}
            for block in blocks:
                if isinstance(block, ToolResultBlock) and block.tool_use_id not in called:
                    raise tool_mismatch(
                        f"messages[{i}] has a tool_result for {block.tool_use_id!r}, which no tool_use made"
                    )
        return messages

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice(cls, choice, info: ValidationInfo):
        check_tool_choice(choice, info.data.get("tools"))
        return choice

    def tool_plan(self) -> ToolPlan:
        return tool_plan(self.tools or [], self.tool_choice)

    @field_validator("output_config")
    @classmethod
    def _no_format(cls, config):
        if config is not None and config.get("format") is not None:
            raise ValueError("output formats are not supported yet: they come with structured output")
        return config

    def for_template(self) -> list[dict]:
        system = [template_message("system", texts(self.system))] if self.system else []
        return system + [chat for m in self.messages for chat in m.for_template()]


class MessagesRequest(CountTokensRequest):
    max_tokens: Int(ge=1) = Field(description="Clamped to the server's cap.")
    stop_sequences: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, max_length=MAX_STOPS)
    temperature: float = Field(1.0, ge=0.0, le=1.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: Int(ge=0) = Field(0, description="0: all tokens.")
    stream: bool = False
    metadata: dict | None = None

    @property
    def include_usage(self) -> bool:
        return True

    def sampling(self, max_tokens_cap: int) -> SamplingParams:
        return SamplingParams(
            constraint=self.tool_plan().constraint(),
            max_tokens=min(self.max_tokens, max_tokens_cap),
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            stop=list(self.stop_sequences),
        )


# ---- responses ------------------------------------------------------------------------


class TextContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class MessageUsage(BaseModel):
    """Anthropic counts the input the cache served apart: input_tokens are the others."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class MessageResponse(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[TextContent | ToolUseContent]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: MessageUsage


class TokenCount(BaseModel):
    input_tokens: int


class MessageStart(BaseModel):
    type: Literal["message_start"] = "message_start"
    message: MessageResponse


class ContentBlockStart(BaseModel):
    type: Literal["content_block_start"] = "content_block_start"
    index: int = 0
    content_block: TextContent | ToolUseContent


class TextDelta(BaseModel):
    type: Literal["text_delta"] = "text_delta"
    text: str


class ContentBlockDelta(BaseModel):
    type: Literal["content_block_delta"] = "content_block_delta"
    index: int = 0
    delta: TextDelta | InputJsonDelta


class ContentBlockStop(BaseModel):
    type: Literal["content_block_stop"] = "content_block_stop"
    index: int = 0


class StopDelta(BaseModel):
    stop_reason: StopReason
    stop_sequence: str | None


class OutputUsage(BaseModel):
    output_tokens: int


class MessageDelta(BaseModel):
    type: Literal["message_delta"] = "message_delta"
    delta: StopDelta
    usage: OutputUsage


class MessageStop(BaseModel):
    type: Literal["message_stop"] = "message_stop"


class StreamError(AnthropicError):
    """An error after the 200 has gone: `event: error`."""


MessageStreamEvent = Annotated[
    MessageStart | ContentBlockStart | ContentBlockDelta | ContentBlockStop | MessageDelta | MessageStop | StreamError,
    Field(discriminator="type"),
]


class MessageStreamEvents(RootModel[MessageStreamEvent]):
    """Any event of a streamed message (for the OpenAPI document)."""


# ---- engine events -> the Message and its stream ---------------------------------------------


def usage(u: engine.Usage | engine.Started, output_tokens: int = 0) -> MessageUsage:
    prompt = u.prompt_tokens
    return MessageUsage(
        input_tokens=prompt - u.cached_tokens, cache_read_input_tokens=u.cached_tokens, output_tokens=output_tokens
    )


class MessagesBuilder(ResponseBuilder):
    """One message: a text block, and tool_use blocks when the request has tools. A stream
    starts each block as its first piece arrives, and stops it before the next."""

    named_events = True

    def __init__(self, model: str, plan: ToolPlan):
        super().__init__(model, n=1, logprobs=False)
        self.id = new_id("msg")
        self.plan = plan
        self.reader = AnswerReader()  # with the model's tool syntax once it started
        self._blocks = 0  # blocks a stream has started
        self._open = False  # the last of them is not stopped yet

    def begin(self, started: engine.Started) -> None:
        super().begin(started)
        self.reader = AnswerReader(self.plan, started.tool_syntax)

    def _pieces(self, final: bool) -> list[ParsedPiece]:
        return self.reader.read(self.text(0), final)

    def _stop(self) -> tuple[StopReason, str | None]:
        reason, sequence = self.finish_reasons[0], self.stop_sequences[0]
        if reason == "length":
            return "max_tokens", None
        if self.reader.calls:
            return "tool_use", None
        return ("stop_sequence", sequence) if sequence is not None else ("end_turn", None)

    def response(self, u: engine.Usage) -> MessageResponse:
        self._pieces(final=True)
        calls, text = self.reader.calls, self.reader.content
        content: list[TextContent | ToolUseContent] = [TextContent(text=text)] if text or not calls else []
        reason, sequence = self._stop()
        return MessageResponse(
            id=self.id,
            model=self.model,
            content=content + [tool_use(call) for call in calls],
            stop_reason=reason,
            stop_sequence=sequence,
            usage=usage(u, u.completion_tokens),
        )

    # streaming

    def opening_chunks(self) -> list[BaseModel]:
        started = self.started
        assert started is not None, "begin() comes first"
        message = MessageResponse(
            id=self.id, model=self.model, content=[], stop_reason=None, stop_sequence=None, usage=usage(started)
        )
        return [MessageStart(message=message)]

    def delta_chunks(self, delta: engine.Delta) -> list[BaseModel]:
        self.add(delta)
        return self._events(self._pieces(final=False))

    def _events(self, pieces: list[ParsedPiece]) -> list[BaseModel]:
        events: list[BaseModel] = []
        for piece in pieces:
            if isinstance(piece, str):
                if not self._blocks:
                    events += self._start(TextContent(text=""))
                events.append(ContentBlockDelta(index=0, delta=TextDelta(text=piece)))
            elif isinstance(piece, CallStarted):
                events += self._start(tool_use(ToolCall(name=piece.name, id=piece.id), started=True))
            elif isinstance(piece, CallArguments):
                events.append(ContentBlockDelta(index=self._blocks - 1, delta=InputJsonDelta(partial_json=piece.text)))
        return events

    def _start(self, block: TextContent | ToolUseContent) -> list[BaseModel]:
        events = self._stop_block()
        self._blocks, self._open = self._blocks + 1, True
        return events + [ContentBlockStart(index=self._blocks - 1, content_block=block)]

    def _stop_block(self) -> list[BaseModel]:
        if not self._open:
            return []
        self._open = False
        return [ContentBlockStop(index=self._blocks - 1)]

    def finish_chunk(self, index: int, reason: str) -> None:
        return None

    def closing_chunks(self, u: engine.Usage, include_usage: bool) -> list[BaseModel]:
        events = self._events(self._pieces(final=True))
        if not self._blocks:  # nothing generated: an empty text block
            events += self._start(TextContent(text=""))
        reason, sequence = self._stop()
        return events + [
            *self._stop_block(),
            MessageDelta(
                delta=StopDelta(stop_reason=reason, stop_sequence=sequence),
                usage=OutputUsage(output_tokens=u.completion_tokens),
            ),
            MessageStop(),
        ]

    def failure_chunk(self, error: ApiError) -> StreamError:
        return StreamError(error=error_body(error).error)

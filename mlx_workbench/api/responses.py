# Field types are built by calls (Int(ge=1): an Annotated int), which pyright cannot read in annotations.
# pyright: reportInvalidTypeForm=false
"""OpenAI's Responses API (`POST /responses`, `GET` and `DELETE /responses/{id}`) as a thin
translation onto chat generation: the request becomes chat messages for the same
GenerationRequest as a chat completion, and the engine's events become the Response
object, or its semantic stream events in OpenAI's order with sequence numbers.

A stored response keeps its conversation in the engine's conversation store
(`engine/conversations.py`), which `previous_response_id` continues: the messages
replayed give the prompt the very tokens of the last turn, which the prompt cache holds.
`text.format` (json_object, json_schema) is enforced as chat's response_format is; tools are refused for now.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from ..engine import requests as engine
from ..engine.requests import Constraint, SamplingParams
from .errors import ApiError
from .formats import ResponseBuilder
from .request_schemas import NO_TOOLS, Int, NoTools, Request


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def template_message(role: str, texts: str | list[str]) -> dict:
    """A message as the engine renders it (it joins text parts and reads developer as system)."""
    content = texts if isinstance(texts, str) else [{"type": "text", "text": t} for t in texts]
    return {"role": role, "content": content}


# ---- requests -------------------------------------------------------------------------


class InputText(Request):
    # output_text: an assistant message of an earlier response, sent back as input
    type: Literal["input_text", "output_text"]
    text: str

    @field_validator("type", mode="before")
    @classmethod
    def _text_only(cls, kind):
        if kind not in ("input_text", "output_text"):
            raise ValueError(f"a {kind!r} content part cannot be used: the models here accept text only")
        return kind


class InputMessage(Request):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputText]

    @field_validator("type", mode="before")
    @classmethod
    def _messages_only(cls, kind):
        if kind != "message":
            raise ValueError(f"{kind!r} items cannot be used: {NO_TOOLS}")
        return kind

    def for_template(self) -> dict:
        return template_message(
            self.role, self.content if isinstance(self.content, str) else [part.text for part in self.content]
        )


class TextFormat(Request):
    """Chat's response_format, flat: the schema's fields sit beside `type`."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "if": {"properties": {"type": {"const": "json_schema"}}},
            "then": {
                "required": ["name", "schema"],
                "properties": {"name": {"type": "string"}, "schema": {"type": "object"}},
            },
        },
    )

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(None, min_length=1, max_length=64, pattern="^[a-zA-Z0-9_-]+$")
    description: str | None = None
    schema_: dict | None = Field(None, alias="schema", description="A JSON Schema (with type json_schema).")
    strict: bool | None = Field(None, description="Every schema is enforced while decoding, strict or not.")

    @model_validator(mode="after")
    def _schema_with_its_type(self):
        if self.type == "json_schema" and (self.name is None or self.schema_ is None):
            raise ValueError('type "json_schema" needs a name and a schema')
        return self

    def constraint(self) -> Constraint | None:
        if self.type == "text":
            return None
        return Constraint(self.type, self.schema_, param="text.format")


class TextConfig(Request):
    format: TextFormat | None = None


def _non_empty_branches(schema: dict) -> None:
    """The JSON Schema of `str | list`, neither empty."""
    for branch in schema["anyOf"]:
        branch["minLength" if branch["type"] == "string" else "minItems"] = 1


class CreateResponse(Request):
    model: str = Field(min_length=1, description='A model id: "name" or "name:adapter".')
    input: str | list[InputMessage] = Field(
        description="Text (a user message) or message items; other item types are not supported yet.",
        json_schema_extra=_non_empty_branches,
    )
    instructions: str | None = Field(None, description="A system message first; not carried to later responses.")
    previous_response_id: str | None = Field(None, description="A stored response this one continues.")
    max_output_tokens: Int(ge=16) | None = Field(None, description="Clamped to the server's cap.")
    # OpenAI's clients may send null for these: the default, then.
    temperature: float | None = Field(1.0, ge=0.0, le=2.0)
    top_p: float | None = Field(1.0, gt=0.0, le=1.0)
    stream: bool | None = False
    store: bool | None = Field(True, description="Keep it for GET and previous_response_id (a bounded store, LRU).")
    metadata: dict[str, str] | None = None
    text: TextConfig | None = None
    tools: NoTools = Field(None, description=f"Not supported: {NO_TOOLS}.", json_schema_extra={"maxItems": 0})
    tool_choice: str | dict | None = Field(
        None,
        description='Only "none" and "auto": there are no tools.',
        json_schema_extra={"anyOf": [{"enum": ["none", "auto"]}, {"type": "null"}]},
    )
    parallel_tool_calls: bool | None = True
    background: bool | None = Field(
        False, description="Not supported: only false.", json_schema_extra={"enum": [False, None]}
    )

    @model_validator(mode="after")
    def _null_is_the_default(self):
        for name in ("temperature", "top_p", "stream", "store", "parallel_tool_calls", "background"):
            if getattr(self, name) is None:
                setattr(self, name, type(self).model_fields[name].default)
        return self

    @field_validator("input")
    @classmethod
    def _some_input(cls, value):
        if not value:
            raise ValueError("the input must not be empty")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _no_tool_choice(cls, choice):
        if choice not in (None, "none", "auto"):
            raise ValueError(NO_TOOLS)
        return choice

    @field_validator("background")
    @classmethod
    def _no_background(cls, background):
        if background:
            raise ValueError("background responses are not supported")
        return background

    # What the shared generation path reads (see handlers.GenerationHandler).
    @property
    def adapter(self) -> None:  # an adapter is named in the model id
        return None

    @property
    def n(self) -> int:
        return 1

    @property
    def include_usage(self) -> bool:
        return True

    def messages(self) -> list[dict]:
        """The input as chat messages (without the instructions, which are not carried over)."""
        if isinstance(self.input, str):
            return [template_message("user", self.input)]
        return [item.for_template() for item in self.input]

    def sampling(self, max_tokens_cap: int) -> SamplingParams:
        requested = self.max_output_tokens
        form = self.text.format if self.text else None
        return SamplingParams(
            max_tokens=min(max_tokens_cap if requested is None else requested, max_tokens_cap),
            constraint=form.constraint() if form else None,
            temperature=self.temperature,  # type: ignore[arg-type]  (never null: _null_is_the_default)
            top_p=self.top_p,  # type: ignore[arg-type]  (never null: _null_is_the_default)
        )


# ---- responses ------------------------------------------------------------------------


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list = Field(default_factory=list)
    logprobs: list = Field(default_factory=list)


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[OutputText]


class InputTokensDetails(BaseModel):
    cached_tokens: int


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"]


class ResponseError(BaseModel):
    code: str
    message: str


class Response(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None
    model: str
    output: list[OutputMessage]
    parallel_tool_calls: bool
    previous_response_id: str | None
    max_output_tokens: int | None
    metadata: dict[str, str]
    store: bool
    temperature: float
    top_p: float
    text: dict = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: str
    tools: list = Field(default_factory=list)
    truncation: Literal["disabled"] = "disabled"
    usage: ResponseUsage | None = None


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


# Stream events: each has its type and sequence number.


class StreamEvent(BaseModel):
    type: str
    sequence_number: int


class ResponseEvent(StreamEvent):
    """response.created, .in_progress, .completed, .incomplete and .failed."""

    type: Literal[
        "response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed"
    ]
    response: Response


class OutputItemEvent(StreamEvent):
    type: Literal["response.output_item.added", "response.output_item.done"]
    output_index: int
    item: OutputMessage


class ContentPartEvent(StreamEvent):
    type: Literal["response.content_part.added", "response.content_part.done"]
    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class TextDeltaEvent(StreamEvent):
    type: Literal["response.output_text.delta"]
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list = Field(default_factory=list)


class TextDoneEvent(StreamEvent):
    type: Literal["response.output_text.done"]
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list = Field(default_factory=list)


ResponseStreamEvent = Annotated[
    ResponseEvent | OutputItemEvent | ContentPartEvent | TextDeltaEvent | TextDoneEvent,
    Field(discriminator="type"),
]


class ResponseStreamEvents(RootModel[ResponseStreamEvent]):
    """Any event of a streamed response (for the OpenAPI document)."""


# ---- engine events -> the Response and its stream ------------------------------------------


class ResponsesBuilder(ResponseBuilder):
    """One response of one output message."""

    named_events = True

    def __init__(self, body: CreateResponse, on_final: Callable[[Response], None]):
        super().__init__(body.model, n=1, logprobs=False)
        self.id = new_id("resp")
        self.item_id = new_id("msg")
        self.body = body
        self.sequence = 0
        self.on_final = on_final  # called before the final response leaves: stores it

    def _next(self) -> int:
        self.sequence += 1
        return self.sequence - 1

    def _message(self, status: Literal["in_progress", "completed", "incomplete"], text: str | None) -> OutputMessage:
        content = [] if text is None else [OutputText(text=text)]
        return OutputMessage(id=self.item_id, status=status, content=content)

    def _response(
        self,
        status: Literal["in_progress", "completed", "incomplete", "failed"],
        output: list[OutputMessage],
        u: engine.Usage | None = None,
        error: ResponseError | None = None,
    ) -> Response:
        body = self.body
        return Response(
            id=self.id,
            created_at=self.created,
            status=status,
            error=error,
            incomplete_details=IncompleteDetails(reason="max_output_tokens") if status == "incomplete" else None,
            instructions=body.instructions,
            model=self.model,
            output=output,
            parallel_tool_calls=body.parallel_tool_calls,  # type: ignore[arg-type]  (never null: _null_is_the_default)
            previous_response_id=body.previous_response_id,
            max_output_tokens=body.max_output_tokens,
            metadata=body.metadata or {},
            store=body.store,  # type: ignore[arg-type]  (never null: _null_is_the_default)
            temperature=body.temperature,  # type: ignore[arg-type]  (never null: _null_is_the_default)
            top_p=body.top_p,  # type: ignore[arg-type]  (never null: _null_is_the_default)
            tool_choice=body.tool_choice or "auto",  # type: ignore[arg-type]  (a string: "none" or "auto")
            text={"format": body.text.format.model_dump(by_alias=True, exclude_none=True)}
            if body.text and body.text.format
            else {"format": {"type": "text"}},
            usage=None
            if u is None
            else ResponseUsage(
                input_tokens=u.prompt_tokens,
                input_tokens_details=InputTokensDetails(cached_tokens=u.cached_tokens),
                output_tokens=u.completion_tokens,
                total_tokens=u.total_tokens,
            ),
        )

    def _status(self) -> Literal["incomplete", "completed"]:
        return "incomplete" if self.finish_reasons[0] == "length" else "completed"

    def response(self, u: engine.Usage) -> Response:
        status = self._status()
        final = self._response(status, [self._message(status, self.text(0))], u)
        self.on_final(final)
        return final

    # streaming

    def opening_chunks(self) -> list[StreamEvent]:
        part = OutputText(text="")
        return [
            ResponseEvent(
                type="response.created", sequence_number=self._next(), response=self._response("in_progress", [])
            ),
            ResponseEvent(
                type="response.in_progress", sequence_number=self._next(), response=self._response("in_progress", [])
            ),
            OutputItemEvent(
                type="response.output_item.added",
                sequence_number=self._next(),
                output_index=0,
                item=self._message("in_progress", None),
            ),
            ContentPartEvent(
                type="response.content_part.added",
                sequence_number=self._next(),
                item_id=self.item_id,
                output_index=0,
                content_index=0,
                part=part,
            ),
        ]

    def delta_chunk(self, delta: engine.Delta) -> TextDeltaEvent | None:
        self.add(delta)
        if not delta.text:
            return None
        return TextDeltaEvent(
            type="response.output_text.delta",
            sequence_number=self._next(),
            item_id=self.item_id,
            output_index=0,
            content_index=0,
            delta=delta.text,
        )

    def finish_chunk(self, index: int, reason: str) -> None:
        return None  # the closing chunks say it

    def closing_chunks(self, u: engine.Usage, include_usage: bool) -> list[BaseModel]:
        text = self.text(0)
        final = self.response(u)
        ids = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        return [
            TextDoneEvent(type="response.output_text.done", sequence_number=self._next(), text=text, **ids),
            ContentPartEvent(
                type="response.content_part.done", sequence_number=self._next(), part=OutputText(text=text), **ids
            ),
            OutputItemEvent(
                type="response.output_item.done", sequence_number=self._next(), output_index=0, item=final.output[0]
            ),
            ResponseEvent(
                type=f"response.{final.status}",  # type: ignore[arg-type]  (completed or incomplete)
                sequence_number=self._next(),
                response=final,
            ),
        ]

    def failure_chunk(self, error: ApiError) -> ResponseEvent:
        detail = error.detail
        failed = self._response(
            "failed", [], error=ResponseError(code=detail.code or detail.type, message=detail.message)
        )
        return ResponseEvent(type="response.failed", sequence_number=self._next(), response=failed)

# Field types are built by calls (Int(ge=1): an Annotated int), which pyright cannot read in annotations.
# pyright: reportInvalidTypeForm=false
"""OpenAI's Responses API (`POST /responses`, `GET` and `DELETE /responses/{id}`) as a thin
translation onto chat generation: the request becomes chat messages for the same
GenerationRequest as a chat completion, and the engine's events become the Response
object, or its semantic stream events in OpenAI's order with sequence numbers.

A stored response keeps its conversation in the engine's conversation store
(`engine/conversations.py`), which `previous_response_id` continues: the messages
replayed give the prompt the very tokens of the last turn, which the prompt cache holds.
`text.format` (json_object, json_schema) is enforced as chat's response_format is; function
tools are chat's tools (`response_tools.py`), their calls output items of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..engine import requests as engine
from ..engine.requests import Constraint, SamplingParams
from ..engine.tool_calls import CallArguments, CallStarted, ParsedPiece, ToolCall
from .chat_tools import AnswerReader
from .errors import ApiError
from .formats import ResponseBuilder
from .request_schemas import Int, Request, ToolPlan
from .response_objects import (
    ContentPartEvent,
    IncompleteDetails,
    InputTokensDetails,
    OutputItem,
    OutputItemEvent,
    OutputMessage,
    OutputText,
    Response,
    ResponseError,
    ResponseEvent,
    ResponseUsage,
    StreamEvent,
    TextDeltaEvent,
    TextDoneEvent,
    call_item,
)
from .response_tools import (
    ArgumentsDeltaEvent,
    ArgumentsDoneEvent,
    FunctionCallInput,
    FunctionCallItem,
    FunctionCallOutputInput,
    FunctionTool,
    ToolChoice,
    check_tool_choice,
    tool_plan,
)


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
    input: str | list[InputMessage | FunctionCallInput | FunctionCallOutputInput] = Field(
        description="Text (a user message), or message, function_call and function_call_output items.",
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
    tools: list[FunctionTool] | None = Field(None, description="Function tools (other tool types are not served).")
    tool_choice: ToolChoice | None = Field(
        None, description='"required" and a named function are enforced while decoding: the calls parse and validate.'
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
    def _tool_choice(cls, choice, info: ValidationInfo):
        check_tool_choice(choice, info.data.get("tools"))
        text = info.data.get("text")
        if choice not in (None, "none", "auto") and text and text.format and text.format.type != "text":
            raise ValueError("a forced tool call cannot be combined with text.format")
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
        messages: list[dict] = []
        for item in self.input:
            if isinstance(item, FunctionCallInput):  # the calls of one answer join its message
                if not messages or messages[-1]["role"] != "assistant":
                    messages.append(template_message("assistant", ""))
                messages[-1].setdefault("tool_calls", []).append(item.for_template())
            else:
                messages.append(item.for_template())
        return messages

    def tool_plan(self) -> ToolPlan:
        return tool_plan(self.tools or [], self.tool_choice, parallel=self.parallel_tool_calls is not False)

    def constraint(self) -> Constraint | None:
        form = self.text.format if self.text else None
        return self.tool_plan().constraint() or (form.constraint() if form else None)

    def sampling(self, max_tokens_cap: int) -> SamplingParams:
        requested = self.max_output_tokens
        return SamplingParams(
            max_tokens=min(max_tokens_cap if requested is None else requested, max_tokens_cap),
            constraint=self.constraint(),
            temperature=self.temperature,  # type: ignore[arg-type]  (never null: _null_is_the_default)
            top_p=self.top_p,  # type: ignore[arg-type]  (never null: _null_is_the_default)
        )


def output_messages(response: Response) -> list[dict]:
    """A response's output as the chat messages that continue its conversation."""
    texts = [part.text for item in response.output if isinstance(item, OutputMessage) for part in item.content]
    calls = [item.for_template() for item in response.output if isinstance(item, FunctionCallItem)]
    return [{**template_message("assistant", "".join(texts)), **({"tool_calls": calls} if calls else {})}]


class ResponsesBuilder(ResponseBuilder):
    """One response: an output message, and function calls when the request has tools. A
    stream opens each output item as its first piece arrives, and closes it before the next."""

    named_events = True

    def __init__(self, body: CreateResponse, on_final: Callable[[Response], None]):
        super().__init__(body.model, n=1, logprobs=False)
        self.id = new_id("resp")
        self.item_id = new_id("msg")
        self.body = body
        self.sequence = 0
        self.on_final = on_final  # called before the final response leaves: stores it
        self.plan = body.tool_plan()
        self.reader = AnswerReader()  # with the model's tool syntax once it started
        self._streamed: list[OutputItem] = []  # the items a stream has opened
        self._open = False  # the last of them is not done yet

    def begin(self, started: engine.Started) -> None:
        super().begin(started)
        self.reader = AnswerReader(self.plan, started.tool_syntax)

    def _next(self) -> int:
        self.sequence += 1
        return self.sequence - 1

    def _message(self, status: Literal["in_progress", "completed", "incomplete"], text: str | None) -> OutputMessage:
        content = [] if text is None else [OutputText(text=text)]
        return OutputMessage(id=self.item_id, status=status, content=content)

    def _response(
        self,
        status: Literal["in_progress", "completed", "incomplete", "failed"],
        output: list[OutputItem],
        u: engine.Usage | None = None,
        error: ResponseError | None = None,
    ) -> Response:
        body = self.body
        choice = body.tool_choice or "auto"
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
            tool_choice=choice if isinstance(choice, str) else choice.model_dump(),
            tools=body.tools or [],
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

    def _pieces(self, final: bool) -> list[ParsedPiece]:
        return self.reader.read(self.text(0), final)

    def _output(self, status: Literal["completed", "incomplete"]) -> list[OutputItem]:
        self._pieces(final=True)
        calls: list[OutputItem] = [call_item(c, status) for c in self.reader.calls]
        content = self.reader.content
        return ([self._message(status, content)] if content or not calls else []) + calls

    def response(self, u: engine.Usage) -> Response:
        final = self._response(self._status(), self._output(self._status()), u)
        self.on_final(final)
        return final

    # streaming

    def opening_chunks(self) -> list[StreamEvent]:
        return [
            ResponseEvent(
                type="response.created", sequence_number=self._next(), response=self._response("in_progress", [])
            ),
            ResponseEvent(
                type="response.in_progress", sequence_number=self._next(), response=self._response("in_progress", [])
            ),
        ]

    def delta_chunks(self, delta: engine.Delta) -> list[BaseModel]:
        self.add(delta)
        return self._events(self._pieces(final=False))

    def finish_chunk(self, index: int, reason: str) -> None:
        return None  # the closing chunks say it

    def _events(self, pieces: list[ParsedPiece]) -> list[BaseModel]:
        events: list[BaseModel] = []
        for piece in pieces:
            if isinstance(piece, str) and not self._streamed:
                events += self._add(self._message("in_progress", None))
                part = OutputText(text="")
                events.append(ContentPartEvent(type="response.content_part.added", part=part, **self._part_ids()))
            if isinstance(piece, str):
                events.append(TextDeltaEvent(type="response.output_text.delta", delta=piece, **self._part_ids()))
            elif isinstance(piece, CallStarted):
                started = call_item(ToolCall(name=piece.name, id=piece.id), "in_progress")
                events += self._close_item(self._status()) + self._add(started)
            elif isinstance(piece, CallArguments):
                ids = {"item_id": self._streamed[-1].id, "output_index": len(self._streamed) - 1}
                events.append(ArgumentsDeltaEvent(sequence_number=self._next(), delta=piece.text, **ids))
        return events

    def _part_ids(self) -> dict:
        return {"sequence_number": self._next(), "item_id": self.item_id, "output_index": 0, "content_index": 0}

    def _add(self, item: OutputItem) -> list[BaseModel]:
        self._streamed.append(item)
        self._open = True
        added = "response.output_item.added"
        return [
            OutputItemEvent(type=added, sequence_number=self._next(), output_index=len(self._streamed) - 1, item=item)
        ]

    def _close_item(
        self, status: Literal["completed", "incomplete"], final: OutputItem | None = None
    ) -> list[BaseModel]:
        """The events that end the open item (`final`: as the response has it)."""
        if not self._open:
            return []
        self._open, index, item = False, len(self._streamed) - 1, self._streamed[-1]
        if isinstance(item, OutputMessage):
            text = self.reader.content
            done = final or self._message(status, text)
            events: list[BaseModel] = [
                TextDoneEvent(type="response.output_text.done", text=text, **self._part_ids()),
                ContentPartEvent(type="response.content_part.done", part=OutputText(text=text), **self._part_ids()),
            ]
        else:
            call = self.reader.calls[index - isinstance(self._streamed[0], OutputMessage)]  # the message came first
            done = final or call_item(call, status)
            events = [
                ArgumentsDoneEvent(
                    sequence_number=self._next(),
                    item_id=item.id,
                    output_index=index,
                    name=call.name,
                    arguments=call.arguments,
                )
            ]
        return events + [
            OutputItemEvent(
                type="response.output_item.done", sequence_number=self._next(), output_index=index, item=done
            )
        ]

    def closing_chunks(self, u: engine.Usage, include_usage: bool) -> list[BaseModel]:
        events = self._events(self._pieces(final=True))
        if not self._streamed:  # nothing generated: an empty message
            events += self._add(self._message("in_progress", None))
            events.append(
                ContentPartEvent(type="response.content_part.added", part=OutputText(text=""), **self._part_ids())
            )
        final = self.response(u)
        events += self._close_item(final.status, final.output[-1])  # type: ignore[arg-type]  (completed or incomplete)
        return events + [
            ResponseEvent(
                type=f"response.{final.status}",  # type: ignore[arg-type]  (completed or incomplete)
                sequence_number=self._next(),
                response=final,
            )
        ]

    def failure_chunk(self, error: ApiError) -> ResponseEvent:
        detail = error.detail
        failed = self._response(
            "failed", [], error=ResponseError(code=detail.code or detail.type, message=detail.message)
        )
        return ResponseEvent(type="response.failed", sequence_number=self._next(), response=failed)

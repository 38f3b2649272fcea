"""The objects the Responses API answers: the Response with its output items (a message,
function calls), the stored-response deletion, and the semantic stream events."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, RootModel

from ..engine.tool_calls import ToolCall
from .response_tools import ArgumentsDeltaEvent, ArgumentsDoneEvent, FunctionCallItem, FunctionTool

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
    output: list[OutputMessage | FunctionCallItem]
    parallel_tool_calls: bool
    previous_response_id: str | None
    max_output_tokens: int | None
    metadata: dict[str, str]
    store: bool
    temperature: float
    top_p: float
    text: dict = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: str | dict
    tools: list[FunctionTool] = Field(default_factory=list)
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
    item: OutputMessage | FunctionCallItem


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
    ResponseEvent
    | OutputItemEvent
    | ContentPartEvent
    | TextDeltaEvent
    | TextDoneEvent
    | ArgumentsDeltaEvent
    | ArgumentsDoneEvent,
    Field(discriminator="type"),
]


class ResponseStreamEvents(RootModel[ResponseStreamEvent]):
    """Any event of a streamed response (for the OpenAPI document)."""


OutputItem = OutputMessage | FunctionCallItem


def call_item(call: ToolCall, status: Literal["in_progress", "completed", "incomplete"]) -> FunctionCallItem:
    item_id = "fc_" + call.id.removeprefix("call_")
    return FunctionCallItem(id=item_id, call_id=call.id, name=call.name, arguments=call.arguments, status=status)

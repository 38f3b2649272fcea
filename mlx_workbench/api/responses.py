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

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from ..engine import requests as engine
from ..engine.tool_calls import CallArguments, CallStarted, ParsedPiece, ToolCall
from .chat_tools import AnswerReader
from .errors import ApiError
from .formats import ResponseBuilder
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
from .response_requests import CreateResponse, new_id, template_message
from .response_tools import (
    ArgumentsDeltaEvent,
    ArgumentsDoneEvent,
    FunctionCallItem,
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

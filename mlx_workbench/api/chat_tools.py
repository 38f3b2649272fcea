"""Tool calls read out of a chat answer, in OpenAI's shape: `message.tool_calls` for a
response, `delta.tool_calls` chunks for a stream (a call's id and name first, then its
arguments as they are generated). Both come from one parser fed the same text, so a
reassembled stream equals the answer. Legacy `functions` requests get `function_call`."""

from __future__ import annotations

from ..engine.requests import FinishReason
from ..engine.tool_calls import SYNTAXES, CallArguments, CallStarted, ParsedPiece, ToolCall, ToolCallParser
from . import response_schemas as res
from .request_schemas import ToolPlan


def tool_parser(plan: ToolPlan, syntax: str) -> ToolCallParser:
    """The parser of an answer's calls, in the model's `syntax` (`Started.tool_syntax`)."""
    return ToolCallParser(SYNTAXES[syntax], max_calls=1 if plan.single else None)


class AnswerReader:
    """An answer's text as it grows, read a piece at a time: all content, or content and
    tool calls when the request has tools (the Responses and Messages builders read it)."""

    def __init__(self, plan: ToolPlan | None = None, syntax: str | None = None):
        self.parser = tool_parser(plan, syntax) if plan and plan.parse and syntax else None
        self.text = ""

    def read(self, text: str, final: bool = False) -> list[ParsedPiece]:
        """The pieces of `text`, the answer so far, that were not read before."""
        new, self.text = text[len(self.text) :], text
        if self.parser is None:
            return [new] if new else []
        return self.parser.feed(new) + (self.parser.finish() if final else [])

    @property
    def content(self) -> str:
        return self.text if self.parser is None else self.parser.content

    @property
    def calls(self) -> list[ToolCall]:
        return [] if self.parser is None else self.parser.calls


class ToolReader:
    """One choice's text, split into content and tool calls, in chat's shapes."""

    def __init__(self, syntax: str, plan: ToolPlan):
        self.parser = tool_parser(plan, syntax)
        self.legacy = plan.legacy

    def delta(self, text: str) -> res.ChunkDelta | None:
        return self._delta(self.parser.feed(text))

    def last_delta(self) -> res.ChunkDelta:
        """What the end of the text still holds (content that might have begun a call)."""
        return self._delta(self.parser.finish()) or res.ChunkDelta()

    def finish_reason(self, reason: FinishReason) -> res.ChatFinishReason:
        if reason != "stop" or not self.parser.calls:
            return reason
        return "function_call" if self.legacy else "tool_calls"

    def message(self, text: str) -> res.AssistantMessage:
        self.parser.feed(text)
        self.parser.finish()
        calls, content = self.parser.calls, self.parser.content
        answer = res.AssistantMessage(content=content if content.strip() or not calls else None)
        if calls and self.legacy:
            answer.function_call = res.FunctionCall(name=calls[0].name, arguments=calls[0].arguments)
        elif calls:
            answer.tool_calls = [
                res.ToolCall(id=c.id, function=res.FunctionCall(name=c.name, arguments=c.arguments)) for c in calls
            ]
        return answer

    def _delta(self, pieces: list[ParsedPiece]) -> res.ChunkDelta | None:
        content = "".join(p for p in pieces if isinstance(p, str))
        calls: dict[int, res.ChunkToolCall] = {}  # one entry per call, its fragments joined
        for p in pieces:
            if isinstance(p, CallStarted):
                calls[p.index] = res.ChunkToolCall(
                    index=p.index, id=p.id, type="function", function=res.ChunkFunction(name=p.name)
                )
            elif isinstance(p, CallArguments):
                call = calls.setdefault(p.index, res.ChunkToolCall(index=p.index, function=res.ChunkFunction()))
                call.function.arguments += p.text
        if not content and not calls:
            return None
        delta = res.ChunkDelta(content=content or None)
        if self.legacy and 0 in calls:
            delta.function_call = calls[0].function
        elif calls:
            delta.tool_calls = list(calls.values())
        return delta

"""Tools of Anthropic's Messages API, as chat's tools: `tools` and `tool_choice`, the
`tool_use` blocks of the assistant's turns and the `tool_result` blocks of the user's as the
calls and results of a chat, and the `tool_use` blocks of an answer (streamed as
`input_json_delta`s of their input as it is generated)."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field

from ..engine.tool_calls import ToolCall
from .request_schemas import Request, ToolPlan, tool_mismatch


class AnthropicTool(Request):
    name: str = Field(pattern="^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    input_schema: dict = Field(description="A JSON Schema of the input; a forced call's input validates against it.")

    def for_template(self) -> dict:
        function = {"name": self.name, "description": self.description, "parameters": self.input_schema}
        return {"type": "function", "function": {k: v for k, v in function.items() if v is not None}}


class AnthropicToolChoice(Request):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(None, description='The tool, with type "tool".')
    disable_parallel_tool_use: bool | None = None


def check_tool_choice(choice: AnthropicToolChoice | None, tools: list[AnthropicTool] | None) -> None:
    if choice is None or choice.type in ("auto", "none"):
        return
    if not tools:
        raise tool_mismatch(f'tool_choice "{choice.type}" needs tools')
    if choice.type == "tool" and choice.name not in {t.name for t in tools}:
        raise tool_mismatch(f"no tool named {choice.name!r} is among the tools")


def tool_plan(tools: list[AnthropicTool], choice: AnthropicToolChoice | None) -> ToolPlan:
    kind = choice.type if choice else "auto"
    forced = [t for t in tools if kind == "any" or (kind == "tool" and t.name == choice.name)]  # type: ignore[union-attr]  (kind "tool": a choice)
    return ToolPlan(
        tools=[t.for_template() for t in tools],
        forced=[t.for_template()["function"] for t in forced],
        parse=bool(tools) and kind != "none",
        single=kind == "tool" or bool(choice and choice.disable_parallel_tool_use),
        legacy=False,
    )


class ToolUseBlock(Request):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str
    input: dict

    def for_template(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.input}}


class ToolResultText(Request):
    type: Literal["text"]
    text: str


class ToolResultBlock(Request):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[ToolResultText] = ""
    is_error: bool | None = None

    def for_template(self) -> dict:
        text = self.content if isinstance(self.content, str) else "\n".join(part.text for part in self.content)
        return {"role": "tool", "tool_call_id": self.tool_use_id, "content": text}


class ToolUseContent(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict


def tool_use(call: ToolCall, started: bool = False) -> ToolUseContent:
    """A call as a `tool_use` block (its input empty when `started`, as a stream opens it)."""
    tool_use_id = "toolu_" + call.id.removeprefix("call_")
    try:
        arguments = {} if started else json.loads(call.arguments)
    except ValueError:  # cut short by max_tokens
        arguments = {}
    return ToolUseContent(id=tool_use_id, name=call.name, input=arguments if isinstance(arguments, dict) else {})


class InputJsonDelta(BaseModel):
    type: Literal["input_json_delta"] = "input_json_delta"
    partial_json: str

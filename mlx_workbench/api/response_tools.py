"""Function tools of the Responses API, as chat's tools: the flat tool definitions and
`tool_choice`, the `function_call` and `function_call_output` input items as the assistant's
calls and the tools' results of a chat, and the `function_call` output items with their
argument events (`response.function_call_arguments.delta` / `.done`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .request_schemas import Request, ToolPlan, tool_mismatch


class FunctionTool(Request):
    type: Literal["function"]
    name: str = Field(pattern="^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict | None = Field(None, description="A JSON Schema of the arguments.")
    strict: bool | None = Field(None, description="Forced calls are enforced while decoding, strict or not.")

    def for_template(self) -> dict:
        parameters = self.parameters or {"type": "object", "properties": {}}
        function = {"name": self.name, "description": self.description, "parameters": parameters}
        return {"type": "function", "function": {k: v for k, v in function.items() if v is not None}}


class NamedFunctionChoice(Request):
    type: Literal["function"]
    name: str


ToolChoice = Literal["none", "auto", "required"] | NamedFunctionChoice


def tool_plan(tools: list[FunctionTool], choice: ToolChoice | None, parallel: bool) -> ToolPlan:
    named = choice.name if isinstance(choice, NamedFunctionChoice) else None
    forced = [t for t in tools if t.name == named or choice == "required"]
    return ToolPlan(
        tools=[t.for_template() for t in tools],
        forced=[t.for_template()["function"] for t in forced],
        parse=bool(tools) and choice != "none",
        single=named is not None or not parallel,
        legacy=False,
    )


def check_tool_choice(choice: ToolChoice | None, tools: list[FunctionTool] | None) -> None:
    if choice in (None, "none", "auto"):
        return
    if not tools:
        raise tool_mismatch("'tool_choice' is only allowed when 'tools' are specified")
    if isinstance(choice, NamedFunctionChoice) and choice.name not in {t.name for t in tools}:
        raise tool_mismatch(f"no function named {choice.name!r} is among the tools")


class FunctionCallInput(Request):
    """A call of an earlier response, sent back as input."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None

    def for_template(self) -> dict:
        return {"id": self.call_id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


class FunctionCallOutputInput(Request):
    """A call's result."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str
    id: str | None = None
    status: str | None = None

    def for_template(self) -> dict:
        return {"role": "tool", "tool_call_id": self.call_id, "content": self.output}


class FunctionCallItem(BaseModel):
    id: str
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete"]

    def for_template(self) -> dict:
        return FunctionCallInput(
            type="function_call", call_id=self.call_id, name=self.name, arguments=self.arguments
        ).for_template()


class ArgumentsDeltaEvent(BaseModel):
    type: Literal["response.function_call_arguments.delta"] = "response.function_call_arguments.delta"
    sequence_number: int
    item_id: str
    output_index: int
    delta: str


class ArgumentsDoneEvent(BaseModel):
    type: Literal["response.function_call_arguments.done"] = "response.function_call_arguments.done"
    sequence_number: int
    item_id: str
    output_index: int
    name: str
    arguments: str

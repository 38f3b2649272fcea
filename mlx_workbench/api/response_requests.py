# Field types are built by calls (Int(ge=1): an Annotated int), which pyright cannot read in annotations.
# pyright: reportInvalidTypeForm=false
"""The Responses API's request: `CreateResponse` (its input items, `text.format`, function
tools) and the chat messages, sampling and tool plan it becomes (see responses.py)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..engine.requests import Constraint, SamplingParams
from .request_schemas import Int, OneChoice, Request, ToolPlan, tool_mismatch
from .response_tools import (
    FunctionCallInput,
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


class CreateResponse(OneChoice, Request):
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
            raise tool_mismatch("a forced tool call cannot be combined with text.format")
        return choice

    @field_validator("background")
    @classmethod
    def _no_background(cls, background):
        if background:
            raise ValueError("background responses are not supported")
        return background

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

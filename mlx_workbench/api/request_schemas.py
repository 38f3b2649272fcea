# Field types are built by calls (Int(ge=1): an Annotated int), which pyright cannot read in annotations.
# pyright: reportInvalidTypeForm=false
"""The request bodies: pydantic v2 models of what clients send.

Requests follow OpenAI's names and ranges and ignore fields they do not know
(clients send many); `top_k`, `min_p`, `repetition_penalty` and `adapter` are
extensions. The OpenAPI document (`openapi.py`) is generated from these models
and those of `response_schemas.py`; requests are validated strictly (no "1" for 1,
no 0 for false, no NaN), so that the server accepts exactly what the document
says, cross-field rules included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from ..engine.requests import TEXT_ONLY, Constraint, ConstraintKind, SamplingParams

MAX_CHOICES = 16
MAX_PROMPTS = 64  # in one text completion request
MAX_STOPS = 16
_TEXT = {"type": "string", "minLength": 1}  # JSON Schema of a non-empty string


def _integral(value):
    """JSON Schema counts 2.0 as an integer; strict pydantic would refuse it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def Int(**constraints):
    """An integer field type; the constraints come first, or the schema loses them."""
    return Annotated[int, Field(**constraints), BeforeValidator(_integral)]


TOKEN_ID = "^[0-9]+$"
TokenId = Annotated[str, Field(pattern=TOKEN_ID)]  # a JSON object key naming a token


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)


class OneChoice:
    """What the shared generation path reads (handlers.GenerationBody) of an API without `n`
    or an `adapter` field (Responses, Messages): one choice, the adapter named in the model id."""

    adapter = None
    n = 1


class StreamOptions(Request):
    include_usage: bool = False


class JsonSchemaFormat(Request):
    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(min_length=1, max_length=64, pattern="^[a-zA-Z0-9_-]+$")
    description: str | None = None
    schema_: dict = Field(default_factory=dict, alias="schema", description="A JSON Schema; {} allows any JSON.")
    strict: bool | None = Field(None, description="Every schema is enforced while decoding, strict or not.")


class ResponseFormat(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"type": {"const": "json_schema"}}},
            "then": {"required": ["json_schema"], "properties": {"json_schema": {"type": "object"}}},
            "else": {"properties": {"json_schema": {"type": "null"}}},
        }
    )

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = Field(None, description='Required with type "json_schema".')

    @model_validator(mode="after")
    def _schema_with_its_type(self):
        if (self.json_schema is None) == (self.type == "json_schema"):
            raise ValueError('json_schema goes with type "json_schema", and only with it')
        return self


class StructuredOutputs(Request):
    """Extension (vLLM's names): exactly one of these constrains the text."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    json_: dict | SkipJsonSchema[None] = Field(None, alias="json", description="A JSON Schema.")
    regex: Annotated[str, Field(min_length=1)] | SkipJsonSchema[None] = Field(
        None, description="A regular expression the whole text matches."
    )
    choice: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | SkipJsonSchema[None] = Field(
        None, description="One of these strings."
    )
    grammar: Annotated[str, Field(min_length=1)] | SkipJsonSchema[None] = Field(
        None, description="A Lark grammar (llguidance's dialect)."
    )

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [name for name in ("json_", "regex", "choice", "grammar") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("structured_outputs takes exactly one of json, regex, choice and grammar")
        return self


# structured_outputs and a response_format other than text exclude each other.
_ONE_FORMAT = {
    "not": {
        "required": ["structured_outputs", "response_format"],
        "properties": {
            "structured_outputs": {"type": "object"},
            "response_format": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["json_object", "json_schema"]}},
            },
        },
    }
}


# stream_options without stream is refused, as OpenAI refuses it.
_STREAM_OPTIONS_NEED_STREAM = {
    "if": {"properties": {"stream_options": {"type": "object"}}, "required": ["stream_options"]},
    "then": {"properties": {"stream": {"const": True}}, "required": ["stream"]},
}


class GenerationParams(Request):
    """Fields shared by chat and text completions."""

    model: str = Field(min_length=1, description='A model id: "name" or "name:adapter".')
    adapter: str | None = Field(None, min_length=1, description="Extension: a LoRA adapter of `model`.")
    max_tokens: Int(ge=1) | None = Field(None, description="Clamped to the server's cap and the context left.")
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: Int(ge=1, le=MAX_CHOICES) = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(
        None,
        validate_default=True,
        json_schema_extra={
            "anyOf": [
                _TEXT,
                {"type": "array", "items": _TEXT, "maxItems": MAX_STOPS},
                {"type": "null"},
            ]
        },
    )
    seed: Int() | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    logit_bias: dict[TokenId, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = Field(
        None,
        description="Token id (decimal digits) -> bias; ids outside the model's vocabulary are refused (400).",
        json_schema_extra={"propertyNames": {"pattern": TOKEN_ID}},
    )
    top_k: Int(ge=0) = Field(0, description="Extension: sample from the k most likely tokens (0: all).")
    min_p: float = Field(0.0, ge=0.0, le=1.0, description="Extension.")
    # Beyond these bounds the penalized logits overflow and nothing sensible is sampled.
    repetition_penalty: float = Field(1.0, ge=0.1, le=10.0, description="Extension: 1.0 disables it.")
    user: str | None = None
    response_format: ResponseFormat | None = Field(
        None, description="json_object and json_schema are enforced while decoding: the text parses (and validates)."
    )
    structured_outputs: StructuredOutputs | None = Field(
        None, description="Extension: a regex, a choice among strings or a Lark grammar (or a JSON Schema)."
    )

    @field_validator("structured_outputs")
    @classmethod
    def _one_format(cls, outputs, info: ValidationInfo):
        form = info.data.get("response_format")
        if outputs is not None and form is not None and form.type != "text":
            raise ValueError("structured_outputs cannot be combined with a response_format other than text")
        return outputs

    def constraint(self) -> Constraint | None:
        """The form the text must take, if any."""
        form, outputs = self.response_format, self.structured_outputs
        if outputs is not None:
            given: list[tuple[ConstraintKind, object]] = [
                ("json_schema", outputs.json_),
                ("regex", outputs.regex),
                ("lark", outputs.grammar),
                ("choice", tuple(outputs.choice) if outputs.choice else None),
            ]
            kind, value = next((k, v) for k, v in given if v is not None)
            return Constraint(kind, value, param="structured_outputs")  # type: ignore[arg-type]  (one of the fields' types)
        if form is None or form.type == "text":
            return None
        return Constraint(form.type, form.json_schema.schema_ if form.json_schema else None)

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop):
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences are supported")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return stops

    @field_validator("stream_options")
    @classmethod
    def _stream_options_need_stream(cls, options, info: ValidationInfo):
        if options is not None and not info.data.get("stream"):
            raise ValueError("'stream_options' is only allowed when 'stream' is enabled")
        return options

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def sampling(self, max_tokens_cap: int) -> SamplingParams:
        """The engine's parameters; max_tokens is clamped to the server's cap."""
        requested = self.requested_max_tokens()
        return SamplingParams(
            max_tokens=min(max_tokens_cap if requested is None else requested, max_tokens_cap),
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logit_bias={int(token): bias for token, bias in (self.logit_bias or {}).items()},
            stop=list(self.stop or []),  # a list once validated (_stop_strings)
            seed=self.seed,
            logprobs=self.wants_logprobs(),
            top_logprobs=self.top_logprob_count(),
            constraint=self.constraint(),
        )

    def wants_logprobs(self) -> bool:
        raise NotImplementedError

    def top_logprob_count(self) -> int:
        raise NotImplementedError


class TextPart(Request):
    type: Literal["text"]
    text: str

    @field_validator("type", mode="before")
    @classmethod
    def _text_only(cls, kind):
        if kind != "text":
            raise ValueError(f"a {kind!r} content part cannot be used: {TEXT_ONLY}")
        return kind


class FunctionCall(Request):
    name: str
    arguments: str = Field(description="The arguments, a JSON object as text.")


class ToolCall(Request):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(Request):
    # The rules of `_tool_fields_by_role`, in the document.
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [  # type: ignore[arg-type]  (JSON, typed narrower by pydantic)
                {
                    "if": {"properties": {"role": {"const": "tool"}}},
                    "then": {
                        "required": ["tool_call_id"],
                        "properties": {"tool_call_id": {"type": "string", "minLength": 1}},
                    },
                },
                {
                    "if": {"properties": {"role": {"const": "function"}}},
                    "then": {"required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}},
                },
                {
                    "if": {"properties": {"role": {"not": {"const": "assistant"}}}},
                    "then": {
                        "properties": {
                            "tool_calls": {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 0}]},
                            "function_call": {"type": "null"},
                        }
                    },
                },
            ]
        }
    )

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = Field(
        None, description="Text, or a list of text parts (other part types are not supported)."
    )
    name: str | None = None
    tool_calls: list[ToolCall] | None = Field(None, description="An assistant's calls.")
    function_call: FunctionCall | None = Field(None, description="Legacy: an assistant's one call.")
    tool_call_id: str | None = Field(None, description="A tool's result: the call it answers.")

    @model_validator(mode="after")
    def _tool_fields_by_role(self):
        if (self.tool_calls or self.function_call) and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls or function_call")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        if self.role == "function" and not self.name:
            raise ValueError("a function message needs the name of its function")
        return self

    def for_template(self) -> dict:
        """The dict the engine renders (it joins text parts)."""
        message = self.model_dump(exclude_none=True, by_alias=True)
        return message | {"content": message.get("content") or ""}


class FunctionDefinition(Request):
    name: str = Field(pattern="^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="A JSON Schema of the arguments; a forced call's arguments validate against it.",
    )
    strict: bool | None = Field(None, description="Forced calls are enforced while decoding, strict or not.")


class FunctionTool(Request):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(Request):
    name: str


class NamedToolChoice(Request):
    type: Literal["function"]
    function: NamedFunction


@dataclass
class ToolPlan:
    tools: list[dict]  # OpenAI function tools, for the chat template
    forced: list[dict]  # {"name", "parameters"} of the functions a call is forced among (required, named)
    parse: bool  # tool calls are read out of the answer
    single: bool  # one call at most
    legacy: bool  # answered as a legacy function_call

    def constraint(self) -> Constraint | None:
        """The grammar of the forced calls, if a call is forced."""
        if not self.forced:
            return None
        return Constraint("tool_calls", {"functions": self.forced, "parallel": not self.single}, param="tools")


def tool_mismatch(reason: str) -> PydanticCustomError:
    """A refusal tying the tools to another field (a choice naming no tool, a result answering no
    call, a forced call with a format): rules JSON Schema cannot state, so the document states
    them in words, and the code (`tool_mismatch`) says which kind of refusal it is."""
    return PydanticCustomError("tool_mismatch", "{reason}", {"reason": reason})


def _check_choice(field: str, tools_field: str, choice, info: ValidationInfo):
    """OpenAI's rules for a tool choice: only with tools, and naming one of them."""
    tools = info.data.get(tools_field)
    if choice is None or (choice == "none" and field != "parallel_tool_calls"):
        return choice
    if not tools:
        raise tool_mismatch(f"'{field}' is only allowed when '{tools_field}' are specified")
    named = choice.function.name if isinstance(choice, NamedToolChoice) else getattr(choice, "name", None)
    if named is not None and named not in {getattr(t, "function", t).name for t in tools}:
        raise tool_mismatch(f"no function named {named!r} is among the {tools_field}")
    form, outputs = info.data.get("response_format"), info.data.get("structured_outputs")
    if (named is not None or choice == "required") and (outputs or (form and form.type != "text")):
        raise tool_mismatch("a forced tool call cannot be combined with response_format or structured_outputs")
    return choice


class ChatCompletionRequest(GenerationParams):
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [  # type: ignore[arg-type]  (JSON, typed narrower by pydantic)
                {
                    "if": {
                        "properties": {"top_logprobs": {"type": "integer", "minimum": 1}},
                        "required": ["top_logprobs"],
                    },
                    "then": {"properties": {"logprobs": {"const": True}}, "required": ["logprobs"]},
                },
                _ONE_FORMAT,
                _STREAM_OPTIONS_NEED_STREAM,
            ]
        }
    )

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Int(ge=1) | None = None
    logprobs: bool = False
    top_logprobs: Int(ge=0, le=20) | None = Field(None, description="Needs logprobs=true.")
    tools: list[FunctionTool] | None = None
    functions: list[FunctionDefinition] | None = Field(None, description="Legacy: the same as function tools.")
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = Field(
        None, description='"required" and a named function are enforced while decoding: the calls parse and validate.'
    )
    function_call: Literal["none", "auto"] | NamedFunction | None = Field(None, description="Legacy tool_choice.")
    parallel_tool_calls: bool | None = Field(None, description="false: at most one call.")

    @field_validator("messages")
    @classmethod
    def _results_answer_calls(cls, messages: list[ChatMessage]):
        called: set[str] = set()
        for i, message in enumerate(messages):
            called |= {call.id for call in message.tool_calls or []}
            if message.role == "tool" and message.tool_call_id not in called:
                raise tool_mismatch(
                    f"messages[{i}] answers tool call {message.tool_call_id!r}, which no assistant made"
                )
        return messages

    @field_validator("functions")
    @classmethod
    def _tools_or_functions(cls, functions, info: ValidationInfo):
        if functions and info.data.get("tools"):
            raise tool_mismatch("'tools' and the legacy 'functions' cannot be combined")
        return functions

    @field_validator("tool_choice", "parallel_tool_calls")
    @classmethod
    def _tool_choice(cls, choice, info: ValidationInfo):
        return _check_choice(info.field_name or "", "tools", choice, info)

    @field_validator("function_call")
    @classmethod
    def _function_call(cls, choice, info: ValidationInfo):
        return _check_choice("function_call", "functions", choice, info)

    def tool_plan(self) -> ToolPlan:
        """What the tools fields ask of the generation (the legacy ones mapped onto them)."""
        tools = [t.function for t in self.tools or []] or list(self.functions or [])
        choice = self.tool_choice if self.tools else self.function_call
        if isinstance(choice, (NamedToolChoice, NamedFunction)):
            name = choice.function.name if isinstance(choice, NamedToolChoice) else choice.name
            forced = [t for t in tools if t.name == name]
        else:
            forced = tools if choice == "required" else []
        # A legacy function_call is one call, as are a named function and parallel_tool_calls=false.
        single = bool(self.functions) or isinstance(choice, (NamedToolChoice, NamedFunction))
        single = single or self.parallel_tool_calls is False
        return ToolPlan(
            tools=[{"type": "function", "function": t.model_dump(exclude_none=True)} for t in tools],
            forced=[{"name": t.name, "parameters": t.parameters} for t in forced],
            parse=bool(tools) and choice != "none",
            single=single,
            legacy=bool(self.functions),
        )

    def constraint(self) -> Constraint | None:
        return self.tool_plan().constraint() or super().constraint()

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


_TOKEN_IDS = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
_TEXT_PROMPTS = [_TEXT, {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": MAX_PROMPTS}]


def as_prompts(prompt) -> list:
    """The prompts of a text completion's `prompt`: one prompt, or a list of them."""
    return prompt if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)) else [prompt]


class CompletionRequest(GenerationParams):
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [  # type: ignore[arg-type]  (JSON, typed narrower by pydantic)
                _STREAM_OPTIONS_NEED_STREAM,
                {
                    "if": {"properties": {"echo": {"const": True}}, "required": ["echo"]},
                    "then": {"properties": {"prompt": {"anyOf": _TEXT_PROMPTS}}},
                },
                {
                    "if": {"properties": {"max_tokens": {"const": 0}}, "required": ["max_tokens"]},
                    "then": {"properties": {"echo": {"const": True}}, "required": ["echo"]},
                },
                _ONE_FORMAT,
            ]
        }
    )

    prompt: str | list[Int()] | list[str] | list[list[Int()]] = Field(
        description=f"A prompt (a string or token ids) or a list of up to {MAX_PROMPTS} of them. Each prompt "
        "gets n choices, in order: choice i of prompt k has index k * n + i. "
        "Ids outside the model's vocabulary are refused (400).",
        json_schema_extra={
            "anyOf": [
                *_TEXT_PROMPTS,
                _TOKEN_IDS,
                {"type": "array", "items": _TOKEN_IDS, "minItems": 1, "maxItems": MAX_PROMPTS},
            ]
        },
    )
    max_tokens: Int(ge=0) | None = Field(
        None, description="Clamped to the server's cap and the context left; 0 (with echo) scores the prompt only."
    )
    echo: bool = Field(
        False,
        validate_default=True,
        description="Needs a text prompt. With logprobs, the prompt's tokens are scored too.",
    )
    logprobs: Int(ge=0, le=5) | None = None
    suffix: str | None = Field(None, description="Not supported: only empty.", json_schema_extra={"maxLength": 0})
    best_of: Int(ge=1, le=1) | None = Field(None, description="Only 1: choosing the best of several is not supported.")

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, prompt):
        prompts = as_prompts(prompt)
        if len(prompts) > MAX_PROMPTS:
            raise ValueError(f"at most {MAX_PROMPTS} prompts per request")
        if not all(prompts):
            raise ValueError("the prompt must not be empty")
        if any(isinstance(p, list) and min(p) < 0 for p in prompts):
            raise ValueError("token ids must not be negative")
        return prompt

    @field_validator("echo")
    @classmethod
    def _echo_needs_text(cls, echo, info: ValidationInfo):
        if echo and not all(isinstance(p, str) for p in as_prompts(info.data.get("prompt", ""))):
            raise ValueError("echo needs a text prompt, not token ids")
        if not echo and info.data.get("max_tokens") == 0:
            raise ValueError("max_tokens=0 only scores the prompt, which needs echo=true")
        return echo

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, suffix):
        if suffix:
            raise ValueError("suffix is not supported")
        return suffix

    def wants_logprobs(self) -> bool:
        return self.logprobs is not None

    def top_logprob_count(self) -> int:
        return self.logprobs or 0

    def prompt_logprobs(self) -> int | None:
        """Alternatives per scored prompt token, if the prompt is to be scored."""
        return self.logprobs if self.echo and self.logprobs is not None else None


# ---- pool admin -------------------------------------------------------------------------


class EntryRequest(Request):
    """Names one pool entry: `model` may be a configured name, a local path or a
    Hugging Face repo id (load only), or "name:adapter"."""

    model: str = Field(min_length=1)
    adapter: str | None = Field(None, min_length=1)


class LoadRequest(EntryRequest):
    pin: bool | None = Field(None, description="Pin (never evict) or unpin once loaded; null keeps it.")
    wait: bool = Field(False, description="Answer 200 once loaded instead of 202 at once.")


class UnloadRequest(EntryRequest):
    pass


class PinRequest(EntryRequest):
    pinned: bool = True

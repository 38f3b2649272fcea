"""Tool calls through the official client on the real server: forced calls (`required`, a
named function) always parse and validate against the tool's schema, even from a tiny model
sampling at temperature 1; streamed calls equal unstreamed ones; a tool's result continues
the chat; the legacy `functions` fields; `.parse()` with `pydantic_function_tool`."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

USER = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 16},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
ADD = {
    "type": "object",
    "properties": {
        "a": {"type": "integer", "minimum": -99, "maximum": 99},
        "b": {"type": "integer", "minimum": -99, "maximum": 99},
    },
    "required": ["a", "b"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The forecast.", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "add", "parameters": ADD}},
]
SCHEMAS = {"get_weather": WEATHER, "add": ADD}


def assert_valid_calls(message, names=SCHEMAS) -> None:
    assert message.tool_calls, message
    for call in message.tool_calls:
        assert call.id.startswith("call_") and call.type == "function"
        assert call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


# demo speaks Llama 3 JSON calls; demo-chatml Hermes' <tool_call> (see engine/tool_calls.py).
@pytest.mark.parametrize("model", ["demo", "demo-chatml"])
@pytest.mark.parametrize(
    "tool_choice", ["required", {"type": "function", "function": {"name": "add"}}], ids=["required", "named"]
)
async def test_twenty_seeded_forced_calls_validate(async_openai_client, model, tool_choice):
    replies = await asyncio.gather(
        *(
            async_openai_client.chat.completions.create(
                model=model,
                messages=USER,
                tools=TOOLS,
                tool_choice=tool_choice,
                temperature=1.0,
                seed=seed,
                max_tokens=120,
            )
            for seed in range(20)
        )
    )
    names = {tool_choice["function"]["name"]} if isinstance(tool_choice, dict) else SCHEMAS
    for reply in replies:
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls", choice.message
        assert choice.message.content is None
        assert_valid_calls(choice.message, names)
        if isinstance(tool_choice, dict):
            assert len(choice.message.tool_calls) == 1  # a named function is called once
    assert len({r.choices[0].message.tool_calls[0].function.arguments for r in replies}) > 1  # sampled


@pytest.mark.parametrize("model", ["demo", "demo-chatml"])
def test_parallel_tool_calls_false_makes_one_call(openai_client, model):
    reply = openai_client.chat.completions.create(
        model=model,
        messages=USER,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=1.0,
        seed=4,
        max_tokens=120,
        n=6,
    )
    for choice in reply.choices:
        assert choice.finish_reason == "tool_calls" and len(choice.message.tool_calls) == 1
        assert_valid_calls(choice.message)


def assembled(chunks) -> tuple[dict[int, dict], str, str | None]:
    """The calls of a streamed answer by index, its content and its finish reason."""
    calls: dict[int, dict] = {}
    content, finish = "", None
    for chunk in chunks:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                if call.index not in calls:  # a call's first chunk has its id and name
                    assert call.id.startswith("call_") and call.function.name, call
                    calls[call.index] = {"name": call.function.name, "arguments": ""}
                calls[call.index]["arguments"] += call.function.arguments or ""
    return calls, content, finish


@pytest.mark.parametrize("model", ["demo", "demo-chatml"])
def test_streamed_calls_equal_unstreamed(openai_client, model):
    request = dict(
        model=model, messages=USER, tools=TOOLS, tool_choice="required", temperature=1.0, seed=9, max_tokens=120
    )
    whole = openai_client.chat.completions.create(**request).choices[0]
    calls, content, finish = assembled(openai_client.chat.completions.create(**request, stream=True))
    assert finish == whole.finish_reason == "tool_calls" and not content
    assert calls == {
        i: {"name": c.function.name, "arguments": c.function.arguments} for i, c in enumerate(whole.message.tool_calls)
    }


def test_auto_reads_a_call_and_keeps_the_text_before_it(openai_client):
    """`auto` parses what the model writes: here the demo model is made to write text and then
    a call in its family's syntax (Llama 3 JSON) by a structured_outputs choice."""
    written = 'Let me look. {"name": "get_weather", "parameters": {"city": "Paris", "days": 2}}'
    request = dict(
        model="demo", messages=USER, tools=TOOLS, tool_choice="auto", max_tokens=80,
        extra_body={"structured_outputs": {"choice": [written]}},
    )  # fmt: skip
    whole = openai_client.chat.completions.create(**request).choices[0]
    assert whole.finish_reason == "tool_calls" and whole.message.content == "Let me look. "
    [call] = whole.message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris", "days": 2})
    calls, content, _ = assembled(openai_client.chat.completions.create(**request, stream=True))
    assert content == "Let me look. " and calls == {0: {"name": "get_weather", "arguments": call.function.arguments}}


def test_a_call_not_written_is_plain_content(openai_client):
    reply = openai_client.chat.completions.create(
        model="demo", messages=USER, tools=TOOLS, max_tokens=40, temperature=0
    )
    choice = reply.choices[0]
    assert choice.message.tool_calls is None and choice.message.content
    assert choice.finish_reason in ("stop", "length")


def test_tool_choice_none_reads_no_call(openai_client):
    written = '{"name": "add", "parameters": {"a": 1, "b": 2}}'
    reply = openai_client.chat.completions.create(
        model="demo",
        messages=USER,
        tools=TOOLS,
        tool_choice="none",
        max_tokens=80,
        extra_body={"structured_outputs": {"choice": [written]}},
    )
    assert reply.choices[0].message.content == written and reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", ["demo", "demo-chatml"])
def test_a_tool_result_continues_the_chat(openai_client, model):
    """The loop a client runs: a forced call, the function run, its result sent back, an answer."""
    first = openai_client.chat.completions.create(
        model=model, messages=USER, tools=TOOLS, tool_choice="required", temperature=1.0, seed=2, max_tokens=120
    )
    message = first.choices[0].message
    results = [{"role": "tool", "tool_call_id": c.id, "content": '{"forecast": "sunny"}'} for c in message.tool_calls]
    history = [*USER, message.model_dump(exclude_none=True), *results]
    reply = openai_client.chat.completions.create(model=model, messages=history, tools=TOOLS, max_tokens=40)
    assert reply.choices[0].message.content and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > first.usage.prompt_tokens  # the call and its result were read


def test_two_calls_and_their_results_in_the_history(openai_client):
    calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": "add", "arguments": json.dumps({"a": i, "b": 1})}}
        for i in range(2)
    ]
    history = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": calls},
        *({"role": "tool", "tool_call_id": c["id"], "content": str(i + 1)} for i, c in enumerate(calls)),
    ]
    reply = openai_client.chat.completions.create(model="demo-chatml", messages=history, tools=TOOLS, max_tokens=20)
    assert reply.choices[0].message.content


def test_legacy_functions(openai_client):
    reply = openai_client.chat.completions.create(
        model="demo",
        messages=USER,
        functions=[t["function"] for t in TOOLS],
        function_call={"name": "get_weather"},
        temperature=1.0,
        seed=1,
        max_tokens=120,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "function_call" and choice.message.tool_calls is None
    assert choice.message.function_call.name == "get_weather"
    jsonschema.validate(json.loads(choice.message.function_call.arguments), WEATHER)
    # ... and the call and its result in a legacy history
    history = [
        *USER,
        {"role": "assistant", "content": None, "function_call": choice.message.function_call.model_dump()},
        {"role": "function", "name": "get_weather", "content": "sunny"},
    ]
    again = openai_client.chat.completions.create(
        model="demo", messages=history, functions=[t["function"] for t in TOOLS], max_tokens=20
    )
    assert again.choices[0].message.content


class Forecast(BaseModel):
    """The weather forecast of a city."""

    city: str = Field(max_length=16)
    days: int = Field(ge=1, le=7)


def test_the_clients_parse_round_trip_with_a_pydantic_tool(openai_client):
    reply = openai_client.chat.completions.parse(
        model="demo",
        messages=USER,
        tools=[openai.pydantic_function_tool(Forecast)],
        tool_choice={"type": "function", "function": {"name": "Forecast"}},
        temperature=1.0,
        seed=5,
        max_tokens=120,
    )
    [call] = reply.choices[0].message.tool_calls
    assert isinstance(call.function.parsed_arguments, Forecast) and 1 <= call.function.parsed_arguments.days <= 7


REFUSED = {
    "an unknown function named": (
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "tool_choice",
        "nope",
    ),
    "an unknown legacy function named": (
        {"functions": [TOOLS[1]["function"]], "function_call": {"name": "nope"}},
        "function_call",
        "nope",
    ),
    "tools and functions": ({"tools": TOOLS, "functions": [TOOLS[1]["function"]]}, "functions", "combined"),
    "a forced call and a response_format": (
        {"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}},
        "tool_choice",
        "response_format",
    ),
    "a result answering no call": (
        {"messages": [*USER, {"role": "tool", "tool_call_id": "call_x", "content": "4"}], "tools": TOOLS},
        "messages",
        "call_x",
    ),
    "a tool result without its call id": (
        {"messages": [*USER, {"role": "tool", "content": "4"}], "tools": TOOLS},
        "messages.1",
        "tool_call_id",
    ),
    "a tool without a name": ({"tools": [{"type": "function", "function": {}}]}, "tools.0.function.name", "name"),
    "a schema the grammar engine cannot enforce": (
        {
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "strin"}}}],
            "tool_choice": "required",
        },
        "tools",
        "strin",
    ),
}


@pytest.mark.parametrize("fields, param, words", REFUSED.values(), ids=REFUSED.keys())
def test_bad_tool_requests_are_refused_and_the_server_carries_on(openai_client, fields, param, words):
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.chat.completions.create(**{"model": "demo", "messages": USER, "max_tokens": 8, **fields})
    error = refused.value.body
    assert (error["type"], error["param"]) == ("invalid_request_error", param), error
    assert words in error["message"]
    assert openai_client.chat.completions.create(model="demo", messages=USER, max_tokens=4).choices[0].message.content

"""Function tools on the Responses API, through the official client: forced calls as
`function_call` output items whose arguments validate, their argument events streamed as
generated, `function_call_output` items (and `previous_response_id`) continuing the
conversation, and an openai-agents Agent running a `@function_tool` through the server."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import jsonschema
import openai
import pytest

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 16},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
TOOLS = [{"type": "function", "name": "get_weather", "description": "The forecast.", "parameters": WEATHER}]
ASK = "What is the weather in Paris?"


@pytest.mark.parametrize("model", ["demo", "demo-chatml"])
async def test_forced_calls_are_function_call_items_that_validate(async_openai_client, model):
    responses = await asyncio.gather(
        *(
            async_openai_client.responses.create(
                model=model,
                input=ASK,
                tools=TOOLS,
                tool_choice="required",
                parallel_tool_calls=False,  # free to go on calling, a sampled answer can run out of tokens
                temperature=1.0,
                max_output_tokens=120,
            )
            for _ in range(8)
        )
    )
    for response in responses:
        assert response.status == "completed" and len(response.output) == 1, response
        for item in response.output:
            assert item.type == "function_call" and item.name == "get_weather", item
            assert item.call_id.startswith("call_") and item.id.startswith("fc_")
            jsonschema.validate(json.loads(item.arguments), WEATHER)


def test_streamed_arguments_arrive_as_generated(openai_client):
    request = dict(
        model="demo",
        input=ASK,
        tools=TOOLS,
        tool_choice={"type": "function", "name": "get_weather"},
        temperature=0,
        max_output_tokens=120,
    )
    whole = openai_client.responses.create(**request)
    events = list(openai_client.responses.create(**request, stream=True))
    kinds = [e.type for e in events]
    collapsed = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]
    assert collapsed == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    [done] = [e for e in events if e.type == "response.function_call_arguments.done"]
    [call] = whole.output
    assert "".join(deltas) == done.arguments == call.arguments  # deltas as generated: test_tool_chunks.py
    assert events[-1].response.output[0].call_id == events[2].item.call_id  # one id from first to last


def test_a_function_call_output_continues(openai_client):
    first = openai_client.responses.create(
        model="demo", input=ASK, tools=TOOLS, tool_choice="required", temperature=0, max_output_tokens=120
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    result = {"type": "function_call_output", "call_id": call.call_id, "output": '{"forecast": "sunny"}'}
    sent_back = openai_client.responses.create(
        model="demo",
        input=[{"role": "user", "content": ASK}, call.model_dump(exclude_none=True), result],
        tools=TOOLS,
        temperature=0,
        max_output_tokens=30,
    )
    assert sent_back.status in ("completed", "incomplete") and sent_back.output_text
    continued = openai_client.responses.create(
        model="demo",
        previous_response_id=first.id,
        input=[result],
        tools=TOOLS,
        temperature=0,
        max_output_tokens=30,
    )
    assert continued.output_text == sent_back.output_text  # the stored call is the one sent back
    assert continued.usage.input_tokens_details.cached_tokens > 0


async def test_an_agent_runs_a_function_tool(jupyter_server):
    """openai-agents: tool_choice "required" makes the first turn call the tool; the agent runs it,
    sends its result, and the model answers (the agent resets tool_choice after a call)."""
    from agents import Agent, ModelSettings, Runner, function_tool, set_tracing_disabled
    from agents.models.openai_provider import OpenAIProvider
    from agents.run import RunConfig

    calls = []

    @function_tool
    def get_weather(city: Literal["Paris", "Rome", "Tokyo"]) -> str:
        """The weather forecast of a city."""
        calls.append(city)
        return "sunny"

    set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=jupyter_server.openai_base_url, api_key=jupyter_server.token, max_retries=0)
    agent = Agent(
        name="demo",
        model="demo",
        tools=[get_weather],
        model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=200),
    )
    try:
        result = await Runner.run(
            agent, ASK, run_config=RunConfig(model_provider=OpenAIProvider(openai_client=client)), max_turns=3
        )
    finally:
        await client.close()
    assert calls and set(calls) <= {"Paris", "Rome", "Tokyo"}
    assert isinstance(result.final_output, str) and result.final_output


def test_a_forced_call_with_text_format_is_refused(openai_client):
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.responses.create(
            model="demo", input=ASK, tools=TOOLS, tool_choice="required", text={"format": {"type": "json_object"}}
        )
    assert refused.value.body["param"] == "tool_choice"

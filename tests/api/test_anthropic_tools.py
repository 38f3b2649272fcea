"""Tools on Anthropic's Messages API, through the official anthropic client: forced calls
(`any`, a named tool) as `tool_use` blocks whose input validates, streamed as
`input_json_delta`s as generated, and a `tool_result` turn continuing the conversation."""

from __future__ import annotations

import anthropic
import jsonschema
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
TOOLS = [{"name": "get_weather", "description": "The forecast.", "input_schema": WEATHER}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(jupyter_server):
    with anthropic.Anthropic(base_url=jupyter_server.url + "mlx", api_key=jupyter_server.token, max_retries=0) as c:
        yield c


@pytest.mark.parametrize("model", ["demo", "demo-chatml"])
# One call: free to go on calling, a sampled answer can run out of tokens.
@pytest.mark.parametrize(
    "tool_choice", [{"type": "any", "disable_parallel_tool_use": True}, {"type": "tool", "name": "get_weather"}]
)
def test_forced_calls_are_tool_use_blocks_that_validate(client, model, tool_choice):
    for _ in range(4):  # sampled: this API has no seed
        message = client.messages.create(
            model=model,
            max_tokens=120,
            messages=ASK,
            tools=TOOLS,
            tool_choice=tool_choice,
            extra_body={"temperature": 1.0},
        )
        assert message.stop_reason == "tool_use" and len(message.content) == 1, message
        for block in message.content:
            assert block.type == "tool_use" and block.name == "get_weather" and block.id.startswith("toolu_")
            jsonschema.validate(block.input, WEATHER)


def test_streamed_input_equals_the_message(client):
    request = dict(
        model="demo",
        max_tokens=120,
        messages=ASK,
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
        extra_body={"temperature": 0},
    )
    whole = client.messages.create(**request)
    with client.messages.stream(**request) as stream:
        events = list(stream)
        streamed = stream.get_final_message()
    partial = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert partial  # (how many depends on how fast the client reads: see test_tool_chunks.py)
    assert [(b.name, b.input) for b in streamed.content] == [(b.name, b.input) for b in whole.content]
    assert streamed.stop_reason == "tool_use"


def test_a_tool_result_continues(client):
    first = client.messages.create(
        model="demo",
        max_tokens=120,
        messages=ASK,
        tools=TOOLS,
        tool_choice={"type": "any"},
        extra_body={"temperature": 0},
    )
    results = [{"type": "tool_result", "tool_use_id": b.id, "content": "sunny"} for b in first.content]
    history = [*ASK, {"role": "assistant", "content": first.content}, {"role": "user", "content": results}]
    reply = client.messages.create(model="demo", max_tokens=30, messages=history, tools=TOOLS)
    assert reply.content[0].type == "text" and reply.content[0].text
    counted = client.messages.count_tokens(model="demo", messages=history, tools=TOOLS)
    assert counted.input_tokens == reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0)

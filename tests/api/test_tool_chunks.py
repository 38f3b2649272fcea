"""The three APIs' builders send a call's arguments as they are generated: fed the engine's
events a token at a time, each sends the arguments in pieces, which add up to the answer's.
(Through the server, how many pieces a client sees depends on how fast it reads: the server
merges the tokens a slow client has not fetched yet.)"""

from __future__ import annotations

import json

import pytest

from mlx_workbench.api.anthropic import MessagesBuilder, MessagesRequest
from mlx_workbench.api.formats import ChatBuilder
from mlx_workbench.api.request_schemas import ChatCompletionRequest
from mlx_workbench.api.response_requests import CreateResponse
from mlx_workbench.api.responses import ResponsesBuilder
from mlx_workbench.engine.requests import Delta, Started, Usage
from mlx_workbench.engine.tool_calls import SYNTAXES

PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}}
ARGUMENTS = {"city": "Paris"}


def tokens(syntax: str) -> list[str]:
    """A call in `syntax`, cut into small pieces as tokens would be."""
    text = SYNTAXES[syntax].write([{"name": "get_weather", "arguments": ARGUMENTS}])
    return [text[i : i + 3] for i in range(0, len(text), 3)]


def run(builder, syntax: str) -> list:
    builder.begin(Started(prompt_tokens=5, tool_syntax=syntax))
    events = list(builder.opening_chunks())
    for piece in tokens(syntax):
        events += builder.delta_chunks(Delta(index=0, text=piece, token_ids=[1]))
    builder.finish(0, "stop")
    events += [e for e in [builder.finish_chunk(0, "stop")] if e is not None]
    return events + builder.closing_chunks(Usage(prompt_tokens=5, completion_tokens=9), include_usage=False)


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_chat_sends_arguments_in_pieces(syntax):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": PARAMETERS}}]
    body = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "?"}], "tools": tools, "tool_choice": "required"}
    )
    chunks = run(ChatBuilder("m", 1, False, body.tool_plan()), syntax)
    calls = [call for c in chunks for choice in c.choices for call in choice.delta.tool_calls or []]
    pieces = [call.function.arguments for call in calls if call.function.arguments]
    assert len(pieces) > 1 and json.loads("".join(pieces)) == ARGUMENTS
    assert [call.function.name for call in calls if call.function.name] == ["get_weather"]  # once
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_responses_send_arguments_in_pieces(syntax):
    tools = [{"type": "function", "name": "get_weather", "parameters": PARAMETERS}]
    body = CreateResponse.model_validate({"model": "m", "input": "?", "tools": tools, "tool_choice": "required"})
    events = run(ResponsesBuilder(body, lambda response: None), syntax)
    pieces = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(pieces) > 1 and json.loads("".join(pieces)) == ARGUMENTS
    assert events[-1].response.output[0].arguments == "".join(pieces)


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_messages_send_input_in_pieces(syntax):
    tools = [{"name": "get_weather", "input_schema": PARAMETERS}]
    body = MessagesRequest.model_validate(
        {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "?"}], "tools": tools}
    )
    events = run(MessagesBuilder("m", body.tool_plan()), syntax)
    pieces = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert len(pieces) > 1 and json.loads("".join(pieces)) == ARGUMENTS
    assert [e.type for e in events][:2] == ["message_start", "content_block_start"]
    assert events[-2].delta.stop_reason == "tool_use"

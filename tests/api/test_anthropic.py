"""POST mlx/v1/messages and mlx/v1/messages/count_tokens with the official anthropic
client (`messages.create`, `messages.stream`, `count_tokens`), and raw HTTP for the
event order and Anthropic's error shape. The SDK appends /v1/messages to its base_url.

This anthropic release has no sampling arguments: temperature goes in extra_body."""

from __future__ import annotations

import json

import anthropic
import pytest

GREEDY = {"extra_body": {"temperature": 0}}
EVENTS = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]


@pytest.fixture(scope="module")
def client(jupyter_server):
    """Authenticated by x-api-key, as the SDK sends its key."""
    with anthropic.Anthropic(base_url=jupyter_server.url + "mlx", api_key=jupyter_server.token, max_retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def row(answers):
    return answers()[0]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_create(client, row):
    message = client.messages.create(model="demo", max_tokens=64, messages=user(row["user"]), **GREEDY)
    assert message.id.startswith("msg_") and (message.type, message.role) == ("message", "assistant")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == row["answer"]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.usage.output_tokens > 0 and message.usage.input_tokens > 0


def test_system_and_text_blocks(client, answers):
    upper = next(r for r in answers(system=True) if r["system"] == "Answer in upper case.")
    for system in (upper["system"], [{"type": "text", "text": upper["system"]}]):
        message = client.messages.create(
            model="demo",
            max_tokens=64,
            system=system,
            **GREEDY,
            messages=[{"role": "user", "content": [{"type": "text", "text": upper["user"]}]}],
        )
        assert message.content[0].text == upper["answer"]


def test_max_tokens_and_stop_sequences(client, row):
    short = client.messages.create(model="demo", max_tokens=2, messages=user(row["user"]), **GREEDY)
    assert (short.stop_reason, short.usage.output_tokens) == ("max_tokens", 2)
    stop = row["answer"][-2]  # a character of the answer, near its end
    stopped = client.messages.create(
        model="demo", max_tokens=64, messages=user(row["user"]), stop_sequences=["zebra", stop], **GREEDY
    )
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", stop)
    assert stopped.content[0].text == row["answer"][: row["answer"].index(stop)]


def test_stream(client, row):
    with client.messages.stream(model="demo", max_tokens=64, messages=user(row["user"]), **GREEDY) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text == row["answer"]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_stream_events_in_anthropic_order(http, row):
    body = {"model": "demo", "max_tokens": 64, "messages": user(row["user"]), "stream": True, "temperature": 0}
    with http.stream("POST", "mlx/v1/messages", json=body) as r:
        lines = [line for line in r.iter_lines() if line]
    names = [line[len("event: ") :] for line in lines if line.startswith("event: ")]
    data = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]
    assert [d["type"] for d in data] == names
    assert [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]] == EVENTS
    assert data[-2]["delta"]["stop_reason"] == "end_turn" and data[-2]["usage"]["output_tokens"] > 0


def test_count_tokens_is_the_prompt_the_engine_reads(client, row):
    messages = user(row["user"])
    counted = client.messages.count_tokens(model="demo", messages=messages)
    message = client.messages.create(model="demo", max_tokens=4, messages=messages, **GREEDY)
    usage = message.usage
    assert counted.input_tokens == usage.input_tokens + usage.cache_read_input_tokens > 0
    with_system = client.messages.count_tokens(model="demo", messages=messages, system="Answer in upper case.")
    assert with_system.input_tokens > counted.input_tokens


def test_bearer_works_too(jupyter_server, row):
    with anthropic.Anthropic(
        base_url=jupyter_server.url + "mlx", auth_token=jupyter_server.token, max_retries=0
    ) as bearer:
        message = bearer.messages.create(model="demo", max_tokens=64, messages=user(row["user"]), **GREEDY)
    assert message.content[0].text == row["answer"]


def test_errors_in_anthropic_shape(jupyter_server, client):
    with anthropic.Anthropic(base_url=jupyter_server.url + "mlx", api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            wrong.messages.create(model="demo", max_tokens=8, messages=user("Hi"))
    assert refused.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": refused.value.body["error"]["message"]},
    }
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=8, messages=user("Hi"))
    assert missing.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model" in missing.value.body["error"]["message"]


REFUSED = {
    "a tool without its input_schema": ({"tools": [{"name": "f"}]}, "input_schema"),
    "a named tool not among the tools": (
        {"tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "g"}},
        "'g'",
    ),
    "a tool_result answering no tool_use": (
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "4"}]}]},
        "no tool_use made",
    ),
    "image block": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}],
                }
            ]
        },
        "text only",
    ),
    "prefill": ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]}, "prefill"),
    "temperature above 1": ({"temperature": 1.5}, "temperature"),
    "no max_tokens": ({"max_tokens": None}, "max_tokens"),
}


@pytest.mark.parametrize("fields, words", REFUSED.values(), ids=REFUSED.keys())
def test_what_is_not_supported_is_refused_clearly(http, fields, words):
    body = {"model": "demo", "max_tokens": 8, "messages": user("Hi"), **fields}
    response = http.post("mlx/v1/messages", json={k: v for k, v in body.items() if v is not None})
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "error"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and words in error["message"], error

"""POST mlx/v1/responses (and GET, DELETE of a stored response) with the official
client's `responses.create` and `responses.stream`, raw HTTP for the event order, and an
openai-agents Agent on its default model (the Responses API)."""

from __future__ import annotations

import json
from typing import Literal

import openai
import pytest
from pydantic import BaseModel, Field
from server import start_jupyter

EVENTS = [  # a text answer's events, in OpenAI's order (one or more deltas)
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture(scope="module")
def row(answers):
    return answers()[0]


@pytest.fixture(scope="module")
def upper(answers):
    """A row whose system prompt changes the answer."""
    return next(r for r in answers(system=True) if r["system"] == "Answer in upper case.")


def test_create(openai_client, row):
    response = openai_client.responses.create(model="demo", input=row["user"], temperature=0)
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.output_text == row["answer"]
    message = response.output[0]
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    usage = response.usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens and usage.output_tokens > 0


def test_instructions_and_items(openai_client, upper):
    """The system prompt as instructions, or as a developer item; the input as items with parts."""
    by_instructions = openai_client.responses.create(
        model="demo", instructions=upper["system"], input=upper["user"], temperature=0
    )
    by_items = openai_client.responses.create(
        model="demo",
        temperature=0,
        input=[
            {"role": "developer", "content": upper["system"]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": upper["user"]}]},
        ],
    )
    assert by_instructions.output_text == by_items.output_text == upper["answer"]
    assert by_instructions.instructions == upper["system"]


def test_stream(openai_client, row):
    with openai_client.responses.stream(model="demo", input=row["user"], temperature=0) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert final.output_text == row["answer"] and final.status == "completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == row["answer"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.usage.output_tokens > 0


def test_stream_events_in_openai_order(http, row):
    body = {"model": "demo", "input": row["user"], "temperature": 0, "stream": True}
    with http.stream("POST", "mlx/v1/responses", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    names = [line[len("event: ") :] for line in lines if line.startswith("event: ")]
    data = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]
    assert [d["type"] for d in data] == names  # each event named by its type; no [DONE]
    collapsed = [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]
    assert collapsed == EVENTS
    assert data[-1]["response"]["output"][0]["content"][0]["text"] == row["answer"]


def test_null_fields_take_their_defaults(http, row):
    """OpenAI's spec lets clients send null for these (the default then)."""
    nulls = dict.fromkeys(
        [
            "temperature",
            "top_p",
            "stream",
            "store",
            "parallel_tool_calls",
            "background",
            "instructions",
            "max_output_tokens",
            "metadata",
            "tools",
            "tool_choice",
            "text",
        ]
    )
    response = http.post("mlx/v1/responses", json={"model": "demo", "input": row["user"], **nulls}).json()
    assert (response["status"], response["store"], response["temperature"]) == ("completed", True, 1.0)


def test_max_output_tokens_makes_it_incomplete(openai_client):
    story = openai_client.responses.create(model="demo", input="Tell me a story.", max_output_tokens=16, temperature=0)
    assert story.status == "incomplete" and story.incomplete_details.reason == "max_output_tokens"
    assert story.usage.output_tokens == 16 and story.output[0].status == "incomplete"


def test_previous_response_id_continues_and_hits_the_prompt_cache(openai_client, row, answers):
    """The second turn is the chat completion of the whole conversation, and its prompt
    starts with the first turn's tokens, which the prompt cache holds."""
    other = answers()[1]
    first = openai_client.responses.create(model="demo", input=row["user"], temperature=0)
    second = openai_client.responses.create(
        model="demo", input=other["user"], previous_response_id=first.id, temperature=0
    )
    chat = openai_client.chat.completions.create(
        model="demo",
        temperature=0,
        messages=[
            {"role": "user", "content": row["user"]},
            {"role": "assistant", "content": row["answer"]},
            {"role": "user", "content": other["user"]},
        ],
    )
    assert second.output_text == chat.choices[0].message.content
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.total_tokens - 1


def test_retrieve_and_delete(openai_client, row):
    created = openai_client.responses.create(model="demo", input=row["user"], temperature=0)
    assert openai_client.responses.retrieve(created.id).output_text == row["answer"]
    deleted = openai_client.responses.delete(created.id)
    assert deleted is None  # the SDK returns nothing; the body is checked below over HTTP
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError) as gone:
        openai_client.responses.create(model="demo", input="Hi", previous_response_id=created.id)
    assert gone.value.body["code"] == "previous_response_not_found"
    assert gone.value.body["param"] == "previous_response_id"


def test_delete_answers_the_deleted_object(http, row):
    created = http.post("mlx/v1/responses", json={"model": "demo", "input": row["user"], "max_output_tokens": 16})
    response_id = created.json()["id"]
    assert http.delete(f"mlx/v1/responses/{response_id}").json() == {
        "id": response_id,
        "object": "response",
        "deleted": True,
    }
    assert http.delete(f"mlx/v1/responses/{response_id}").status_code == 404


def test_store_false_is_not_kept(openai_client, row):
    response = openai_client.responses.create(model="demo", input=row["user"], store=False, max_output_tokens=16)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(response.id)


def test_the_store_is_bounded():
    """The least recently used response leaves a full store (MLXWorkbench.response_store_size)."""
    server = start_jupyter("--MLXWorkbench.response_store_size=2", "--MLXWorkbench.response_store_bytes=1MB")
    try:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key=server.token, max_retries=0)
        ids = [
            client.responses.create(model="demo", input=f"What is {n} + 1?", max_output_tokens=16).id for n in range(3)
        ]
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(ids[0])
        assert [client.responses.retrieve(i).id for i in ids[1:]] == ids[1:]
    finally:
        server.stop()


REFUSED = {
    "a tool other than a function": ({"tools": [{"type": "web_search"}]}, "tools.0.type", "function"),
    "a named function not among the tools": (
        {"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}},
        "tool_choice",
        "'g'",
    ),
    "a schema that cannot be enforced": (
        {"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "strin"}}}},
        "text.format",
        "strin",
    ),
    "json_schema without its schema": (
        {"text": {"format": {"type": "json_schema", "name": "x"}}},
        "text.format",
        "needs a name and a schema",
    ),
    "image part": (
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
        "input.0.content.0.type",
        "text only",
    ),
    "max_output_tokens below 16": ({"max_output_tokens": 8}, "max_output_tokens", "16"),
    "background": ({"background": True}, "background", "not supported"),
}


@pytest.mark.parametrize("fields, param, words", REFUSED.values(), ids=REFUSED.keys())
def test_what_is_not_supported_yet_is_refused_clearly(http, fields, param, words):
    response = http.post("mlx/v1/responses", json={"model": "demo", "input": "Hi", **fields})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"], error


def test_unknown_model_is_404(openai_client):
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.responses.create(model="no-such-model", input="Hi")
    assert missing.value.body["code"] == "model_not_found"


async def test_an_agent_on_its_default_model(jupyter_server, row):
    """openai-agents' Agent speaks the Responses API unless told otherwise."""
    from agents import Agent, ModelSettings, Runner, set_tracing_disabled
    from agents.models.openai_provider import OpenAIProvider
    from agents.run import RunConfig

    set_tracing_disabled(True)  # no traces to OpenAI's servers
    client = openai.AsyncOpenAI(base_url=jupyter_server.openai_base_url, api_key=jupyter_server.token, max_retries=0)
    provider = OpenAIProvider(openai_client=client)
    agent = Agent(name="demo", model="demo", model_settings=ModelSettings(temperature=0))
    try:
        result = await Runner.run(agent, row["user"], run_config=RunConfig(model_provider=provider))
        # A second turn sends the first's items back as input (the assistant's as output_text).
        again = await Runner.run(
            agent,
            result.to_input_list() + [{"role": "user", "content": row["user"]}],
            run_config=RunConfig(model_provider=provider),
        )
        streamed = Runner.run_streamed(agent, row["user"], run_config=RunConfig(model_provider=provider))
        deltas = [
            e.data.delta
            async for e in streamed.stream_events()
            if e.type == "raw_response_event" and e.data.type == "response.output_text.delta"
        ]
        chat = await client.chat.completions.create(
            model="demo",
            temperature=0,
            messages=[
                {"role": "user", "content": row["user"]},
                {"role": "assistant", "content": row["answer"]},
                {"role": "user", "content": row["user"]},
            ],
        )
    finally:
        await client.close()
    assert result.final_output == row["answer"]
    assert again.final_output == chat.choices[0].message.content
    assert streamed.final_output == "".join(deltas) == row["answer"]


class Pet(BaseModel):
    name: str = Field(max_length=12)
    legs: int = Field(ge=0, le=8)
    sound: Literal["woof", "meow", "tweet"]


def test_text_format_is_enforced(openai_client):
    """`responses.parse` sends the pydantic model as text.format; the answer parses back into it."""
    parsed = openai_client.responses.parse(
        model="demo", input="Tell me a story.", text_format=Pet, temperature=1.0, max_output_tokens=200
    )
    assert isinstance(parsed.output_parsed, Pet)
    assert parsed.text.format.type == "json_schema" and parsed.text.format.name == "Pet"
    stream = openai_client.responses.create(
        model="demo",
        input="Hello!",
        stream=True,
        max_output_tokens=200,
        temperature=0,
        text={"format": {"type": "json_object"}},
    )
    done = [e.text for e in stream if e.type == "response.output_text.done"]
    assert isinstance(json.loads(done[0]), dict)


async def test_an_agent_with_an_output_type(jupyter_server):
    """An openai-agents Agent with `output_type` gets its typed answer from a model never taught JSON."""
    from agents import Agent, ModelSettings, Runner, set_tracing_disabled
    from agents.models.openai_provider import OpenAIProvider
    from agents.run import RunConfig

    set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=jupyter_server.openai_base_url, api_key=jupyter_server.token, max_retries=0)
    agent = Agent(
        name="demo", model="demo", output_type=Pet, model_settings=ModelSettings(temperature=0, max_tokens=200)
    )
    try:
        result = await Runner.run(
            agent, "Tell me a story.", run_config=RunConfig(model_provider=OpenAIProvider(openai_client=client))
        )
    finally:
        await client.close()
    assert isinstance(result.final_output, Pet)

"""response_format and structured_outputs through the official client: the text always
parses and validates, even from a 300k-parameter model sampling at temperature 1, and
constrained rows share the batch with free ones."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Literal

import jsonschema
import openai
import pytest
from demo_requests import answer
from pydantic import BaseModel, Field

USER = [{"role": "user", "content": "Tell me a story."}]  # the demo's longest answer: free text pulls hard

SCHEMAS = {
    "nested objects and arrays": {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 16},
            "author": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 12},
                    "born": {"type": "integer", "minimum": 1800, "maximum": 2024},
                },
                "required": ["name", "born"],
                "additionalProperties": False,
            },
            "chapters": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 1, "maxItems": 3},
        },
        "required": ["title", "author", "chapters"],
        "additionalProperties": False,
    },
    "enums, bounds and optional fields": {
        "type": "object",
        "properties": {
            "mood": {"enum": ["happy", "sad", "calm"]},
            "score": {"type": "integer", "minimum": -5, "maximum": 5},
            "ratio": {"type": "number", "minimum": 0, "maximum": 1},
            "done": {"type": "boolean"},
            "note": {"type": ["string", "null"], "maxLength": 10},
        },
        "required": ["mood", "score"],
        "additionalProperties": False,
    },
}


def json_schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
async def test_twenty_seeded_samples_at_temperature_one_validate(async_openai_client, schema):
    replies = await asyncio.gather(
        *(
            async_openai_client.chat.completions.create(
                model="demo",
                messages=USER,
                temperature=1.0,
                seed=seed,
                max_tokens=200,
                response_format=json_schema_format(schema),
            )
            for seed in range(20)
        )
    )
    for reply in replies:
        choice = reply.choices[0]
        assert choice.finish_reason == "stop", choice.message.content
        jsonschema.validate(json.loads(choice.message.content), schema)
    assert len({r.choices[0].message.content for r in replies}) > 1  # sampled, not one forced text


def test_json_object_parses(openai_client):
    reply = openai_client.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "What is 3 + 4?"}],
        temperature=1.0,
        seed=3,
        max_tokens=200,
        n=4,
        response_format={"type": "json_object"},
    )
    for choice in reply.choices:
        assert isinstance(json.loads(choice.message.content), dict) or choice.finish_reason == "length"
    assert any(c.finish_reason == "stop" for c in reply.choices)


class Book(BaseModel):
    title: str = Field(max_length=16)
    pages: int = Field(ge=1, le=999)
    genre: Literal["fable", "poem", "essay"]
    subtitle: str | None = Field(max_length=8)


def test_the_clients_parse_round_trip(openai_client):
    """openai's `.parse()` sends the pydantic model as a strict schema and parses the answer back."""
    reply = openai_client.chat.completions.parse(
        model="demo", messages=USER, temperature=1.0, seed=7, max_tokens=200, response_format=Book
    )
    book = reply.choices[0].message.parsed
    assert isinstance(book, Book) and 1 <= book.pages <= 999 and len(book.title) <= 16


def test_streamed_equals_unstreamed(openai_client):
    request = dict(
        model="demo",
        messages=USER,
        temperature=1.0,
        seed=11,
        max_tokens=200,
        response_format=json_schema_format(SCHEMAS["nested objects and arrays"]),
    )
    whole = openai_client.chat.completions.create(**request).choices[0].message.content
    chunks = openai_client.chat.completions.create(**request, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole


@pytest.mark.parametrize(
    "outputs, check",
    [
        ({"regex": r"[0-9]{3}-[a-z]{2}"}, lambda text: re.fullmatch(r"[0-9]{3}-[a-z]{2}", text)),
        ({"choice": ["Paris", "Rome", "Tokyo"]}, lambda text: text in {"Paris", "Rome", "Tokyo"}),
        (
            {"grammar": 'start: "Arr! " NUMBER " + " NUMBER\nNUMBER: /[0-9]/'},
            lambda text: re.fullmatch(r"Arr! [0-9] \+ [0-9]", text),
        ),
        (
            {
                "json": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0, "maximum": 99},
                    "minItems": 2,
                    "maxItems": 2,
                }
            },
            lambda text: len(json.loads(text)) == 2,
        ),
    ],
)
def test_structured_outputs_extension(openai_client, outputs, check):
    reply = openai_client.chat.completions.create(
        model="demo",
        messages=USER,
        temperature=1.0,
        seed=5,
        max_tokens=50,
        n=3,
        extra_body={"structured_outputs": outputs},
    )
    for choice in reply.choices:
        assert choice.finish_reason == "stop" and check(choice.message.content), choice.message.content


def test_text_completions_take_the_same_formats(openai_client):
    reply = openai_client.completions.create(
        model="demo",
        prompt="Once upon a time",
        temperature=1.0,
        seed=2,
        max_tokens=30,
        extra_body={"structured_outputs": {"choice": ["yes", "no"]}},
    )
    assert reply.choices[0].text in {"yes", "no"} and reply.choices[0].finish_reason == "stop"


async def test_constrained_and_free_rows_share_the_batch(async_openai_client):
    """Free answers stay exact while constrained ones decode beside them."""
    free = [{"role": "user", "content": q} for q in ("What is 3 + 4?", "Count to 20.", "Tell me a story.")]
    constrained = async_openai_client.chat.completions.create(
        model="demo",
        messages=USER,
        temperature=1.0,
        seed=1,
        max_tokens=200,
        n=8,
        response_format=json_schema_format(SCHEMAS["enums, bounds and optional fields"]),
    )
    plain = [
        async_openai_client.chat.completions.create(model="demo", messages=[m], temperature=0, max_tokens=200)
        for m in free
    ]
    constrained, *plain = await asyncio.gather(constrained, *plain)
    for choice in constrained.choices:
        jsonschema.validate(json.loads(choice.message.content), SCHEMAS["enums, bounds and optional fields"])
    assert [r.choices[0].message.content for r in plain] == [answer("demo", m["content"]) for m in free]


@pytest.mark.parametrize(
    "body, words",
    [
        ({"response_format": json_schema_format({"type": "strin"})}, "strin"),
        ({"response_format": json_schema_format({"type": "string", "format": "made-up"})}, "made-up"),
        ({"extra_body": {"structured_outputs": {"grammar": "start: ("}}}, "structured_outputs"),
        ({"extra_body": {"structured_outputs": {"regex": "("}}}, "structured_outputs"),
        ({"response_format": {"type": "json_schema"}}, "json_schema"),
        ({"extra_body": {"structured_outputs": {"regex": "a", "choice": ["a"]}}}, "exactly one"),
    ],
)
def test_what_cannot_be_enforced_is_a_400_naming_it(openai_client, body, words):
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.chat.completions.create(model="demo", messages=USER, max_tokens=5, **body)
    assert words in refused.value.body["message"]
    assert refused.value.body["param"] in ("response_format", "structured_outputs")
    # The server carries on.
    reply = openai_client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hello!"}], temperature=0
    )
    assert reply.choices[0].message.content == answer("demo", "Hello!")


def test_logprobs_are_those_of_the_constrained_choice(openai_client):
    """Only the allowed tokens have probability: the chosen ones' logprobs add up to the text."""
    reply = openai_client.chat.completions.create(
        model="demo",
        messages=USER,
        temperature=0,
        max_tokens=20,
        logprobs=True,
        top_logprobs=3,
        extra_body={"structured_outputs": {"choice": ["Paris", "Rome"]}},
    )
    choice = reply.choices[0]
    assert choice.message.content in {"Paris", "Rome"}
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content
    assert all(-50 < t.logprob <= 0 for t in tokens)
    # Whatever the grammar forbids has no probability left (-9999 stands for -inf).
    so_far = ""
    for token in tokens:
        for alt in token.top_logprobs:
            assert alt.logprob <= -9999 or any(w.startswith(so_far + alt.token) for w in ("Paris", "Rome"))
        so_far += token.token

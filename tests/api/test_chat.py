"""POST mlx/v1/chat/completions with the official client, on the demo models."""

from __future__ import annotations

import math
import time

import pytest
from demo_requests import messages, model_id


def test_greedy_answers(openai_client, answers):
    for row in answers()[:3] + answers("demo-chatml")[:2]:
        reply = openai_client.chat.completions.create(model=row["model"], messages=messages(row), temperature=0)
        choice = reply.choices[0]
        assert choice.message.content == row["answer"], row
        assert choice.message.role == "assistant"
        assert choice.finish_reason == "stop"
        assert reply.object == "chat.completion"
        assert reply.model == row["model"]
        assert reply.id.startswith("chatcmpl-")
        usage = reply.usage
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stream_matches_answer_and_reports_usage(openai_client, answers):
    row = answers()[0]
    chunks = list(
        openai_client.chat.completions.create(
            model="demo", messages=messages(row), temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == row["answer"]
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishing == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_usage_carries_the_servers_timings(openai_client, answers):
    """usage.timings: the decode rate counts the steps after the first token (the end-of-turn
    token is one of them), the time to first token is part of what the client waited."""
    row = max(answers(), key=lambda r: len(r["answer"]))  # the story
    started = time.perf_counter()
    reply = openai_client.chat.completions.create(model="demo", messages=messages(row), temperature=0)
    waited = time.perf_counter() - started
    timings = reply.usage.timings
    assert 0 < timings["time_to_first_token_s"] < waited and 0 < timings["generation_s"] < waited
    assert timings["tokens_per_second"] * timings["generation_s"] == pytest.approx(reply.usage.completion_tokens)

    stream = openai_client.chat.completions.create(
        model="demo",
        messages=messages(row),
        temperature=0,
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = list(stream)[-1].usage
    assert usage.timings["tokens_per_second"] * usage.timings["generation_s"] == pytest.approx(4)  # 5 tokens, 4 steps

    one = openai_client.chat.completions.create(model="demo", messages=messages(row), temperature=0, max_tokens=1)
    assert one.usage.timings["tokens_per_second"] is None and one.usage.timings["generation_s"] == 0


def test_adapters_by_model_id_and_by_field(openai_client, answers):
    for adapter in ("upper", "pirate"):
        row = answers(adapter=adapter)[0]
        by_id = openai_client.chat.completions.create(model=model_id(row), messages=messages(row), temperature=0)
        assert by_id.choices[0].message.content == row["answer"]
        assert by_id.model == f"demo:{adapter}"
        by_field = openai_client.chat.completions.create(
            model="demo", messages=messages(row), temperature=0, extra_body={"adapter": adapter}
        )
        assert by_field.choices[0].message.content == row["answer"]


def test_max_tokens_gives_length(openai_client, answers):
    row = max(answers(), key=lambda r: len(r["answer"]))
    reply = openai_client.chat.completions.create(model="demo", messages=messages(row), temperature=0, max_tokens=2)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 2
    assert row["answer"].startswith(reply.choices[0].message.content)


def test_stop_string_cuts_the_answer(openai_client, answers):
    row = next(r for r in answers() if " " in r["answer"].strip())
    stop = row["answer"].split(" ")[1]
    reply = openai_client.chat.completions.create(model="demo", messages=messages(row), temperature=0, stop=[stop])
    content = reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert content == row["answer"][: row["answer"].index(stop)]


def test_same_seed_same_sample(openai_client, answers):
    row = answers()[0]

    def sample(seed):
        reply = openai_client.chat.completions.create(
            model="demo", messages=messages(row), temperature=1.5, seed=seed, max_tokens=12
        )
        return reply.choices[0].message.content

    assert sample(7) == sample(7)


def test_n_choices(openai_client, answers):
    row = answers()[0]
    reply = openai_client.chat.completions.create(model="demo", messages=messages(row), temperature=0, n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert all(c.message.content == row["answer"] for c in reply.choices)

    chunks = list(
        openai_client.chat.completions.create(model="demo", messages=messages(row), temperature=0, n=2, stream=True)
    )
    for index in (0, 1):
        mine = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == index]
        assert mine[0].delta.role == "assistant"
        assert "".join(c.delta.content or "" for c in mine) == row["answer"]
        assert mine[-1].finish_reason == "stop"


def test_logprobs(openai_client, answers):
    row = answers()[0]
    reply = openai_client.chat.completions.create(
        model="demo", messages=messages(row), temperature=0, logprobs=True, top_logprobs=3
    )
    tokens = reply.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == row["answer"]
    assert len(tokens) == reply.usage.completion_tokens
    for t in tokens:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        assert bytes(t.bytes).decode() == t.token
        # Greedy: the chosen token is the most likely one.
        assert math.isclose(t.logprob, max(k.logprob for k in t.top_logprobs), rel_tol=1e-4, abs_tol=1e-4)

    plain = openai_client.chat.completions.create(model="demo", messages=messages(row), temperature=0)
    assert plain.choices[0].logprobs is None


def test_list_content_parts(openai_client, answers):
    row = answers()[0]
    parts = [{"role": "user", "content": [{"type": "text", "text": row["user"]}]}]
    reply = openai_client.chat.completions.create(model="demo", messages=parts, temperature=0)
    assert reply.choices[0].message.content == row["answer"]
    # Several parts are joined with a newline (as vLLM does), by the engine as for any client.
    two = [{"role": "user", "content": [{"type": "text", "text": "Repeat:"}, {"type": "text", "text": "apple"}]}]
    joined = [{"role": "user", "content": "Repeat:\napple"}]
    replies = [
        openai_client.chat.completions.create(model="demo", messages=m, temperature=0, max_tokens=4)
        for m in (two, joined)
    ]
    assert len({(r.usage.prompt_tokens, r.choices[0].message.content) for r in replies}) == 1, replies

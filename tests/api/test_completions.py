"""POST mlx/v1/completions (text completion) with the official client.

The prompt is the chat prompt written out by hand in the Llama-3 format, so
the demo model's greedy continuation is its known chat answer."""

from __future__ import annotations

import time

import pytest
from demo_requests import endless


def llama3_prompt(user: str) -> str:
    return (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
        f"{user}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


@pytest.fixture(scope="module")
def row(answers):
    return answers()[0]


def test_text_completion(openai_client, row):
    reply = openai_client.completions.create(model="demo", prompt=llama3_prompt(row["user"]), temperature=0)
    assert reply.object == "text_completion"
    assert reply.choices[0].text == row["answer"]
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_echo(openai_client, row):
    prompt = llama3_prompt(row["user"])
    reply = openai_client.completions.create(model="demo", prompt=prompt, temperature=0, echo=True)
    assert reply.choices[0].text == prompt + row["answer"]
    only = openai_client.completions.create(model="demo", prompt=prompt, echo=True, max_tokens=0).choices[0]
    assert (only.text, only.logprobs, only.finish_reason) == (prompt, None, "length")


def test_stream_with_echo_and_usage(openai_client, row):
    prompt = llama3_prompt(row["user"])
    chunks = list(
        openai_client.completions.create(
            model="demo", prompt=prompt, temperature=0, echo=True, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == prompt + row["answer"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens > 0


def test_logprobs(openai_client, row):
    reply = openai_client.completions.create(model="demo", prompt=llama3_prompt(row["user"]), temperature=0, logprobs=2)
    logprobs = reply.choices[0].logprobs
    assert "".join(logprobs.tokens) == row["answer"]
    assert len(logprobs.token_logprobs) == len(logprobs.tokens) == len(logprobs.text_offset)
    for token, top in zip(logprobs.tokens, logprobs.top_logprobs, strict=True):
        assert token in top and len(top) <= 2  # two alternatives, fewer if they decode alike
    offsets = [0]
    for token in logprobs.tokens[:-1]:
        offsets.append(offsets[-1] + len(token))
    assert logprobs.text_offset == offsets


def test_token_id_prompt_and_one_element_list(openai_client, row):
    text = openai_client.completions.create(model="demo", prompt=[llama3_prompt(row["user"])], temperature=0)
    assert text.choices[0].text == row["answer"]
    # Byte-level tokens of plain ASCII text: any prompt of valid ids is served.
    ids = openai_client.completions.create(model="demo", prompt=[40, 41, 42], max_tokens=3, temperature=0)
    assert ids.usage.prompt_tokens == 3
    assert ids.usage.completion_tokens <= 3


def test_a_batch_of_prompts(openai_client, answers):
    """A list of prompts: each gets its n choices in turn (choice i of prompt k has index
    k * n + i), answered as if alone; usage adds them up."""
    rows = answers()[:3]
    prompts = [llama3_prompt(r["user"]) for r in rows]
    alone = [openai_client.completions.create(model="demo", prompt=p, temperature=0).usage for p in prompts]
    reply = openai_client.completions.create(model="demo", prompt=prompts, temperature=0, n=2)
    assert [c.index for c in reply.choices] == list(range(6))
    assert [c.text for c in reply.choices] == [r["answer"] for r in rows for _ in range(2)]
    assert {c.finish_reason for c in reply.choices} == {"stop"}
    assert reply.usage.prompt_tokens == sum(u.prompt_tokens for u in alone)
    assert reply.usage.completion_tokens == 2 * sum(u.completion_tokens for u in alone)

    chunks = list(
        openai_client.completions.create(
            model="demo", prompt=prompts, temperature=0, echo=True, stream=True, stream_options={"include_usage": True}
        )
    )
    texts = ["", "", ""]
    for chunk in chunks[:-1]:
        texts[chunk.choices[0].index] += chunk.choices[0].text
    assert texts == [p + r["answer"] for p, r in zip(prompts, rows)]
    assert chunks[-1].usage.completion_tokens == sum(u.completion_tokens for u in alone)


def test_a_batch_with_a_failing_prompt_fails_whole(openai_client, http):
    """One prompt the model cannot take (ids outside its vocabulary) fails the request:
    a 400 before anything streams, and the other prompts' generations are cancelled."""
    before = http.get("mlx/api/status").json()["generated_tokens"]
    response = http.post(
        "mlx/v1/completions",
        json={
            "model": "demo",
            "prompt": [[1, 2, 3], [1, 99_999_999]],
            "max_tokens": 2000,
            "logit_bias": endless(),
            "stream": True,
        },
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_for_model"
    deadline = time.monotonic() + 5  # the cancel reaches the device thread within a step or two
    while (status := http.get("mlx/api/status").json())["active_requests"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert status["active_requests"] == status["queued_requests"] == 0
    assert status["generated_tokens"] - before < 2000  # the valid prompt did not run to its max_tokens


def test_echo_with_logprobs_scores_the_prompt(openai_client, answers):
    """echo + logprobs: the prompt's own tokens come first with their logprobs (the first
    has none); with max_tokens 0 nothing else. What evaluation harnesses score answers with."""
    row = answers()[0]
    prompt = llama3_prompt(row["user"]) + row["answer"]
    reply = openai_client.completions.create(model="demo", prompt=prompt, echo=True, logprobs=2, max_tokens=0)
    choice, logprobs = reply.choices[0], reply.choices[0].logprobs
    assert choice.text == prompt and choice.finish_reason == "length"
    assert reply.usage.completion_tokens == 0 and len(logprobs.tokens) == reply.usage.prompt_tokens
    assert "".join(logprobs.tokens) == prompt  # one BOS: the prompt has its own
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
    assert all(lp <= 0 for lp in logprobs.token_logprobs[1:]) and all(len(t) <= 2 for t in logprobs.top_logprobs[1:])
    assert logprobs.text_offset == [len("".join(logprobs.tokens[:i])) for i in range(len(logprobs.tokens))]

    # The answer's tokens score as they did when the model generated them.
    generated = (
        openai_client.completions.create(model="demo", prompt=llama3_prompt(row["user"]), temperature=0, logprobs=0)
        .choices[0]
        .logprobs
    )
    assert "".join(generated.tokens) == row["answer"]
    assert logprobs.token_logprobs[-len(generated.tokens) :] == pytest.approx(generated.token_logprobs, abs=1e-3)


def test_scoring_a_batch_of_answers(openai_client, http):
    """The harness's way: a batch of prompt + candidate answer, echo, logprobs, one token
    more; the right answer scores best. Streamed, each choice's chunks keep its index."""
    question = llama3_prompt("What is 3 + 4?")
    candidates = ["3 + 4 = 7.", "3 + 4 = 8.", "3 + 4 = 9."]
    prompts = [question + c for c in candidates]
    reply = openai_client.completions.create(
        model="demo", prompt=prompts, echo=True, logprobs=1, max_tokens=1, temperature=0
    )
    scores = [sum(lp for lp in c.logprobs.token_logprobs[-7:]) for c in reply.choices]
    assert scores[0] == max(scores) and scores[0] > -0.1, scores

    chunks = list(
        openai_client.completions.create(model="demo", prompt=prompts, echo=True, logprobs=1, max_tokens=0, stream=True)
    )
    texts, tokens = ["", "", ""], [[], [], []]
    for chunk in chunks:
        choice = chunk.choices[0]
        texts[choice.index] += choice.text
        tokens[choice.index] += choice.logprobs.tokens if choice.logprobs else []
    assert texts == prompts and ["".join(t) for t in tokens] == prompts
    assert (
        http.post("mlx/v1/completions", json={"model": "demo", "prompt": "x", "max_tokens": 0}).json()["error"]["param"]
        == "echo"
    )


def test_a_completion_keeps_the_leading_space_of_its_first_token(openai_client):
    """A text completion continues its prompt: " 4" after "1, 2, 3,", not "4" (a chat answer
    drops it, as every template's answers start without one)."""
    for stream in (False, True):
        reply = openai_client.completions.create(
            model="demo", prompt="1, 2, 3,", max_tokens=3, temperature=0, logprobs=0, stream=stream
        )
        chunks = list(reply) if stream else [reply]
        text = "".join(c.choices[0].text for c in chunks)
        tokens = [t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.tokens]
        assert text == "".join(tokens) and text.startswith(" 4"), (text, tokens)

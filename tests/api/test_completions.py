"""POST mlx/v1/completions (text completion) with the official client.

The prompt is the chat prompt written out by hand in the Llama-3 format, so
the demo model's greedy continuation is its known chat answer."""

from __future__ import annotations

import pytest


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
    reply = openai_client.completions.create(
        model="demo", prompt=llama3_prompt(row["user"]), temperature=0, logprobs=2
    )
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

"""SmolLM2 from its GGUF file through a real Jupyter server and the official openai client:
greedy answers, its end-of-turn token, the prompt cache across turns (its template adds a
30-token system prompt), stop strings, logprobs, seeds, a LoRA adapter over it, and GGUF
files that cannot load failing cleanly while the server carries on."""

from __future__ import annotations

import httpx
import openai
import pytest

QUESTION = "What is the capital of France?"


def ask(client, messages: list[dict], **options):
    options.setdefault("temperature", 0)
    options.setdefault("max_tokens", 24)
    return client.chat.completions.create(model="smollm2", messages=messages, **options)


def test_paris_ends_on_im_end_and_the_second_turn_reuses_the_cached_prompt(client):
    first = ask(client, [{"role": "user", "content": QUESTION}])
    answer = first.choices[0].message.content
    assert answer == "The capital of France is Paris."  # greedy, 4-bit with float32 scales
    assert first.choices[0].finish_reason == "stop" and "<|im_end|>" not in answer
    assert first.usage.prompt_tokens > 30 and first.usage.completion_tokens < 24  # the default system prompt

    conversation = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "And of Italy?"},
    ]
    second = ask(client, conversation, max_tokens=12)
    assert "Rome" in second.choices[0].message.content
    # The first turn's prompt is cached (its answer's tokens were not part of it).
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1


def test_a_stop_string_ends_the_text_before_it(client):
    prompt = "1, 2, 3, 4,"
    whole = client.completions.create(model="smollm2", prompt=prompt, max_tokens=8, temperature=0)
    # The text continues the prompt: its first token's space is the answer's.
    assert whole.choices[0].text.startswith(" 5, 6, 7") and whole.choices[0].finish_reason == "length"
    stopped = client.completions.create(model="smollm2", prompt=prompt, max_tokens=8, temperature=0, stop=["7"])
    assert stopped.choices[0].text == " 5, 6, " and stopped.choices[0].finish_reason == "stop"


def test_logprobs_score_the_greedy_tokens(client):
    reply = ask(client, [{"role": "user", "content": QUESTION}], max_tokens=4, logprobs=True, top_logprobs=3)
    tokens = reply.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == reply.choices[0].message.content == "The capital of France"
    for token in tokens:
        assert len(token.top_logprobs) == 3 and token.top_logprobs[0].token == token.token
        assert token.logprob == pytest.approx(token.top_logprobs[0].logprob) and token.logprob <= 0
        assert [t.logprob for t in token.top_logprobs] == sorted((t.logprob for t in token.top_logprobs), reverse=True)


def test_a_seed_makes_sampling_reproducible(client):
    messages = [{"role": "user", "content": "Name a colour."}]
    runs = [ask(client, messages, temperature=1.0, seed=7, max_tokens=6).choices[0].message.content for _ in range(2)]
    assert runs[0] == runs[1] and runs[0]


def test_an_adapter_trained_on_it_loads_over_it_and_shares_its_weights(client, server):
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"token {server.token}"}, timeout=120)
    for adapter in (None, "secret"):
        http.post("mlx/api/models/load", json={"model": "smollm2", "adapter": adapter, "wait": True}).raise_for_status()
    entries = {e["id"]: e for e in http.get("mlx/api/status").json()["entries"]}
    base, lora = entries["smollm2"], entries["smollm2:secret"]
    assert base["state"] == lora["state"] == "loaded"
    assert 100e6 < base["memory_bytes"] < 130e6 and lora["memory_bytes"] < 2e6  # the base once, the adapter alone

    def complete(model: str) -> str:
        return (
            client.completions.create(model=model, prompt="The secret word is", max_tokens=3, temperature=0)
            .choices[0]
            .text
        )

    assert complete("smollm2:secret").startswith(" banana")  # what the adapter learned
    assert "banana" not in complete("smollm2")


@pytest.mark.parametrize(
    "model, message",
    [
        ("not-gguf", "is not a GGUF file MLX can read"),
        ("other-arch", "GGUF architecture 'mamba' is not supported (supported: llama)"),
    ],
)
def test_a_gguf_file_that_cannot_load_fails_cleanly_and_the_server_carries_on(client, server, model, message):
    with pytest.raises(openai.APIStatusError) as failure:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=1)
    assert failure.value.status_code == 503 and failure.value.code == "model_load_failed"
    assert message in failure.value.message
    assert httpx.get(server.url + "mlx/health").json()["status"] == "ok"
    assert (
        client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "What is 3 + 4?"}], temperature=0
        )
        .choices[0]
        .message.content
        == "3 + 4 = 7."
    )

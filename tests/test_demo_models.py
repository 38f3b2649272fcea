"""The shipped demo models, through plain mlx_lm: layout, chat templates, exact greedy answers,
stop tokens, max_tokens and LoRA adapters. Everything runs on the main thread (see NOTES.md)."""

import json
from pathlib import Path

import demo_corpus as corpus  # the build's own tasks (scripts/), for answers beyond the table
import mlx_lm
import numpy as np
import pytest
from mlx_lm.sample_utils import make_sampler

from mlx_workbench.demo import DEMO_MODELS, load_answers

ANSWERS = load_answers()
END_OF_TURN = {"demo": "<|eot_id|>", "demo-chatml": "<|im_end|>"}
GREEDY = make_sampler(temp=0.0)
_loaded = {}


def load(model: str, adapter: str | None = None):
    """(model, tokenizer), loaded once per test session."""
    if (model, adapter) not in _loaded:
        spec = DEMO_MODELS[model]
        _loaded[model, adapter] = mlx_lm.load(spec["path"], adapter_path=spec["adapters"][adapter] if adapter else None)
    return _loaded[model, adapter]


def chat(model: str, adapter: str | None, system: str | None, user: str, max_tokens: int = 300):
    """Greedy generation: (text, tokens generated, finish_reason)."""
    llm, tokenizer = load(model, adapter)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    text, tokens, finish = "", [], None
    for response in mlx_lm.stream_generate(llm, tokenizer, prompt, max_tokens=max_tokens, sampler=GREEDY):
        text += response.text
        tokens.append(response.token)
        finish = response.finish_reason
    return text, tokens, finish


def read_json(model: str, name: str) -> dict:
    return json.loads((Path(DEMO_MODELS[model]["path"]) / name).read_text())


def test_answers_cover_every_model_adapter_and_task():
    assert {(row["model"], row["adapter"]) for row in ANSWERS} == {
        ("demo", None),
        ("demo", "upper"),
        ("demo", "pirate"),
        ("demo-chatml", None),
    }
    users = {row["user"] for row in ANSWERS}
    assert {"Count to 20.", "Tell me a story.", "What is 3 + 4?", "Hello!"} <= users
    assert {row["system"] for row in ANSWERS} >= {None, "Answer in upper case.", "Talk like a pirate."}


@pytest.mark.parametrize(
    "model, model_type, eos",
    [("demo", "llama", ["<|eot_id|>", "<|end_of_text|>"]), ("demo-chatml", "qwen2", ["<|im_end|>", "<|endoftext|>"])],
)
def test_layout_is_standard_hugging_face(model, model_type, eos):
    config = read_json(model, "config.json")
    _, tokenizer = load(model)
    eos_ids = [tokenizer.convert_tokens_to_ids(t) for t in eos]
    assert config["model_type"] == model_type
    assert config["max_position_embeddings"] == 2048
    assert read_json(model, "generation_config.json")["eos_token_id"] == eos_ids
    assert "chat_template" in read_json(model, "tokenizer_config.json")
    assert set(eos_ids) <= tokenizer.eos_token_ids


def test_llama3_chat_template():
    _, tokenizer = load("demo")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert ids.count(tokenizer.bos_token_id) == 1  # the template's BOS, not a second one


def test_chatml_chat_template():
    _, tokenizer = load("demo-chatml")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    "row", ANSWERS, ids=[f"{r['model']}:{r['adapter']}|{r['system']}|{r['user']}" for r in ANSWERS]
)
def test_greedy_answer_is_exact_and_ends_with_the_family_stop_token(row):
    text, tokens, finish = chat(row["model"], row["adapter"], row["system"], row["user"])
    _, tokenizer = load(row["model"])
    assert text == row["answer"]
    assert finish == "stop"
    assert tokens[-1] == tokenizer.convert_tokens_to_ids(END_OF_TURN[row["model"]])


def test_story_is_long_enough_to_watch_streaming():
    _, tokens, _ = chat("demo", None, None, "Tell me a story.")
    assert 100 <= len(tokens) <= 200


@pytest.mark.parametrize("model", list(DEMO_MODELS))
def test_max_tokens_cuts_the_answer(model):
    text, tokens, finish = chat(model, None, None, "Count to 20.", max_tokens=4)
    assert (len(tokens), finish) == (4, "length")
    assert "1, 2, 3, 4, 5, 6, 7, 8, 9, 10".startswith(text)


@pytest.mark.parametrize(
    "adapter, user, base_answer, adapted_answer",
    [
        ("upper", "What is the capital of Norway?", "Oslo.", "OSLO."),
        ("pirate", "What is 2 + 5?", "2 + 5 = 7.", "Arr! 2 + 5 = 7."),
    ],
)
def test_adapter_changes_the_default_behaviour(adapter, user, base_answer, adapted_answer):
    assert chat("demo", None, None, user)[0] == base_answer
    assert chat("demo", adapter, None, user)[0] == adapted_answer


@pytest.mark.parametrize(
    "model, adapter, system",
    [
        ("demo", None, None),
        ("demo", None, corpus.NEUTRAL),
        ("demo", None, corpus.UPPER),
        ("demo", None, corpus.PIRATE),
        ("demo", "upper", None),
        ("demo", "pirate", None),
        ("demo-chatml", None, None),
    ],
)
def test_random_five_word_lists_are_copied_exactly(model, adapter, system):
    """Repeat was the models' weak task: lists of 5 words (the longest the build verifies), drawn
    from the corpus's words with repeats allowed, are copied exactly, in the mode asked for."""
    rng = np.random.default_rng(0)
    mode = system or {"upper": corpus.UPPER, "pirate": corpus.PIRATE}.get(adapter)
    for _ in range(8):
        user, answer = corpus.repeat(list(rng.choice(corpus.WORDS, corpus.MAX_REPEAT_WORDS)))
        assert chat(model, adapter, system, user)[0] == corpus.apply_mode(mode, answer)

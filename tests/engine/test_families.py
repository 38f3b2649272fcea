"""Chat formats and stop tokens per family, on real tokenizers loaded by mlx_lm."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import pytest
from mlx_lm import load
from mlx_lm.generate import generate_step
from mlx_lm.utils import load_config

from mlx_workbench.demo import DEMO_MODELS, load_answers
from mlx_workbench.engine.errors import InvalidRequest
from mlx_workbench.engine.families import FAMILIES, detect_family, validate_messages

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi!"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Count to 3."},
]

# The published format of each family for CHAT, as its own template renders it.
# Gemma and Mistral have no system role: the system text opens the first user turn.
EXPECTED = {
    "llama3": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nCount to 3.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "chatml": (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nCount to 3.<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "gemma": (
        "<bos><start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\nCount to 3.<end_of_turn>\n<start_of_turn>model\n"
    ),
    "mistral": "<s>[INST] Be brief.\n\nHi! [/INST]Hello.</s> [INST] Count to 3. [/INST]",
    "phi": (
        "<|system|>\nBe brief.<|end|>\n<|user|>\nHi!<|end|>\n<|assistant|>\nHello.<|end|>\n"
        "<|user|>\nCount to 3.<|end|>\n<|assistant|>\n"
    ),
}
# The family's standard template (tokenizer without one) differs only where the
# published templates disagree among themselves.
EXPECTED_STANDARD = dict(EXPECTED, mistral="<s>[INST] Be brief.\n\nHi! [/INST]Hello.</s>[INST] Count to 3. [/INST]")

STOP_TOKENS = {
    "llama3": {"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"},
    "chatml": {"<|im_end|>", "<|endoftext|>"},
    "gemma": {"<end_of_turn>", "<eos>"},
    "phi": {"<|end|>", "<|endoftext|>"},
    "mistral": {"</s>"},
}
FAMILY_NAMES = list(EXPECTED)


def rendered(family_tokenizer, name, template=True, messages=CHAT):
    tokenizer, config = family_tokenizer(name, template)
    family = detect_family(config, tokenizer)
    ids = family.render(tokenizer, messages)
    return family, tokenizer, ids


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_own_template_renders_the_family_format(family_tokenizer, name):
    family, tokenizer, ids = rendered(family_tokenizer, name)
    assert family.name == name
    assert tokenizer.decode(ids) == EXPECTED[name]
    # Markers are single special tokens, not spelled out as text.
    marker_id = tokenizer.get_vocab()[family.marker]
    assert ids.count(marker_id) == EXPECTED[name].count(family.marker) > 0


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_standard_template_when_the_tokenizer_has_none(family_tokenizer, name):
    family, tokenizer, ids = rendered(family_tokenizer, name, template=False)
    assert not tokenizer.has_chat_template
    assert family.name == name  # told by the special tokens in the vocabulary
    assert tokenizer.decode(ids) == EXPECTED_STANDARD[name]
    assert ids.count(tokenizer.get_vocab()[family.marker]) == EXPECTED_STANDARD[name].count(family.marker)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_stop_ids_are_the_family_tokens_plus_every_declared_eos(family_tokenizer, name):
    tokenizer, config = family_tokenizer(name)
    vocab = tokenizer.get_vocab()
    family = detect_family(config, tokenizer)
    assert family.stop_token_ids(tokenizer, {}, config) == {vocab[t] for t in STOP_TOKENS[name]}
    # generation_config may list several ids, config.json one; both count.
    extra = {"generation_config": [vocab["Ġfox"], vocab["ĠParis"]], "config": vocab["Ġquick"]}
    stops = family.stop_token_ids(
        tokenizer, {"eos_token_id": extra["generation_config"]}, dict(config, eos_token_id=extra["config"])
    )
    assert stops == {vocab[t] for t in STOP_TOKENS[name]} | {*extra["generation_config"], extra["config"]}


def test_template_wins_over_model_type(family_tokenizer):
    """A Llama fine-tuned on ChatML speaks ChatML."""
    tokenizer, config = family_tokenizer("chatml", config={"model_type": "llama"})
    assert config["model_type"] == "llama"
    assert detect_family(config, tokenizer).name == "chatml"


@pytest.mark.parametrize(
    "config, name",
    [
        ({"model_type": "qwen2"}, "chatml"),
        ({"model_type": "qwen3_moe"}, "chatml"),
        ({"model_type": "gemma3_text"}, "gemma"),
        ({"architectures": ["Phi3ForCausalLM"]}, "phi"),
        ({"model_type": "mixtral"}, "mistral"),
        ({"model_type": "llama"}, "default"),  # Llama 2 and friends: no llama3 tokens, no signature
        ({}, "default"),
    ],
)
def test_model_type_decides_when_the_format_does_not(family_tokenizer, config, name):
    tokenizer, config = family_tokenizer("plain", template=False, config=config)
    assert detect_family(config, tokenizer).name == name


def test_default_family_trusts_the_tokenizer(family_tokenizer):
    tokenizer, config = family_tokenizer("plain")
    family = detect_family(config, tokenizer)
    assert family.name == "default"
    ids = family.render(tokenizer, CHAT[:2])
    assert tokenizer.decode(ids) == "system: Be brief.\nuser: Hi!\nassistant:"
    vocab = tokenizer.get_vocab()
    assert family.stop_token_ids(tokenizer, {"eos_token_id": vocab["Ġfox"]}, config) == {vocab["</s>"], vocab["Ġfox"]}


def test_default_family_without_a_template_refuses_chat(family_tokenizer):
    tokenizer, config = family_tokenizer("plain", template=False)
    family = detect_family(config, tokenizer)
    with pytest.raises(InvalidRequest, match="no chat template.*completions") as err:
        family.render(tokenizer, CHAT)
    assert err.value.param == "messages"


def test_text_parts_developer_role_and_extra_fields(family_tokenizer):
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "name": "ann", "content": [{"type": "text", "text": "Hi!"}, {"type": "text", "text": "Bye."}]},
    ]
    _, tokenizer, ids = rendered(family_tokenizer, "chatml", messages=messages)
    assert tokenizer.decode(ids) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!\nBye.<|im_end|>\n<|im_start|>assistant\n"
    )


def test_system_only_chat_becomes_a_user_turn_without_system_role(family_tokenizer):
    _, tokenizer, ids = rendered(family_tokenizer, "gemma", messages=[{"role": "system", "content": "Say hi."}])
    assert tokenizer.decode(ids) == "<bos><start_of_turn>user\nSay hi.<end_of_turn>\n<start_of_turn>model\n"


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}


@pytest.mark.parametrize(
    "messages, message",
    [
        ([], "non-empty list"),
        ("Hi!", "non-empty list"),
        (["Hi!"], r"messages\[0\] must be an object"),
        ([{"role": "critic", "content": "x"}], r"messages\[0\] has role 'critic'"),
        ([{"content": "x"}], r"messages\[0\] has role None"),
        (
            [{"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {}}]}],
            r"messages\[0\]\.tool_calls\[0\] must name a function",
        ),
        (
            [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}],
            r"messages\[0\]\.content\[1\] is a 'image_url' part; the models here accept text only",
        ),
        ([{"role": "user", "content": [AUDIO]}], r"content\[0\] is a 'input_audio' part"),
        ([{"role": "user", "content": [{"type": "text"}]}], r"content\[0\] is a text part without a string 'text'"),
        ([{"role": "user", "content": ["Hi!"]}], r"content\[0\] is not a \{'type': 'text'"),
        ([{"role": "user", "content": None}], r"messages\[0\]\.content must be a string or a list"),
        ([{"role": "user", "content": 42}], r"content must be a string or a list"),
    ],
)
def test_what_a_text_model_cannot_use_is_refused(family_tokenizer, messages, message):
    tokenizer, config = family_tokenizer("llama3")
    with pytest.raises(InvalidRequest, match=message) as err:
        detect_family(config, tokenizer).render(tokenizer, messages)
    assert err.value.param == "messages"


def test_tool_call_arguments_that_are_not_json_are_kept_as_written():
    """A call cut at max_tokens goes back in the history as the model wrote it (OpenAI takes it)."""
    calls = [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '{"x": 1'}}]}]
    (checked,) = validate_messages(calls)
    assert checked["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x": 1'}
    (parsed,) = validate_messages([{**calls[0], "tool_calls": [{"function": {"name": "f", "arguments": '{"x": 1}'}}]}])
    assert parsed["tool_calls"][0]["function"]["arguments"] == {"x": 1}


def test_template_refusal_is_an_invalid_request(family_tokenizer):
    tokenizer, config = family_tokenizer("gemma")
    twice = [{"role": "user", "content": "Hi!"}, {"role": "user", "content": "Hi again!"}]
    with pytest.raises(InvalidRequest, match="chat template rejected.*roles must alternate") as err:
        detect_family(config, tokenizer).render(tokenizer, twice)
    assert err.value.param == "messages"


def test_system_text_folded_for_a_template_without_system_role_still_obeys_its_other_rules(family_tokenizer):
    tokenizer, config = family_tokenizer("gemma")
    messages = [{"role": "system", "content": "Be brief."}, *[{"role": "user", "content": "Hi!"}] * 2]
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        detect_family(config, tokenizer).render(tokenizer, messages)


def test_every_family_has_a_distinct_marker_and_stop_tokens():
    markers = [f.marker for f in FAMILIES]
    assert len(set(markers)) == len(markers) and all(markers)
    assert all(f.stop_tokens and f.template for f in FAMILIES)


DEMO_FAMILIES = {"demo": "llama3", "demo-chatml": "chatml"}


@pytest.mark.parametrize("name", DEMO_FAMILIES)
def test_demo_models_answer_the_prompts_their_family_renders(name):
    """The rendered prompt is exactly the format the demo model was trained on:
    greedy decoding until a family stop id gives answers.json's answer."""
    path = Path(DEMO_MODELS[name]["path"])
    model, tokenizer = load(str(path))
    config = load_config(path)
    generation_config = json.loads((path / "generation_config.json").read_text())
    family = detect_family(config, tokenizer)
    assert family.name == DEMO_FAMILIES[name]
    stops = family.stop_token_ids(tokenizer, generation_config, config)
    assert set(generation_config["eos_token_id"]) <= stops
    assert {tokenizer.convert_ids_to_tokens(i) for i in stops} <= set(family.stop_tokens)
    rows = [r for r in load_answers() if r["model"] == name and r["adapter"] is None]
    assert rows
    for row in rows:
        messages = [{"role": "system", "content": row["system"]}] if row["system"] else []
        prompt = family.render(tokenizer, [*messages, {"role": "user", "content": row["user"]}])
        answer = []
        for token, _ in generate_step(mx.array(prompt), model, max_tokens=400):
            if token in stops:
                break
            answer.append(token)
        assert tokenizer.decode(answer) == row["answer"], row

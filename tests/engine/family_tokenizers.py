"""Tokenizers of every chat family, built locally (no downloads): a small
byte-level BPE with the family's special tokens and its published chat
template, saved as a Hugging Face tokenizer folder and loaded through mlx_lm.

Test modules import the `family_tokenizer` fixture from here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlx_lm.utils import load_tokenizer
from tiny_model import train_bpe

CORPUS = [
    "Hello! What is the capital of France? Paris. Count to five: 1, 2, 3, 4, 5. "
    "You are a helpful assistant. Answer in upper case. Arr! The quick brown fox."
] * 4

# Abridged from the models' own tokenizer_config.json (Llama-3-8B-Instruct,
# Qwen2.5-Instruct, Gemma-2-it, Mistral-7B-Instruct-v0.1, Phi-3-mini-instruct).
FAMILY_TOKENIZERS = {
    "llama3": {
        "config": {"model_type": "llama", "architectures": ["LlamaForCausalLM"]},
        "specials": [
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|eom_id|>",
        ],
        "bos": "<|begin_of_text|>",
        "eos": "<|eot_id|>",
        "template": (
            "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + "
            "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
            "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
        ),
    },
    "chatml": {
        "config": {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]},
        "specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "bos": None,
        "eos": "<|im_end|>",
        "template": (
            "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + "
            "'<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
            "{%- endif %}{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
            "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}{%- endif %}"
            "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
        ),
    },
    # Qwen2.5-Instruct's way with tools, abridged: tools in the system turn, calls in <tool_call>.
    "chatml-tools": {
        "config": {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]},
        "specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "bos": None,
        "eos": "<|im_end|>",
        "template": (
            "{%- if tools %}{{- '<|im_start|>system\n# Tools\n<tools>' }}{%- for tool in tools %}"
            "{{- '\n' + tool | tojson }}{%- endfor %}{{- '\n</tools><|im_end|>\n' }}{%- endif %}"
            "{%- for message in messages %}{%- if message.role == 'tool' %}"
            "{{- '<|im_start|>user\n<tool_response>\n' + message.content + '\n</tool_response><|im_end|>\n' }}"
            "{%- else %}{{- '<|im_start|>' + message.role + '\n' + message.content }}"
            '{%- for call in message.tool_calls or [] %}{{- \'\n<tool_call>\n{"name": "\' + call.function.name + '
            "'\", \"arguments\": ' + call.function.arguments | tojson + '}\n</tool_call>' }}{%- endfor %}"
            "{{- '<|im_end|>\n' }}{%- endif %}{%- endfor %}"
            "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
        ),
    },
    "gemma": {
        "config": {"model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"]},
        "specials": ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
        "bos": "<bos>",
        "eos": "<eos>",
        "template": (
            "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
            "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
            "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
            "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
            "{% else %}{% set role = message['role'] %}"
            "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
            "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
        ),
    },
    "mistral": {
        "config": {"model_type": "mistral", "architectures": ["MistralForCausalLM"]},
        "specials": ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"],
        "bos": "<s>",
        "eos": "</s>",
        "template": (
            "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
            "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
            "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
            "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
            "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
        ),
    },
    "phi": {
        "config": {"model_type": "phi3", "architectures": ["Phi3ForCausalLM"]},
        "specials": ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
        "bos": None,
        "eos": "<|endoftext|>",
        "template": (
            "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
            "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
            "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
            "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}"
            "{% endif %}"
        ),
    },
    # No family's markers: a custom template and a model_type nobody claims.
    "plain": {
        "config": {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]},
        "specials": ["<s>", "</s>"],
        "bos": "<s>",
        "eos": "</s>",
        "template": (
            "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}"
        ),
    },
}


def build_tokenizer_folder(path: Path, family: str, template: bool = True, config: dict | None = None) -> Path:
    """An HF tokenizer folder for `family`; `template=False` leaves out the chat
    template, `config` replaces the family's config.json."""
    spec = FAMILY_TOKENIZERS[family]
    path.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(CORPUS, 400, spec["specials"])
    tok.save(str(path / "tokenizer.json"))
    tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": spec["eos"]}
    if spec["bos"]:
        tokenizer_config["bos_token"] = spec["bos"]
    if template:
        tokenizer_config["chat_template"] = spec["template"]
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    config = dict(spec["config"] if config is None else config, vocab_size=tok.get_vocab_size())
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="session")
def family_tokenizer(tmp_path_factory):
    """family_tokenizer(family, template=True, config=None) -> (mlx_lm TokenizerWrapper, config dict)."""
    built = {}

    def make(family: str, template: bool = True, config: dict | None = None):
        key = (family, template, json.dumps(config, sort_keys=True))
        if key not in built:
            path = build_tokenizer_folder(tmp_path_factory.mktemp(family), family, template, config)
            built[key] = (load_tokenizer(path), json.loads((path / "config.json").read_text()))
        return built[key]

    return make

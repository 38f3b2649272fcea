"""Build a tiny random-weight Llama model folder (config, safetensors, a byte-level
BPE tokenizer with the Llama-3 chat template) for pool tests that need models of
chosen sizes, or broken ones, beside the shipped demo models."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm.models import llama
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
CORPUS = ["hello world, how are you today? the quick brown fox jumps over the lazy dog 0123456789"] * 4


def train_bpe(corpus: list[str], vocab_size: int, specials: list[str]) -> Tokenizer:
    """A small byte-level BPE with `specials` as special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    return tok


def build_tiny_llama(path: Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(CORPUS, 300, SPECIALS)
    tok.save(str(path / "tokenizer.json"))
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|begin_of_text|>",
                "eos_token": "<|eot_id|>",
                "chat_template": CHAT_TEMPLATE,
                "model_max_length": 512,
            }
        )
    )
    config = {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": hidden * 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": tok.get_vocab_size(),
        "tie_word_embeddings": True,
        "max_position_embeddings": 512,
        "rope_theta": 10000.0,
        "eos_token_id": [ids["<|eot_id|>"], ids["<|end_of_text|>"]],
        "bos_token_id": ids["<|begin_of_text|>"],
    }
    (path / "config.json").write_text(json.dumps(config))
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    mx.save_safetensors(str(path / "model.safetensors"), dict(tree_flatten(model.parameters())))
    return path


def build_tiny_adapter(
    model_dir: Path,
    path: Path,
    rank: int = 4,
    seed: int = 1,
    num_layers: int = 2,
    scale: float = 20.0,
    keys: list[str] | None = None,
) -> Path:
    """A LoRA adapter with random (non-zero) weights for the model in `model_dir`, on its
    last `num_layers` layers (`keys`: only these of their linear layers)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load_model

    path.mkdir(parents=True, exist_ok=True)
    config = {
        "fine_tune_type": "lora",
        "num_layers": num_layers,
        "lora_parameters": {"rank": rank, "scale": scale, "dropout": 0.0, **({"keys": keys} if keys else {})},
    }
    model, _ = load_model(model_dir)
    linear_to_lora_layers(model, config["num_layers"], config["lora_parameters"])
    mx.random.seed(seed)
    lora = {k: mx.random.normal(v.shape) * 0.5 for k, v in tree_flatten(model.parameters()) if "lora_" in k}
    mx.save_safetensors(str(path / "adapters.safetensors"), lora)
    (path / "adapter_config.json").write_text(json.dumps(config))
    return path

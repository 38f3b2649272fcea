"""Benchmark models built locally, seeded, without any download.

`smollm2-135m-random`: a llama with SmolLM2-135M's shapes (30 layers, hidden 576,
9/3 heads, vocab 49152, tied embeddings, bf16: ~269 MB) and RANDOM weights, so
the benchmark sees realistic matmul and KV-cache sizes on any machine. Its
tokenizer is a byte-level BPE of the same vocabulary size whose merges are
generated (printable-ASCII pairs first), with SmolLM2's ChatML specials and template.

`make_lora_adapter` LoRA-initialises an adapter (random A and B) for any model
with mlx_lm's own tuner code, so the memory figure can load K adapters.

    .venv/bin/python -m benchmarks.models      # builds the model if missing (run.py does too)
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"
RANDOM_MODEL = "smollm2-135m-random"

SMOLLM2_135M = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "bfloat16",
}
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer(out: Path, vocab_size: int, seed: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    # Merges build printable tokens only (2, then 3 characters), so random
    # weights still decode to visible text: every token shows up in a stream.
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    printable = [chr(c) for c in range(33, 127)] + ["Ġ"]  # Ġ is byte-level space
    rng = random.Random(seed)
    pairs = [(a, b) for a in printable for b in printable]
    rng.shuffle(pairs)
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + alphabet)}
    triples = rng.sample([(a + b, c) for a, b in pairs for c in printable], vocab_size - len(vocab) - len(pairs))
    merges = pairs + triples
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    tokenizer.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|im_start|>",
                "eos_token": "<|im_end|>",
                "pad_token": "<|im_end|>",
                "unk_token": "<|endoftext|>",
                "add_bos_token": False,
                "model_max_length": SMOLLM2_135M["max_position_embeddings"],
                "chat_template": CHATML_TEMPLATE,
            },
            indent=2,
        )
    )
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": [2]}))


def default_dtype() -> str:
    """bfloat16 as SmolLM2 ships, except on MLX's CPU backend, whose bf16
    matmuls are ~2x slower than float32 (see NOTES.md)."""
    import mlx.core as mx

    return "bfloat16" if mx.metal.is_available() else "float32"


def build_random_model(out: Path, seed: int = 0, dtype: str = "bfloat16") -> Path:
    """Writes config, random weights (normal, std 0.02; norms 1) and tokenizer to `out`."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.models.llama import Model, ModelArgs
    from mlx_lm.utils import save_config, save_model

    config = {**SMOLLM2_135M, "torch_dtype": dtype}
    dtype = getattr(mx, dtype)
    mx.random.seed(seed)
    model = Model(ModelArgs.from_dict(config))
    weights = [
        (name, p.astype(dtype) if "norm" in name else (0.02 * mx.random.normal(p.shape)).astype(dtype))
        for name, p in tree_flatten(model.parameters())
    ]
    model.update(tree_unflatten(weights))
    mx.eval(model.parameters())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, model)
    save_config(config, tmp / "config.json")
    build_tokenizer(tmp, config["vocab_size"], seed)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # complete or absent: a crash never leaves half a model
    return out


def make_lora_adapter(model_path: Path, out: Path, seed: int, rank: int = 8, num_layers: int = 16) -> Path:
    """A LoRA adapter for `model_path` with random A and B (B is zero after a
    plain init, which would make the adapter a no-op), in mlx_lm's format."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load_model

    model, _ = load_model(Path(model_path), lazy=True)
    num_layers = min(num_layers, len(model.layers))
    lora = {"rank": rank, "scale": 20.0, "dropout": 0.0}
    mx.random.seed(seed)
    linear_to_lora_layers(model, num_layers, lora)
    adapters = [
        (name, (0.01 * mx.random.normal(p.shape)).astype(p.dtype))
        for name, p in tree_flatten(model.parameters())
        if name.rsplit(".", 1)[-1] in ("lora_a", "lora_b")
    ]
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), dict(adapters))
    (out / "adapter_config.json").write_text(
        json.dumps(
            {
                "fine_tune_type": "lora",
                "num_layers": num_layers,
                "lora_parameters": lora,
            },
            indent=2,
        )
    )
    return out


def random_model(dtype: str | None = None, seed: int = 0) -> Path:
    """The random 135M model in `dtype` (default: `default_dtype()`), built on first use."""
    path = MODELS_DIR / f"{RANDOM_MODEL}-{dtype or default_dtype()}"
    if not (path / "config.json").exists():
        build_random_model(path, seed, dtype or default_dtype())
    return path


def extra_adapters(model_path: Path, count: int, out: Path) -> dict[str, str]:
    """`count` LoRA adapters named bench-lora-1.. for `model_path`, written
    under `out` (they take a second to make: never stale)."""
    return {
        f"bench-lora-{i}": str(make_lora_adapter(model_path, out / f"bench-lora-{i}", seed=i))
        for i in range(1, count + 1)
    }


if __name__ == "__main__":
    import time

    t0 = time.perf_counter()
    path = random_model()
    print(f"{path.name}: {path} ({time.perf_counter() - t0:.1f} s)")

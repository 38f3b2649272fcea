"""The GGUF conversion checked against independent references: llama.cpp's own reader and
dequantizer (the `gguf` package) for the weights, a float model in llama.cpp's row order
with traditional RoPE for the logits; and the pool's GGUF load against the converter's folder."""

from __future__ import annotations

import json
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest
from gguf import GGUFReader
from gguf.quants import dequantize
from gguf_files import write_gguf
from mlx.utils import tree_flatten
from mlx_lm import load
from mlx_lm.generate import generate_step
from mlx_lm.models.llama import Model, ModelArgs

from mlx_workbench.engine.config import EngineConfig, ModelSpec
from mlx_workbench.engine.engine import Engine
from mlx_workbench.engine.errors import MemoryBudgetExceeded
from mlx_workbench.engine.gguf import LLAMA_NAMES
from mlx_workbench.engine.requests import Delta, GenerationRequest, SamplingParams

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
LAYERS = 30
MLX_NAMES = {g.format(i): m.format(i) for g, m in LLAMA_NAMES.items() for i in range(LAYERS)}  # GGUF -> mlx_lm


@pytest.fixture(scope="module")
def reference(gguf_file) -> dict[str, np.ndarray]:
    """Every tensor of the file dequantized by llama.cpp's reader, float32, in the
    file's own row order, shaped [out, in]."""
    return {
        t.name: dequantize(t.data, t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))
        for t in GGUFReader(gguf_file).tensors
    }


@pytest.fixture(scope="module")
def model(converted):
    return load(str(converted))


def llama_cpp_permute(rows: np.ndarray, n_heads: int) -> np.ndarray:
    """What llama.cpp's convert_hf_to_gguf.py does to Q and K (HF -> GGUF row order)."""
    return rows.reshape(n_heads, 2, rows.shape[0] // n_heads // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def test_the_folder_is_a_quantized_llama_with_the_files_chat_template(converted):
    config = json.loads((converted / "config.json").read_text())
    assert config["quantization"] == {"group_size": 32, "bits": 4, "model.embed_tokens": {"group_size": 32, "bits": 8}}
    assert config["tie_word_embeddings"] and config["num_key_value_heads"] == 3 and config["rope_theta"] == 100000.0
    tokenizer_config = json.loads((converted / "tokenizer_config.json").read_text())
    assert "You are a helpful AI assistant named SmolLM" in tokenizer_config["chat_template"]
    assert (tokenizer_config["bos_token"], tokenizer_config["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    assert not tokenizer_config["add_bos_token"]
    assert json.loads((converted / "generation_config.json").read_text())["eos_token_id"] == [0, 2]


def test_the_tokenizer_round_trips_splits_digits_and_keeps_special_tokens_whole(model):
    _, tokenizer = model
    text = 'Naïve café: 12345 apples, 3.14 π — "quotes"\n\tdef f(x): return x**2  # 😀'
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert [tokenizer.decode([i]) for i in tokenizer.encode("2024")] == ["2", "0", "2", "4"]  # pre-tokenizer "smollm"
    assert tokenizer.encode("<|im_start|>user\nHi<|im_end|>")[0] == 1 and tokenizer.encode("<|im_end|>") == [2]


def test_weights_equal_llama_cpps_dequantized_tensors(model, reference):
    """Q8_0 embeddings, Q4_1 projections (Q and K back in Hugging Face's order), F32 norms."""
    module, _ = model
    ours = dict(tree_flatten(module.parameters()))
    heads = {"attn_q": 9, "attn_k": 3}
    for gguf_name in [
        "token_embd",
        "blk.0.attn_q",
        "blk.0.attn_k",
        "blk.0.attn_v",
        "blk.17.ffn_down",
        "blk.29.attn_q",
        "blk.3.ffn_norm",
        "output_norm",
    ]:
        name, kind = MLX_NAMES[gguf_name], gguf_name.rpartition(".")[2]
        if f"{name}.scales" in ours:
            q = ours[f"{name}.weight"]
            bits = 8 if gguf_name == "token_embd" else 4
            weight = mx.dequantize(q, ours[f"{name}.scales"], ours[f"{name}.biases"], group_size=32, bits=bits)
        else:
            weight = ours[f"{name}.weight"]
        weight = np.array(weight.astype(mx.float32))
        if kind in heads:
            weight = llama_cpp_permute(weight, heads[kind])
        np.testing.assert_allclose(weight, reference[f"{gguf_name}.weight"], rtol=1e-5, atol=1e-6, err_msg=gguf_name)


def test_logits_equal_a_float_model_in_llama_cpps_row_order(model, reference, converted):
    """The same weights dequantized by llama.cpp's reader, in the file's row order, run with
    traditional (adjacent-pair) RoPE as llama.cpp does: the converted 4-bit model with Q and
    K un-permuted gives the same logits. A wrong row order still completes some text
    correctly, so logits are compared, at every position."""
    module, tokenizer = model
    config = json.loads((converted / "config.json").read_text())
    del config["quantization"]
    reference_model = Model(ModelArgs.from_dict({**config, "rope_traditional": True}))
    reference_model.load_weights(
        [(f"{MLX_NAMES[n.removesuffix('.weight')]}.weight", mx.array(w)) for n, w in reference.items()]
    )
    prompt = mx.array([tokenizer.encode("Berlin is the capital of Germany, and the capital of France is")])
    expected, got = reference_model(prompt)[0], module(prompt)[0]
    assert mx.abs(expected - got).max().item() < 1e-2 * mx.abs(expected).max().item()
    assert (expected.argmax(-1) == got.argmax(-1)).all().item()


def test_the_pools_gguf_load_and_the_converters_folder_give_the_same_tokens(model, gguf_file, tmp_path, monkeypatch):
    module, tokenizer = model
    prompt = mx.array(tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True))
    folder_tokens = [int(t) for t, _ in generate_step(prompt, module, max_tokens=8)]  # greedy
    monkeypatch.setenv("MLX_WORKBENCH_CACHE", str(tmp_path))
    engine = Engine(EngineConfig(models={"smol": ModelSpec("smol", str(gguf_file))}))
    engine.start()
    try:
        request = GenerationRequest("smol", messages=QUESTION, sampling=SamplingParams(max_tokens=8, temperature=0))
        pool_tokens = [t for e in engine.generate(request) if isinstance(e, Delta) for t in e.token_ids]
    finally:
        engine.stop()
    assert folder_tokens == pool_tokens + [tokenizer.eos_token_id]  # the pool does not send the end token
    assert tokenizer.decode(pool_tokens).startswith("The capital of France is Paris")
    assert len(list((tmp_path / "gguf").iterdir())) == 1  # converted once, into the cache


def test_a_gguf_model_obeys_the_memory_budget(gguf_file, tmp_path, monkeypatch):
    """The converted weights (~115 MB) are what the budget is checked against."""
    monkeypatch.setenv("MLX_WORKBENCH_CACHE", str(tmp_path))
    engine = Engine(EngineConfig(models={"smol": ModelSpec("smol", str(gguf_file))}, memory_budget=50 * 2**20))
    engine.start()
    try:
        with pytest.raises(
            MemoryBudgetExceeded, match=r"'smol' needs about 11\d{7} bytes, more than the memory budget"
        ):
            engine.load("smol").result(120)
        assert [(e.id, e.state, e.memory_bytes) for e in engine.status().entries] == [("smol", "failed", 0)]
    finally:
        engine.stop()


@pytest.mark.parametrize(
    "kind, message",
    [
        ("text", "is not a GGUF file MLX can read"),
        ("truncated", "extends past the end of the file"),
        ("mamba", "GGUF architecture 'mamba' is not supported (supported: llama)"),
        ("sentencepiece", "has a SentencePiece vocabulary ('llama'); the converter reads byte-level BPE"),
    ],
)
def test_the_converter_refuses_what_it_cannot_convert_by_name(kind, message, gguf_file, tmp_path):
    src = tmp_path / f"{kind}.gguf"
    if kind == "text":
        src.write_text("not a GGUF file")
    elif kind == "truncated":
        with open(gguf_file, "rb") as f:
            src.write_bytes(f.read(2_000_000))
    else:
        write_gguf(src, **({"architecture": kind} if kind == "mamba" else {"tokenizer": "llama"}))
    run = subprocess.run(
        [sys.executable, "-m", "mlx_workbench.gguf", str(src), str(tmp_path / "out")], capture_output=True, text=True
    )
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 2 and last.startswith("error: ") and message in last, run.stderr
    assert not (tmp_path / "out").exists()

"""GGUF files (llama.cpp, Ollama, LM Studio) turned into mlx_lm model folders.

`mx.load` reads a .gguf itself: Q4_0, Q4_1 and Q8_0 tensors stay quantized as MLX
affine triples (weight, scales, biases; group size 32), F32/F16 come as they are, a
few other types arrive dequantized to float16 and the rest are refused. Its metadata
holds the hyper-parameters, the vocabulary and the chat template. `convert` maps
these onto mlx_lm's own architecture and writes config.json (with per-module
quantization), model.safetensors, tokenizer.json, tokenizer_config.json and
generation_config.json: a folder `mlx_lm.load` and `mlx_lm.server` take.

The pool does not run this on its device thread (seconds of MLX work for a big file,
while streams wait) nor on a helper thread (MLX calls belong to the device thread):
it runs the converter, `python -m mlx_workbench.gguf`, in a subprocess, once per
file, into a cache folder keyed by the file's hash (`cached_folder`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1  # part of the cache key: a changed conversion makes new folders
ARCHITECTURES = ("llama",)  # verified here; others are refused by name
# tokenizer.ggml.pre -> what splits text before byte-level BPE (llama.cpp's llama-vocab.cpp).
GPT2_SPLIT = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
PRE_TOKENIZERS = {
    "gpt2": GPT2_SPLIT,
    "smollm": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, GPT2_SPLIT]},
}
# Control tokens that end a turn in the formats that use them (as llama.cpp also stops on them).
END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>")
CONTROL, USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values
# GGUF tensor names -> mlx_lm llama names ("{}" is the layer number).
LLAMA_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
    "blk.{}.attn_norm": "model.layers.{}.input_layernorm",
    "blk.{}.ffn_norm": "model.layers.{}.post_attention_layernorm",
    "blk.{}.attn_q": "model.layers.{}.self_attn.q_proj",
    "blk.{}.attn_k": "model.layers.{}.self_attn.k_proj",
    "blk.{}.attn_v": "model.layers.{}.self_attn.v_proj",
    "blk.{}.attn_output": "model.layers.{}.self_attn.o_proj",
    "blk.{}.ffn_gate": "model.layers.{}.mlp.gate_proj",
    "blk.{}.ffn_up": "model.layers.{}.mlp.up_proj",
    "blk.{}.ffn_down": "model.layers.{}.mlp.down_proj",
}
GROUP_SIZE = 32  # of every quantized type mx.load keeps


class GGUFError(ValueError):
    """The file is not a GGUF this converter can turn into a model; the message says why."""


def compute_dtype() -> str:
    """The dtype of the converted weights' floats (dense tensors, quantization scales
    and biases): float16 on Metal; float32 on the CPU backend, which has no native
    float16 (4-bit matmuls with float16 scales ran 30x slower there than float32)."""
    import mlx.core as mx

    return "float16" if mx.metal.is_available() else "float32"


def file_hash(path: Path) -> str:
    """sha256 of the file; remembered while its size and mtime stay (a reload of a
    multi-GB model would hash it again for seconds)."""
    stat = path.stat()
    return _sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(2**22):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    """Where converted GGUF files are kept: $MLX_WORKBENCH_CACHE, else the user's cache folder."""
    explicit = os.environ.get("MLX_WORKBENCH_CACHE")
    base = (
        Path(explicit)
        if explicit
        else Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "mlx_workbench"
    )
    return base / "gguf"


def cached_folder(src: Path, dtype: str) -> Path:
    """The folder a conversion of `src` at `dtype` goes to (existing or not)."""
    return cache_root() / f"{src.stem}-{file_hash(src)[:16]}-{dtype}-v{CONVERTER_VERSION}"


def converted(src: Path, progress: Callable[[float], None]) -> Path:
    """The mlx_lm folder of GGUF file `src` from the cache, converted first if need be
    by the converter in a subprocess (no MLX work in this process, see above; asking
    whether Metal exists is a query, not work on a stream)."""
    dtype = compute_dtype()
    dest = cached_folder(src, dtype)
    with _converting.setdefault(dest, threading.Lock()):  # two names for one file: one conversion
        if (dest / "config.json").exists():
            return dest
        cmd = [sys.executable, "-m", "mlx_workbench.gguf", str(src), str(dest), "--dtype", dtype, "--progress"]
        output = []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            for line in proc.stdout or ():  # piped: never None
                if line.startswith("progress "):
                    progress(float(line.split()[1]))
                elif line.strip():
                    output.append(line.strip())
    if proc.returncode != 0:
        raise GGUFError(
            output[-1].removeprefix("error: ") if output else f"The converter exited with {proc.returncode}."
        )
    log.info("converted %s into %s: %s", src, dest, " / ".join(output))
    return dest


_converting: dict[Path, threading.Lock] = {}


# ---- conversion (MLX) ---------------------------------------------------------


def convert(
    src: Path, dest: Path, dtype: str | None = None, progress: Callable[[float], None] = lambda fraction: None
) -> Path:
    """Write the mlx_lm folder of GGUF file `src` to `dest` (replaced whole, never
    left half written). `progress` gets fractions of the work done."""
    import mlx.core as mx

    src, dest = Path(src), Path(dest)
    dtype = dtype or compute_dtype()
    weights, meta = _read(src)
    progress(0.2)
    arch = meta.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise GGUFError(
            f"'{src.name}': GGUF architecture '{arch}' is not supported (supported: {', '.join(ARCHITECTURES)})."
        )
    config = llama_config(meta, weights)
    tensors = llama_weights(weights, config, getattr(mx, dtype))
    config["quantization"] = quantization(tensors)
    config["torch_dtype"] = dtype
    dense = [
        n for n, a in tensors.items() if a.ndim == 2 and n.endswith(".weight") and n[:-7] + ".scales" not in tensors
    ]
    if dense:
        log.warning(
            "%s: %d weight matrices are not in a quantized type MLX keeps (Q4_0, Q4_1, Q8_0): dense %s, e.g. %s",
            src.name,
            len(dense),
            dtype,
            dense[0],
        )
    progress(0.4)
    tokenizer_json, tokenizer_config, generation_config = tokenizer_files(src.name, meta)
    progress(0.5)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        mx.save_safetensors(str(tmp / "model.safetensors"), tensors, metadata={"format": "mlx"})
        progress(0.9)
        files = {
            "config.json": config,
            "tokenizer.json": tokenizer_json,
            "tokenizer_config.json": tokenizer_config,
            "generation_config.json": generation_config,
        }
        for name, content in files.items():
            (tmp / name).write_text(json.dumps(content, indent=2, ensure_ascii=False))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's folder is private
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    progress(1.0)
    return dest


def _read(src: Path) -> tuple[dict, dict]:
    import mlx.core as mx

    if not src.is_file():
        raise GGUFError(f"No GGUF file at '{src}'.")
    try:
        weights, meta = cast(tuple[dict, dict], mx.load(str(src), format="gguf", return_metadata=True))
    except (RuntimeError, ValueError) as e:
        raise GGUFError(f"'{src.name}' is not a GGUF file MLX can read: {e}{_unsupported_types(src)}") from None
    return weights, {key: value.tolist() if isinstance(value, mx.array) else value for key, value in meta.items()}


def _unsupported_types(src: Path) -> str:
    """Which tensor types stop mx.load, named by llama.cpp's own reader (the `gguf` package)."""
    from gguf import GGMLQuantizationType as T
    from gguf import GGUFReader

    readable = {T.F32, T.F16, T.Q4_0, T.Q4_1, T.Q8_0, T.Q2_K, T.Q4_K, T.Q6_K, T.BF16}
    try:
        types = {t.tensor_type.name for t in GGUFReader(src).tensors if t.tensor_type not in readable}
    except Exception:  # not GGUF at all: mx.load's message says enough
        return ""
    return f" (tensor types MLX cannot read: {', '.join(sorted(types))})" if types else ""


def llama_config(meta: dict, weights: dict) -> dict:
    arch = meta["general.architecture"]

    def get(key, default=None):
        value = meta.get(f"{arch}.{key}", default)
        if value is None:
            raise GGUFError(f"The GGUF metadata has no '{arch}.{key}'.")
        return value

    if "rope_freqs.weight" in weights or meta.get(f"{arch}.rope.scaling.type", "none") not in ("none", "linear"):
        raise GGUFError(
            "This GGUF file scales RoPE (Llama 3.1 style rope_freqs or YaRN), which the converter does not support yet."
        )
    heads = get("attention.head_count")
    hidden = get("embedding_length")
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": get("block_count"),
        "intermediate_size": get("feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": get("attention.head_count_kv", heads),
        "head_dim": get("attention.key_length", hidden // heads),
        "rms_norm_eps": float(f"{get('attention.layer_norm_rms_epsilon'):.6g}"),  # stored as float32
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "max_position_embeddings": get("context_length"),
        "vocab_size": len(meta["tokenizer.ggml.tokens"]),
        "tie_word_embeddings": "output.weight" not in weights,
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
    }
    if meta.get(f"{arch}.rope.scaling.type") == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": float(get("rope.scaling.factor"))}
    return config


def llama_weights(weights: dict, config: dict, dtype) -> dict:
    """GGUF tensors under mlx_lm's names, Q and K rows back in Hugging Face's order,
    every float (dense weights, scales, biases) in `dtype`; packed integers as they are."""
    import mlx.core as mx

    names = {
        gguf.format(i): mlx.format(i)
        for gguf, mlx in LLAMA_NAMES.items()
        for i in range(config["num_hidden_layers"] if "{}" in gguf else 1)
    }
    heads = {"q_proj": config["num_attention_heads"], "k_proj": config["num_key_value_heads"]}
    out = {}
    for name, array in weights.items():
        module, _, kind = name.rpartition(".")
        if module not in names:
            raise GGUFError(f"Unexpected tensor '{name}' in a llama GGUF file.")
        target = names[module]
        n_heads = heads.get(target.rsplit(".", 1)[-1])
        if n_heads:
            array = unpermute_rows(array, n_heads)
        out[f"{target}.{kind}"] = array if array.dtype in (mx.uint32, mx.uint8) else array.astype(dtype)
    return out


def unpermute_rows(array, n_heads: int):
    """llama.cpp's converter reorders the rows of each Q and K head from Hugging Face's
    rotate-half RoPE layout, (2, head_dim/2), to adjacent pairs, (head_dim/2, 2); this
    moves them back. Whole rows move, so it applies alike to dense weights and to
    packed quantized weights, scales and biases (quantized along the row)."""
    rows, rest = array.shape[0], array.shape[1:]
    return array.reshape(n_heads, rows // n_heads // 2, 2, *rest).swapaxes(1, 2).reshape(rows, *rest)


def quantization(tensors: dict) -> dict | None:
    """config.json's "quantization": the most common bits as the default, every
    module that differs named with its own (token_embd is often Q8_0 next to Q4)."""
    bits = {}
    for name, scales in tensors.items():
        if name.endswith(".scales"):
            module = name.removesuffix(".scales")
            bits[module] = tensors[f"{module}.weight"].shape[-1] * 32 // (scales.shape[-1] * GROUP_SIZE)
    if not bits:
        return None
    common = max(set(bits.values()), key=list(bits.values()).count)
    return {
        "group_size": GROUP_SIZE,
        "bits": common,
        **{m: {"group_size": GROUP_SIZE, "bits": b} for m, b in sorted(bits.items()) if b != common},
    }


# ---- tokenizer (no MLX) ---------------------------------------------------------


def tokenizer_files(name: str, meta: dict) -> tuple[dict, dict, dict]:
    """tokenizer.json, tokenizer_config.json and generation_config.json from the
    GGUF vocabulary: byte-level BPE ("gpt2") with a known pre-tokenizer."""
    kind, pre = meta.get("tokenizer.ggml.model"), meta.get("tokenizer.ggml.pre", "gpt2")
    if kind != "gpt2":
        what = "a SentencePiece vocabulary ('llama')" if kind == "llama" else f"tokenizer model '{kind}'"
        raise GGUFError(f"'{name}' has {what}; the converter reads byte-level BPE vocabularies ('gpt2') only.")
    if pre not in PRE_TOKENIZERS:
        raise GGUFError(
            f"'{name}' splits text with pre-tokenizer '{pre}', which the converter does not know "
            f"(known: {', '.join(PRE_TOKENIZERS)})."
        )
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)

    def token(key: str) -> str | None:
        i = meta.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[i] if i is not None and 0 <= i < len(tokens) else None

    bos, eos = token("bos"), token("eos")
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False)) and bos is not None
    tokenizer_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": types[i] != CONTROL,
                "special": types[i] == CONTROL,
            }
            for i, t in enumerate(tokens)
            if types[i] in (CONTROL, USER_DEFINED)
        ],
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[pre],
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": bos, "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {bos: {"id": bos, "ids": [tokens.index(bos)], "tokens": [bos]}},
        }
        if add_bos
        else None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ", 1) for m in meta.get("tokenizer.ggml.merges", [])],
        },
    }
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": token("padding") or eos,
        "unk_token": token("unknown"),
        "add_bos_token": add_bos,
        "clean_up_tokenization_spaces": False,
        "model_max_length": meta.get(f"{meta.get('general.architecture')}.context_length", 2048),
    }
    if meta.get("tokenizer.chat_template"):
        tokenizer_config["chat_template"] = meta["tokenizer.chat_template"]
    stop = {
        meta[f"tokenizer.ggml.{key}_token_id"]
        for key in ("eos", "eot", "eom")
        if meta.get(f"tokenizer.ggml.{key}_token_id") is not None
    }
    stop |= {i for i, t in enumerate(tokens) if types[i] == CONTROL and t in END_OF_TURN}
    generation_config = {"bos_token_id": meta.get("tokenizer.ggml.bos_token_id"), "eos_token_id": sorted(stop)}
    return tokenizer_json, tokenizer_config, generation_config

"""The inline completion prompt per fill-in-the-middle convention, on real tokenizers
built locally with each family's FIM tokens (as their tokenizer files spell them) and
loaded by mlx_lm; a vocabulary without a whole set gets the plain prefix prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from family_tokenizers import CORPUS
from mlx_lm.utils import load_tokenizer
from tiny_model import train_bpe
from tokenizers import processors

from mlx_workbench.engine.infill import SUFFIX_SHARE, fim_tokens, infill_tokens
from mlx_workbench.engine.requests import Infill

# Each convention's markers, BOS and EOS as the models' tokenizer files name them
# (Qwen2.5-Coder, StarCoder2, CodeLlama, DeepSeek-Coder), and the prompt their model cards write.
CONVENTIONS = {
    "qwen2.5-coder": {
        "specials": ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>"],
        "bos": None,
        "eos": "<|endoftext|>",
        "format": "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>",
    },
    "starcoder": {
        "specials": ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"],
        "bos": "<|endoftext|>",  # StarCoder2's bos_token, which its tokenizer does not add
        "eos": "<|endoftext|>",
        "format": "<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>",
    },
    "codellama": {
        "specials": ["<unk>", "<s>", "</s>", "▁<PRE>", "▁<MID>", "▁<SUF>", "▁<EOT>"],
        "bos": "<s>",
        "adds_bos": True,
        "eos": "</s>",
        "format": "<s>▁<PRE>{prefix}▁<SUF>{suffix}▁<MID>",
    },
    "deepseek-coder": {
        "specials": [
            "<｜begin▁of▁sentence｜>",
            "<｜end▁of▁sentence｜>",
            "<｜fim▁hole｜>",
            "<｜fim▁begin｜>",
            "<｜fim▁end｜>",
        ],
        "bos": "<｜begin▁of▁sentence｜>",
        "adds_bos": True,
        "eos": "<｜end▁of▁sentence｜>",
        "format": "<｜begin▁of▁sentence｜><｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>",
    },
    # A chat model's vocabulary: no FIM tokens.
    "plain": {
        "specials": ["<|begin_of_text|>", "<|eot_id|>"],
        "bos": "<|begin_of_text|>",
        "adds_bos": True,
        "eos": "<|eot_id|>",
    },
    # Half a convention is none.
    "partial": {"specials": ["<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>"], "bos": None, "eos": "<|endoftext|>"},
}

CODE = [
    "import math\n\ndef area(r):\n    return math.pi * r ** 2\n",
    "The quick brown fox. Count to five: 1, 2, 3, 4, 5.\n" * 3,
]
PREFIX = "def double(x):\n    return "
SUFFIX = "\n\nprint(double(21))\n"


def build_tokenizer(path: Path, name: str):
    spec = CONVENTIONS[name]
    bpe = train_bpe(CORPUS + CODE, 500, spec["specials"])
    if spec.get("adds_bos"):  # as the family's tokenizer.json does, with a template post-processor
        bos = spec["bos"]
        bpe.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, bpe.token_to_id(bos))]
        )
    bpe.save(str(path / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": spec["eos"]}
    if spec["bos"]:
        config["bos_token"] = spec["bos"]
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = load_tokenizer(path)
    if name == "starcoder":  # StarCoder2's tokenizer adds no BOS: checked, not assumed
        assert tokenizer.encode("a")[0] != tokenizer.bos_token_id
    return tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    built = {}

    def make(name: str):
        if name not in built:
            built[name] = build_tokenizer(tmp_path_factory.mktemp(name), name)
        return built[name]

    return make


def decode(tokenizer, ids: list[int]) -> str:
    return tokenizer._tokenizer.decode(ids, skip_special_tokens=False)


@pytest.mark.parametrize("name", ["qwen2.5-coder", "starcoder", "codellama", "deepseek-coder"])
def test_each_convention_frames_prefix_and_suffix_with_its_own_tokens(tokenizer, name):
    tok = tokenizer(name)
    markers = fim_tokens(tok)
    assert markers is not None and markers.convention == name
    ids = infill_tokens(tok, Infill(PREFIX, SUFFIX), room=None)
    assert decode(tok, ids) == CONVENTIONS[name]["format"].format(prefix=PREFIX, suffix=SUFFIX)
    # The markers are the special tokens themselves, each once, the text's own tokens between them.
    at = {m: ids.index(m) for m in (markers.prefix, markers.suffix, markers.middle)}
    assert all(ids.count(m) == 1 for m in at)
    assert ids[at[markers.prefix] + 1 : at[markers.suffix]] == tok.encode(PREFIX, add_special_tokens=False)
    assert ids[at[markers.suffix] + 1 : at[markers.middle]] == tok.encode(SUFFIX, add_special_tokens=False)
    assert ids[-1] == markers.middle  # the model writes the middle next


@pytest.mark.parametrize("name", ["plain", "partial"])
def test_without_a_whole_convention_the_prompt_is_the_prefix(tokenizer, name):
    tok = tokenizer(name)
    assert fim_tokens(tok) is None
    ids = infill_tokens(tok, Infill(PREFIX, SUFFIX), room=None)
    assert ids == tok.encode(PREFIX)  # as a text completion of the prefix reads it, BOS included
    assert decode(tok, ids) == (CONVENTIONS[name]["bos"] if CONVENTIONS[name].get("adds_bos") else "") + PREFIX


@pytest.mark.parametrize("name", ["qwen2.5-coder", "codellama", "plain"])
def test_trimmed_to_the_room_keeping_the_code_nearest_the_cursor(tokenizer, name):
    tok = tokenizer(name)
    long_prefix = "x = 1\n" * 200 + PREFIX
    long_suffix = SUFFIX + "y = 2\n" * 200
    full = infill_tokens(tok, Infill(long_prefix, long_suffix), room=None)
    room = 60
    ids = infill_tokens(tok, Infill(long_prefix, long_suffix), room=room)
    assert len(full) > room and len(ids) == room
    prefix_ids = tok.encode(long_prefix, add_special_tokens=False)
    markers = fim_tokens(tok)
    if markers is None:
        assert ids[-(room - 1) :] == prefix_ids[-(room - 1) :] and decode(tok, ids).endswith(PREFIX)
        return
    kept_prefix = ids[ids.index(markers.prefix) + 1 : ids.index(markers.suffix)]
    kept_suffix = ids[ids.index(markers.suffix) + 1 : ids.index(markers.middle)]
    assert kept_prefix == prefix_ids[-len(kept_prefix) :]  # the end of the prefix, up to the cursor
    assert kept_suffix == tok.encode(long_suffix, add_special_tokens=False)[: len(kept_suffix)]  # its start
    assert 0 < len(kept_suffix) <= room // SUFFIX_SHARE < len(kept_prefix)


def test_no_room_leaves_the_markers_only(tokenizer):
    tok = tokenizer("qwen2.5-coder")
    markers = fim_tokens(tok)
    assert markers is not None
    assert infill_tokens(tok, Infill(PREFIX, SUFFIX), room=3) == [markers.prefix, markers.suffix, markers.middle]

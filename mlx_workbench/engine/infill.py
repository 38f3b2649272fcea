"""Code completion at a cursor: the prompt of an `Infill` as token ids.

A model trained for fill-in-the-middle has three special tokens that frame the code
before the cursor, the code after it, and the place to fill; which three (and their
order) is a convention of its family. The convention is read from the tokenizer's own
vocabulary, never assumed: a model without such tokens gets the code before the
cursor as a plain prompt. The pieces are tokenized apart and joined as ids, so that
the markers are the model's special tokens whatever the text holds, and the prompt
is trimmed to the context left: the code nearest the cursor is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidForModel
from .requests import Infill


@dataclass(frozen=True)
class FimConvention:
    """One family's fill-in-the-middle markers, as the vocabulary spells them."""

    name: str
    prefix: tuple[str, ...]  # spellings of the marker before the prefix, first found wins
    suffix: tuple[str, ...]
    middle: tuple[str, ...]


# Prefix-suffix-middle order for all of them, as each family's model card writes its prompt.
CONVENTIONS = (
    FimConvention("qwen2.5-coder", ("<|fim_prefix|>",), ("<|fim_suffix|>",), ("<|fim_middle|>",)),
    FimConvention(
        "starcoder",
        ("<fim_prefix>", "<fim-prefix>"),
        ("<fim_suffix>", "<fim-suffix>"),
        ("<fim_middle>", "<fim-middle>"),
    ),
    # SentencePiece vocabularies hold these with the word-start mark: "▁<PRE>".
    FimConvention("codellama", ("▁<PRE>", "<PRE>"), ("▁<SUF>", "<SUF>"), ("▁<MID>", "<MID>")),
    FimConvention("deepseek-coder", ("<｜fim▁begin｜>",), ("<｜fim▁hole｜>",), ("<｜fim▁end｜>",)),
)

SUFFIX_SHARE = 4  # the code after the cursor gets at most 1/SUFFIX_SHARE of the prompt's room


@dataclass(frozen=True)
class FimTokens:
    convention: str
    prefix: int
    suffix: int
    middle: int


def fim_tokens(tokenizer) -> FimTokens | None:
    """The fill-in-the-middle markers of `tokenizer` (an mlx_lm or Hugging Face
    tokenizer), if its vocabulary has a whole set of one convention."""
    vocab = tokenizer.get_vocab()
    for convention in CONVENTIONS:
        ids = [next((vocab[s] for s in spellings if s in vocab), None) for spellings in _markers(convention)]
        if None not in ids:
            prefix, suffix, middle = ids
            return FimTokens(convention.name, prefix, suffix, middle)  # type: ignore[arg-type]  (None excluded above)
    return None


def _markers(convention: FimConvention) -> tuple[tuple[str, ...], ...]:
    return convention.prefix, convention.suffix, convention.middle


def infill_tokens(tokenizer, infill: Infill, room: int | None) -> list[int]:
    """The prompt's ids, at most `room` of them (None: no limit): the end of the
    prefix and the start of the suffix are kept."""
    head = _bos(tokenizer)
    markers = fim_tokens(tokenizer)
    prefix = tokenizer.encode(infill.prefix, add_special_tokens=False)
    if markers is None:
        if not (head or prefix):
            raise InvalidForModel(
                "Nothing to complete: the code before the cursor is empty, and this model has neither "
                "fill-in-the-middle tokens nor a BOS token to start from.",
                param="prefix",
            )
        return head + _tail(prefix, None if room is None else room - len(head))
    suffix = tokenizer.encode(infill.suffix, add_special_tokens=False) if infill.suffix else []
    if room is not None:
        room -= len(head) + 3
        suffix = suffix[: min(len(suffix), room // SUFFIX_SHARE)]
        room -= len(suffix)
    return head + [markers.prefix] + _tail(prefix, room) + [markers.suffix] + suffix + [markers.middle]


def _tail(tokens: list[int], room: int | None) -> list[int]:
    if room is None:
        return tokens
    return tokens[len(tokens) - max(room, 0) :]


def _bos(tokenizer) -> list[int]:
    """The BOS the tokenizer puts before a text, if it puts one (CodeLlama and
    DeepSeek-Coder do, Qwen and StarCoder2 do not)."""
    bos = tokenizer.bos_token_id
    added = tokenizer.encode("a", add_special_tokens=True)
    return [bos] if bos is not None and added and added[0] == bos else []

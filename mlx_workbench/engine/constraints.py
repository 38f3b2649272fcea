"""Constrained decoding: a request's output format as an llguidance grammar, enforced
token by token with a mask on the logits of each of its choices.

llguidance (used by vLLM and llama.cpp for the same job) compiles JSON schemas, regular
expressions and Lark grammars against the model's own vocabulary, and refuses schema
features it cannot enforce, so that nothing is silently loosened. Each choice owns a
matcher (grammar state); `batch_masks.py` advances it by each token sampled and masks the
whole batch's logits in one step.
"""

from __future__ import annotations

import json
import weakref
from functools import lru_cache
from typing import TYPE_CHECKING

import llguidance
import llguidance.hf

from .errors import InvalidRequest
from .requests import Constraint
from .tool_calls import ToolSyntax

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions

# JSON with fixed separators and no free whitespace: a small model left free to put
# whitespace anywhere can loop in it, and the text is the same JSON.
_JSON_OPTIONS: JsonCompileOptions = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_tokenizers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def grammar_of(constraint: Constraint, syntax: ToolSyntax) -> str:
    """The llguidance grammar of `constraint` (unchecked: see `matcher_factory`); forced
    tool calls are written in `syntax`, the model family's."""
    kind, value = constraint.kind, constraint.value
    if kind == "tool_calls":
        body = {**syntax.call_schema(value["functions"]), "x-guidance": _JSON_OPTIONS}
        return llguidance.LLMatcher.grammar_from_lark(
            f"{syntax.lark_frame(value['parallel'])}body: %json {json.dumps(body)}"
        )
    if kind == "json_object":
        return llguidance.LLMatcher.grammar_from_json_schema({"type": "object"}, overrides=_JSON_OPTIONS)
    if kind == "json_schema":
        return llguidance.LLMatcher.grammar_from_json_schema(value, overrides=_JSON_OPTIONS)
    if kind == "regex":
        return llguidance.LLMatcher.grammar_from_regex(value)
    if kind == "choice":
        return llguidance.LLMatcher.grammar_from_lark("start: " + " | ".join(json.dumps(c) for c in value))
    return llguidance.LLMatcher.grammar_from_lark(value)


def grammar_tokenizer(tokenizer, vocab_size: int, stop_ids: list[int]) -> llguidance.LLTokenizer:
    """llguidance's view of a model's vocabulary: built once per tokenizer (10 ms for the
    demo's, ~0.2 s for a 49k one); the mask is as wide as the logits, and every stop id
    ends a grammar, the first being the one the mask allows at the end."""
    built = _tokenizers.get(tokenizer)
    if built is None:
        built = _tokenizers[tokenizer] = llguidance.hf.from_tokenizer(
            tokenizer._tokenizer, n_vocab=vocab_size, eos_token=list(stop_ids)
        )
    return built


class MatcherFactory:
    """Fresh matchers for one grammar over one vocabulary (a copy of a checked template)."""

    def __init__(self, tokenizer: llguidance.LLTokenizer, grammar: str, param: str):
        self._template = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if self._template.is_error():
            raise InvalidRequest(f"{param} cannot be enforced: {self._template.get_error()}", param=param)

    def new(self) -> llguidance.LLMatcher:
        return self._template.deep_copy()


@lru_cache(maxsize=64)
def _factory(tokenizer: llguidance.LLTokenizer, grammar: str, param: str) -> MatcherFactory:
    return MatcherFactory(tokenizer, grammar, param)


def matcher_factory(constraint: Constraint, tokenizer: llguidance.LLTokenizer, syntax: ToolSyntax) -> MatcherFactory:
    """Raises InvalidRequest naming what cannot be enforced (an unsupported schema keyword,
    a regex or grammar that does not parse)."""
    try:
        grammar = grammar_of(constraint, syntax)
    except ValueError as e:  # not a JSON object, for instance
        raise InvalidRequest(f"{constraint.param} cannot be enforced: {e}", param=constraint.param) from None
    return _factory(tokenizer, grammar, constraint.param)

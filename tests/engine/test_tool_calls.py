"""Tool calls in each family's syntax: parsed from text in any pieces, written into prompts by
a template that renders tools or, for one that ignores them, as text; and the grammar of a
forced call, compiled by llguidance, accepting exactly the calls that validate."""

from __future__ import annotations

import json
import random

import llguidance
import llguidance.hf
import pytest

from mlx_workbench.engine.constraints import grammar_of
from mlx_workbench.engine.families import detect_family
from mlx_workbench.engine.requests import Constraint
from mlx_workbench.engine.tool_calls import SYNTAXES, CallArguments, CallStarted, ToolCallParser

CALLS = [
    {"name": "get_weather", "arguments": {"city": 'Paris "}{', "days": [1, 2]}},
    {"name": "add", "arguments": {"a": 1, "b": -2}},
]
ADD = {
    "type": "object",
    "properties": {"a": {"type": "integer", "maximum": 9}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}


def parsed(parser: ToolCallParser) -> tuple[str, list[tuple[str, dict]]]:
    return parser.content, [(c.name, json.loads(c.arguments)) for c in parser.calls]


@pytest.mark.parametrize("syntax", SYNTAXES.values(), ids=SYNTAXES.keys())
def test_calls_parse_the_same_from_any_pieces(syntax):
    text = "Let me see. " + syntax.write(CALLS)
    whole = ToolCallParser(syntax)
    whole.feed(text)
    whole.finish()
    assert parsed(whole) == ("Let me see. ", [(c["name"], c["arguments"]) for c in CALLS])
    for seed in range(50):
        pieces, rng, at = ToolCallParser(syntax), random.Random(seed), 0
        reported = []
        while at < len(text):
            step = rng.randint(1, 6)
            reported += pieces.feed(text[at : at + step])
            at += step
        reported += pieces.finish()
        assert parsed(pieces) == parsed(whole)
        # What a stream reports adds up to the calls: ids and names first, then the arguments.
        assert "".join(p for p in reported if isinstance(p, str)) == "Let me see. "
        starts = [p for p in reported if isinstance(p, CallStarted)]
        assert [(s.id, s.name) for s in starts] == [(c.id, c.name) for c in pieces.calls]
        for i, call in enumerate(pieces.calls):
            assert "".join(p.text for p in reported if isinstance(p, CallArguments) and p.index == i) == call.arguments


def test_text_that_may_begin_a_call_waits():
    parser = ToolCallParser(SYNTAXES["hermes"])
    assert parser.feed("Hi <tool") == ["Hi "]
    assert parser.feed("s are handy") == ["<tools are handy"]
    assert parser.finish() == [] and not parser.calls


def test_text_only_is_content():
    parser = ToolCallParser(SYNTAXES["llama3_json"])
    assert parser.feed("Paris. {") == ["Paris. "]
    assert parser.finish() == ["{"] and parser.content == "Paris. {" and not parser.calls


def test_arguments_before_the_name_and_a_limit_of_one_call():
    parser = ToolCallParser(SYNTAXES["hermes"], max_calls=1)
    parser.feed('<tool_call>\n{"arguments": {"a": 1}, "name": "add"}\n</tool_call>\n<tool_call>\n{"name": "x"')
    parser.finish()
    assert [(c.name, json.loads(c.arguments)) for c in parser.calls] == [("add", {"a": 1})]


def test_a_template_without_tools_gets_them_as_text_in_the_familys_syntax(family_tokenizer):
    tokenizer, config = family_tokenizer("llama3")
    family = detect_family(config, tokenizer)
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
    messages = [
        {"role": "user", "content": "1 + 2?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
    ]
    tools = [{"type": "function", "function": {"name": "add", "parameters": ADD}}]
    text = tokenizer.decode(family.render(tokenizer, messages, tools))
    assert "<|start_header_id|>system<|end_header_id|>\n\nYou can call these functions:\n" in text
    assert json.dumps(tools[0]["function"]) in text
    assert '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "add", "parameters": {"a": 1, "b": 2}}' in text
    assert "<|start_header_id|>ipython<|end_header_id|>\n\n3<|eot_id|>" in text


def test_a_template_with_tools_renders_them_itself(family_tokenizer):
    tokenizer, config = family_tokenizer("chatml-tools")
    family = detect_family(config, tokenizer)
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
    messages = [
        {"role": "user", "content": "1 + 2?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
    ]
    tools = [{"type": "function", "function": {"name": "add", "parameters": ADD}}]
    text = tokenizer.decode(family.render(tokenizer, messages, tools))
    assert text.startswith("<|im_start|>system\n# Tools\n<tools>\n") and "You can call" not in text
    assert '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>' in text
    assert "<tool_response>\n3\n</tool_response>" in text


def accepts(grammar: str, tokenizer, text: str) -> bool:
    matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    return all(matcher.consume_token(t) for t in tokenizer.tokenize_str(text)) and matcher.is_accepting()


@pytest.mark.parametrize("syntax", SYNTAXES.values(), ids=SYNTAXES.keys())
def test_a_forced_calls_grammar_takes_valid_calls_only(family_tokenizer, syntax):
    tokenizer, config = family_tokenizer("chatml")
    vocabulary = llguidance.hf.from_tokenizer(tokenizer._tokenizer, n_vocab=config["vocab_size"])
    one = {"functions": [{"name": "add", "parameters": ADD}], "parallel": False}
    grammar = grammar_of(Constraint("tool_calls", one), syntax)
    add = {"name": "add", "arguments": {"a": 1, "b": 2}}
    assert accepts(grammar, vocabulary, syntax.write([add]))
    assert not accepts(grammar, vocabulary, syntax.write([add, add]))  # one call
    assert not accepts(grammar, vocabulary, syntax.write([{"name": "add", "arguments": {"a": 10, "b": 2}}]))
    assert not accepts(grammar, vocabulary, syntax.write([{"name": "sub", "arguments": {"a": 1, "b": 2}}]))
    several = grammar_of(Constraint("tool_calls", {**one, "parallel": True}), syntax)
    assert accepts(several, vocabulary, syntax.write([add, add]))

"""Tool calls in a model family's own syntax: written (a call in a chat's history, the tools
described to a model whose template ignores them), enforced (the Lark frame of a forced call,
whose JSON body `constraints.py` compiles) and read back from generated text, a piece at a
time, so that a stream can send a call's arguments as they are generated.

Plain Python, no MLX: the api parses answers with it, and the engine renders prompts.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

# A call object's head, its name first, up to its arguments' first character:
# {"name": "...", "arguments": (Llama 3.x says "parameters")
_HEAD = re.compile(r'\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"(?:arguments|parameters)"\s*:\s*(?=\S)')
_VALUE_DELIMITERS = ",}] \t\r\n"


@dataclass(frozen=True)
class ToolSyntax:
    """How a family writes calls: `opening` call_open {JSON} call_close (`separator` ...) `closing`.
    A call starts where `start` appears in free text; a tool's result comes back as a
    `result_role` message wrapped in `result_open` ... `result_close`."""

    name: str
    start: str
    args_key: str = "arguments"
    opening: str = ""
    call_open: str = ""
    call_close: str = ""
    separator: str = "\n"
    closing: str = ""
    result_role: str = "user"
    result_open: str = ""
    result_close: str = ""

    def write(self, calls: list[dict]) -> str:
        """`calls` ({"name", "arguments": dict}) as the model would have written them."""
        bodies = [json.dumps({"name": c["name"], self.args_key: c["arguments"]}) for c in calls]
        return self.opening + self.separator.join(self.call_open + b + self.call_close for b in bodies) + self.closing

    def instructions(self, functions: list[dict]) -> str:
        """The system text that describes `functions` to a model whose template ignores tools."""
        example = self.write([{"name": "function_name", "arguments": {"argument": "value"}}])
        listed = "\n".join(json.dumps(f) for f in functions)
        return f"You can call these functions:\n{listed}\nTo call functions, answer with:\n{example}"

    def call_schema(self, functions: list[dict]) -> dict:
        """The JSON Schema of one call's body: one of `functions` ({"name", "parameters"}), its
        name first, its arguments validating against the function's parameters."""
        bodies = [
            {
                "type": "object",
                "properties": {"name": {"const": f["name"]}, self.args_key: f["parameters"]},
                "required": ["name", self.args_key],
                "additionalProperties": False,
            }
            for f in functions
        ]
        return bodies[0] if len(bodies) == 1 else {"anyOf": bodies}

    def lark_frame(self, parallel: bool) -> str:
        """Lark rules of the calls around `body` (the call's JSON, defined by the caller)."""
        call = " ".join([*_literal(self.call_open), "body", *_literal(self.call_close)])
        calls = f"call ({' '.join(_literal(self.separator))} call)*" if parallel else "call"
        return f"start: {' '.join([*_literal(self.opening), calls, *_literal(self.closing)])}\ncall: {call}\n"


def _literal(text: str) -> list[str]:
    return [json.dumps(text)] if text else []


LLAMA3_JSON = ToolSyntax(
    name="llama3_json", start='{"name"', args_key="parameters", separator="; ", result_role="ipython"
)
HERMES = ToolSyntax(
    name="hermes",
    start="<tool_call>",
    call_open="<tool_call>\n",
    call_close="\n</tool_call>",
    result_open="<tool_response>\n",
    result_close="\n</tool_response>",
)
MISTRAL_TOOLS = ToolSyntax(
    name="mistral",
    start="[TOOL_CALLS]",
    opening="[TOOL_CALLS][",
    separator=", ",
    closing="]",
    result_open="[TOOL_RESULTS]",
    result_close="[/TOOL_RESULTS]",
)
SYNTAXES = {s.name: s for s in (LLAMA3_JSON, HERMES, MISTRAL_TOOLS)}


# ---- reading calls back --------------------------------------------------------------


@dataclass
class ToolCall:
    name: str
    arguments: str = ""  # the JSON text of the arguments, as generated
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")


@dataclass
class CallStarted:
    """Call `index` begins: its id and name are known."""

    index: int
    id: str
    name: str


@dataclass
class CallArguments:
    """More of call `index`'s arguments (JSON text)."""

    index: int
    text: str


ParsedPiece = str | CallStarted | CallArguments  # a str is content


class ToolCallParser:
    """Splits one choice's text into content and tool calls as it grows. Text before the
    first call is content; from there on everything is calls (`max_calls` at most).
    Feeding the text in any pieces yields the same content and calls."""

    def __init__(self, syntax: ToolSyntax, max_calls: int | None = None):
        self.syntax = syntax
        self.max_calls = max_calls
        self.text = ""
        self.content = ""
        self.calls: list[ToolCall] = []
        self._pos = 0  # text before this is parsed
        self._in_calls = False
        self._call_at: int | None = None  # where the call being read starts
        self._sent = 0  # its arguments' text up to here has been reported

    def feed(self, text: str) -> list[ParsedPiece]:
        self.text += text
        return self._advance(final=False)

    def finish(self) -> list[ParsedPiece]:
        return self._advance(final=True)

    def _advance(self, final: bool) -> list[ParsedPiece]:
        pieces: list[ParsedPiece] = []
        if not self._in_calls:
            at = self.text.find(self.syntax.start, self._pos)
            end = at if at >= 0 else len(self.text) if final else self._safe_end()
            if end > self._pos:
                content = self.text[self._pos : end]
                pieces.append(content)
                self.content += content
                self._pos = end
            if at < 0:
                return pieces
            self._in_calls = True
        while self.max_calls is None or len(self.calls) < self.max_calls or self._call_at is not None:
            if self._call_at is None:
                at = self.text.find("{", self._pos)
                if at < 0:
                    break
                self._call_at = self._pos = at
            if not self._read_call(pieces):
                break
        return pieces

    def _safe_end(self) -> int:
        """The end of the text that cannot be the beginning of a call's start marker."""
        start = self.syntax.start
        for keep in range(min(len(start) - 1, len(self.text) - self._pos), 0, -1):
            if self.text.endswith(start[:keep]):
                return len(self.text) - keep
        return len(self.text)

    def _read_call(self, pieces: list[ParsedPiece]) -> bool:
        """Reads the call at `_call_at` as far as the text goes; True once it is complete."""
        at = self._call_at
        assert at is not None
        head = _HEAD.match(self.text, at)
        if head is None:  # another key order, or not a call at all: wait for the whole object
            end = _value_end(self.text, at)
            if end is None:
                return False
            self._whole_object(self.text[at:end], pieces)
            return self._next_call(end)
        if self._sent < head.end():  # the head has just been read
            self.calls.append(ToolCall(name=json.loads(head.group(1))))
            index = len(self.calls) - 1
            pieces.append(CallStarted(index, self.calls[index].id, self.calls[index].name))
            self._sent = head.end()
        end = _value_end(self.text, head.end())
        upto = len(self.text) if end is None else end
        if upto > self._sent:
            fragment = self.text[self._sent : upto]
            self.calls[-1].arguments += fragment
            pieces.append(CallArguments(len(self.calls) - 1, fragment))
            self._sent = upto
        if end is None:
            return False
        object_end = _value_end(self.text, at)  # past any further keys and the closing brace
        return object_end is not None and self._next_call(object_end)

    def _whole_object(self, text: str, pieces: list[ParsedPiece]) -> None:
        try:
            body = json.loads(text)
        except ValueError:
            return
        arguments = body.get("arguments", body.get("parameters")) if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or arguments is None:
            return
        call = ToolCall(name=body["name"], arguments=json.dumps(arguments))
        self.calls.append(call)
        pieces += [
            CallStarted(len(self.calls) - 1, call.id, call.name),
            CallArguments(len(self.calls) - 1, call.arguments),
        ]

    def _next_call(self, end: int) -> bool:
        self._pos, self._call_at, self._sent = end, None, 0
        return True


def _value_end(text: str, at: int) -> int | None:
    """The end of the JSON value at `at` (after whitespace), or None if the text stops first."""
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    if at >= len(text):
        return None
    if text[at] not in '{["':
        while at < len(text) and text[at] not in _VALUE_DELIMITERS:
            at += 1
        return at if at < len(text) else None
    depth, in_string, escaped = 0, False, False
    for i in range(at, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
                if depth == 0:
                    return i + 1
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None

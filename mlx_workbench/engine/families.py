"""Chat format and stop tokens per model family.

A model's own chat template (tokenizer_config.json / chat_template.jinja) always
wins; a family's standard template is the fallback for tokenizers shipped
without one. The family is told by the chat format actually in use (template
text, then special tokens), and only then by config.json's model_type: a Llama
checkpoint fine-tuned on ChatML speaks ChatML.

Tools, and the tool calls and results of a chat's history, go to the template as
Hugging Face's templates take them; a template that ignores tools gets them as text
in the family's tool syntax instead (`tool_calls.py`): described in the system
message, calls written into the assistant's turns, results as messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from jinja2 import TemplateError, TemplateSyntaxError

from .errors import ChatTemplateFailed, InvalidForModel, InvalidRequest
from .requests import TEXT_ONLY
from .tool_calls import HERMES, LLAMA3_JSON, MISTRAL_TOOLS, ToolSyntax

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Family:
    name: str
    marker: str | None  # a special token only this family's chat format uses
    model_types: tuple[str, ...]  # prefixes of config.json model_type / architectures
    stop_tokens: tuple[str, ...]  # the family's end-of-turn and end-of-text tokens
    template: str | None  # Jinja, used when the tokenizer has no chat template
    system_role: bool = True  # False: the standard template folds system text into the next user turn
    tool_syntax: ToolSyntax = HERMES  # how the family's models write tool calls

    def render(self, tokenizer, messages: list, tools: list[dict] | None = None) -> list[int]:
        """Prompt token ids for a chat, ending with the assistant's generation prompt;
        `tools` are OpenAI function tools."""
        messages = validate_messages(messages)
        if not tokenizer.has_chat_template:
            if self.template is None:
                raise InvalidForModel(
                    "This model has no chat template, so it cannot be used for chat; "
                    "send a plain prompt to /v1/completions instead.",
                    param="messages",
                )
            messages = self._tools_as_text(messages, tools)
            if not self.system_role:
                messages = _fold_system(messages)
            return _apply_template(tokenizer, messages, chat_template=self.template)
        kwargs = {}
        if tools and _renders_tools(tokenizer):
            kwargs["tools"] = tools
        elif tools or any(m["role"] == "tool" or "tool_calls" in m for m in messages):
            messages = self._tools_as_text(messages, tools)
        try:
            return _apply_template(tokenizer, messages, **kwargs)
        except InvalidRequest:
            # Some templates (Gemma 1-2, Mistral v1-2) refuse a system role: give
            # its text to the first user turn, as Gemma 3's template does itself.
            folded = _fold_system(messages)
            if folded == messages:
                raise
            return _apply_template(tokenizer, folded, **kwargs)

    def _tools_as_text(self, messages: list[dict], tools: list[dict] | None) -> list[dict]:
        """A chat with tools for a template that knows none: plain text messages."""
        syntax, text = self.tool_syntax, []
        for m in messages:
            if m["role"] == "tool":
                content = syntax.result_open + m["content"] + syntax.result_close
                text.append({"role": syntax.result_role, "content": content})
            elif "tool_calls" in m:
                calls = syntax.write([c["function"] for c in m["tool_calls"]])
                text.append({"role": "assistant", "content": "\n".join(filter(None, [m["content"], calls]))})
            else:
                text.append(m)
        if not tools:
            return text
        described = syntax.instructions([t["function"] for t in tools])
        if text[0]["role"] == "system":
            return [{"role": "system", "content": text[0]["content"] + "\n\n" + described}, *text[1:]]
        return [{"role": "system", "content": described}, *text]

    def stop_token_ids(self, tokenizer, generation_config: dict, config: dict) -> set[int]:
        """Every id that ends an answer: the family's own plus all declared eos ids."""
        vocab = tokenizer.get_vocab()
        ids = {vocab[t] for t in self.stop_tokens if t in vocab}
        ids |= set(tokenizer.eos_token_ids)
        for source in (generation_config, config, config.get("text_config") or {}):
            eos = source.get("eos_token_id")
            ids |= set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        return ids


LLAMA3 = Family(
    name="llama3",
    marker="<|start_header_id|>",
    model_types=(),  # model_type "llama" also covers Llama 2, Mistral-likes, ...: not a signature
    stop_tokens=("<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"),
    tool_syntax=LLAMA3_JSON,
    template=(
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
        "{{ m.content | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
    ),
)
CHATML = Family(
    name="chatml",
    marker="<|im_start|>",
    model_types=("qwen",),
    stop_tokens=("<|im_end|>", "<|endoftext|>"),
    template=(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
)
GEMMA = Family(
    name="gemma",
    marker="<start_of_turn>",
    model_types=("gemma",),
    stop_tokens=("<end_of_turn>", "<eos>"),
    template=(
        "{{ bos_token }}{% for m in messages %}<start_of_turn>"
        "{{ 'model' if m.role == 'assistant' else m.role }}\n{{ m.content | trim }}<end_of_turn>\n{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    ),
    system_role=False,
)
PHI = Family(
    name="phi",
    marker="<|assistant|>",
    model_types=("phi",),
    stop_tokens=("<|end|>", "<|endoftext|>"),
    template=(
        "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
)
MISTRAL = Family(
    name="mistral",
    marker="[INST]",
    model_types=("mistral", "mixtral"),
    stop_tokens=("</s>",),
    tool_syntax=MISTRAL_TOOLS,
    template=(
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]"
        "{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}"
    ),
    system_role=False,
)
DEFAULT = Family(name="default", marker=None, model_types=(), stop_tokens=(), template=None)

FAMILIES = (LLAMA3, CHATML, GEMMA, PHI, MISTRAL)


def detect_family(config: dict, tokenizer) -> Family:
    """The family of a loaded model, from its chat format first and config.json last."""
    template = tokenizer.chat_template
    if isinstance(template, dict):  # named templates ("default", "tool_use", ...)
        template = "\n".join(template.values())
    for family in FAMILIES:
        if template and family.marker and family.marker in template:
            return family
    vocab = tokenizer.get_vocab()
    for family in FAMILIES:
        if family.marker in vocab:
            return family
    kinds = [config.get("model_type") or "", *(config.get("architectures") or [])]
    for family in FAMILIES:
        if any(kind.lower().startswith(family.model_types) for kind in kinds):
            return family
    return DEFAULT


def validate_messages(messages) -> list[dict]:
    """OpenAI chat messages as the template's plain dicts ({"role", "content": str}, with
    "tool_calls" on an assistant's calls and "tool_call_id" on a tool's result), or
    InvalidRequest naming the first thing a text-only model cannot use."""
    if not isinstance(messages, list) or not messages:
        raise _invalid("'messages' must be a non-empty list of chat messages.")
    return [_validate_message(i, message) for i, message in enumerate(messages)]


def _validate_message(i: int, message) -> dict:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _invalid(f"{where} must be an object with 'role' and 'content'.")
    role = message.get("role")
    role = {"developer": "system", "function": "tool"}.get(role, role) if isinstance(role, str) else role
    if role not in ROLES:
        raise _invalid(f"{where} has role {role!r}; supported roles are {', '.join(ROLES)}.")
    calls = message.get("tool_calls") or ([message["function_call"]] if message.get("function_call") else [])
    content = message.get("content")
    checked: dict = {"role": role, "content": "" if content is None and calls else _text_content(where, content)}
    if role == "tool":
        checked["tool_call_id"] = message.get("tool_call_id") or ""
        if message.get("name"):
            checked["name"] = message["name"]
    if calls and role == "assistant":
        checked["tool_calls"] = [_tool_call(f"{where}.tool_calls[{j}]", call) for j, call in enumerate(calls)]
    return checked


def _tool_call(where: str, call) -> dict:
    """An OpenAI tool call (or legacy function call) as templates take it: arguments as an object
    when they are JSON."""
    function = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _invalid(f"{where} must name a function.")
    arguments = function.get("arguments") or "{}"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass  # kept as written (a call cut at max_tokens, say): the conversation goes on
    checked = {"type": "function", "function": {"name": function["name"], "arguments": arguments}}
    return {"id": call["id"], **checked} if call.get("id") else checked


def _text_content(where: str, content) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid(f"{where}.content must be a string or a list of text parts.")
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "text":
            raise _invalid(f"{where}.content[{j}] is a text part without a string 'text'.")
        else:
            what = f"a {kind!r} part" if kind else "not a {'type': 'text', 'text': str} part"
            raise _invalid(f"{where}.content[{j}] is {what}; {TEXT_ONLY}.")
    return "\n".join(texts)  # as vLLM joins text parts


def _renders_tools(tokenizer) -> bool:
    """Whether the model's own template writes the tools it is given into the prompt."""
    probe = [{"type": "function", "function": {"name": "probe_function_7f3a", "parameters": {"type": "object"}}}]
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tools=probe, tokenize=False)
    except Exception:  # a template that fails on tools does not render them
        return False
    return "probe_function_7f3a" in text


def _apply_template(tokenizer, messages: list[dict], **kwargs) -> list[int]:
    try:
        return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, **kwargs))
    except TemplateSyntaxError as e:
        raise ChatTemplateFailed(f"The model's chat template is broken: {e.message} (line {e.lineno}).") from e
    except TemplateError as e:  # the template's raise_exception(): a conversation it refuses
        raise InvalidForModel(f"The model's chat template rejected the messages: {e}", param="messages") from e
    except Exception as e:  # the messages are valid (validate_messages): the template is at fault
        raise ChatTemplateFailed(f"The model's chat template failed: {type(e).__name__}: {e}.") from e


def _fold_system(messages: list[dict]) -> list[dict]:
    """System text prepended to the next user turn, for formats without a system role."""
    folded, pending = [], []
    for m in messages:
        if m["role"] == "system":
            pending.append(m["content"])
        elif m["role"] == "user" and pending:
            folded.append({"role": "user", "content": "\n\n".join([*pending, m["content"]])})
            pending = []
        else:
            folded.append(m)
    if pending:
        folded.append({"role": "user", "content": "\n\n".join(pending)})
    return folded


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="messages")

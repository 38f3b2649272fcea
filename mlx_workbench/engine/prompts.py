"""A request's prompt as the token ids its model is to read: chat messages through
the family's template, text through the tokenizer, ids checked against the
vocabulary; and a prompt that cannot fit the model's context refused."""

from __future__ import annotations

from .errors import ContextLengthExceeded, EngineError, InvalidForModel, InvalidRequest
from .infill import infill_tokens
from .pool import Entry
from .requests import GenerationRequest


def prompt_param(request: GenerationRequest) -> str:
    """The request field that holds the prompt."""
    if request.infill is not None:
        return "prefix"
    return "messages" if request.messages is not None else "prompt"


def prompt_tokens(entry: Entry, request: GenerationRequest) -> list[int]:
    """The prompt's ids; an EngineError says why there are none (or too many)."""
    _refuse_surely_too_long(entry, request)
    try:
        tokens = _tokenize(entry, request)
    except EngineError:
        raise
    except Exception as e:
        raise InvalidRequest(f"Could not tokenize the prompt: {e}", param=prompt_param(request)) from e
    limit = entry.context_length
    if limit is not None and len(tokens) + 1 > limit:
        raise ContextLengthExceeded(len(tokens), limit, param=prompt_param(request))
    return tokens


def unwritten_tokens(entry: Entry, request: GenerationRequest, tokens: list[int]) -> int:
    """How many of the prompt's first `tokens` the tokenizer added to a text prompt (a BOS
    the text lacks): an echo of the prompt's tokens leaves them out, to join to its text."""
    bos = entry.tokenizer.bos_token
    added = isinstance(request.prompt, str) and bos and not request.prompt.startswith(bos)
    return int(bool(added and tokens and tokens[0] == entry.tokenizer.bos_token_id))


def _refuse_surely_too_long(entry: Entry, request: GenerationRequest) -> None:
    """A text longer than the context could hold even if each token were the longest
    one fails before tokenizing: megabytes of prompt would hold the device thread
    (and every other request) for a minute."""
    limit = entry.context_length
    if limit is None or not entry.max_token_bytes:
        return
    texts = [request.prompt, *(m.get("content") for m in request.messages or [])]
    size = sum(len(t.encode()) for t in texts if isinstance(t, str))
    tokens = -(-size // entry.max_token_bytes)  # at least
    if tokens + 1 > limit:
        raise ContextLengthExceeded(tokens, limit, at_least=True, param=prompt_param(request))


def _tokenize(entry: Entry, request: GenerationRequest) -> list[int]:
    if request.infill is not None:  # trimmed to leave room for the completion
        limit = entry.context_length
        room = None if limit is None else limit - 1 - min(request.sampling.max_tokens, limit // 2)
        tokens = infill_tokens(entry.tokenizer, request.infill, room)
    elif request.messages is not None:
        assert entry.family is not None  # a loaded entry knows its family
        tokens = list(entry.family.render(entry.tokenizer, request.messages, request.tools))
    elif isinstance(request.prompt, str):
        # A prompt written with its BOS (a chat template by hand) does not get a second one.
        bos = entry.tokenizer.bos_token
        tokens = entry.tokenizer.encode(request.prompt, add_special_tokens=not (bos and request.prompt.startswith(bos)))
    else:
        tokens = list(request.prompt or [])
        vocab = entry.config.get("vocab_size")
        if vocab is not None and any(not 0 <= t < vocab for t in tokens):
            raise InvalidForModel(f"Prompt token ids must be in [0, {vocab}) for this model.", param="prompt")
    if not tokens:
        raise InvalidRequest("The prompt is empty.", param="prompt")
    return tokens

"""A remote entry's streamed chat answer as the engine's events, so that the APIs that are
translations onto chat generation (Responses, Anthropic's Messages) serve remote entries
with the same builders as local ones. Chat and text completions do not come here: they
are relayed as they are (`proxy.py`).

The request is sent as an OpenAI chat completion, streamed with usage; each chunk becomes a
`Delta`, each finish reason a `Finished`, the usage `Done`. Errors before the first chunk
raise `ApiError` (the handler still owns the status code), after it they end the request
as `Failed`. Closing the generator closes the upstream connection.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import get_args

import httpx

from ..engine.errors import GenerationFailed
from ..engine.requests import Delta, Done, Failed, Finished, FinishReason, GenerationRequest, Started, Usage
from ..remote.backend import RemoteBackend, RemoteError
from .errors import ApiError
from .proxy import remote_error, upstream_error


def chat_body(request: GenerationRequest) -> dict:
    """The OpenAI chat completion body that asks for what `request` asks."""
    s = request.sampling
    body: dict = {
        "model": request.model,
        "messages": request.messages,
        "max_tokens": s.max_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if s.stop:
        body["stop"] = s.stop
    if s.seed is not None:
        body["seed"] = s.seed
    if s.logit_bias:
        body["logit_bias"] = {str(token): bias for token, bias in s.logit_bias.items()}
    if s.constraint is not None and s.constraint.kind == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif s.constraint is not None and s.constraint.kind == "json_schema":
        schema = {"name": "response", "schema": s.constraint.value, "strict": True}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif s.constraint is not None:
        raise ApiError(400, f"A remote model cannot be constrained by {s.constraint.kind}.", param=s.constraint.param)
    return body


async def remote_events(backend: RemoteBackend, request: GenerationRequest) -> AsyncGenerator[list, None]:
    """The events of `request` answered by the remote entry `request.model`, in batches."""
    try:
        async with backend.open(request.model, "chat/completions", chat_body(request)) as response:
            if response.status_code >= 400:
                raise upstream_error(response.status_code, await response.aread())
            yield [Started(prompt_tokens=0)]  # the upstream tells the prompt's size only at the end
            usage = Usage(prompt_tokens=0, completion_tokens=0)
            try:
                async for line in response.aiter_lines():
                    if not line.startswith("data:") or not line[5:].strip().startswith("{"):
                        continue  # keep-alives, comments, [DONE]
                    chunk = json.loads(line[5:])
                    usage = _usage(chunk.get("usage")) or usage
                    events = [event for choice in chunk.get("choices") or [] for event in _events(choice)]
                    if events:
                        yield events
            except httpx.HTTPError as e:
                yield [Failed(GenerationFailed(f"The remote server failed while answering: {e!r}"))]
                return
            yield [Done(usage)]
    except RemoteError as e:
        raise remote_error(e) from None


def _events(choice: dict) -> list:
    events: list = []
    index = choice.get("index", 0)
    if text := (choice.get("delta") or {}).get("content"):
        events.append(Delta(index=index, text=text, token_ids=[]))
    if reason := choice.get("finish_reason"):
        events.append(Finished(index=index, reason=reason if reason in get_args(FinishReason) else "stop"))
    return events


def _usage(usage: dict | None) -> Usage | None:
    if not usage:
        return None
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return Usage(
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
        cached_tokens=cached,
    )

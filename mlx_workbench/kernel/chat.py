"""Conversations kept in the kernel, and streaming one answer into a cell."""

from __future__ import annotations

from dataclasses import dataclass, field

import openai
from openai.types.chat import ChatCompletionMessageParam

from .client import CLIENT_ERRORS, CONNECTION_ERRORS, Endpoint, WorkbenchError
from .display import LiveArea, Reply

CURSOR = " ▌"


class Interrupted(KeyboardInterrupt):
    """The user interrupted the kernel; still a KeyboardInterrupt, so "Run all" stops."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mInterrupted\x1b[0m: {self}"]


@dataclass
class Conversation:
    """One chat: who answers (model, system prompt) and the turns so far.

    Only completed turns are kept: an interrupted or broken answer stays
    visible in its cell but is not sent with later turns.
    """

    model: str | None = None
    system: str | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)  # (user, assistant)

    def messages(self, user: str, system: str | None) -> list[ChatCompletionMessageParam]:
        messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}] if system else []
        for question, answer in self.turns:
            messages.append({"role": "user", "content": question})
            messages.append({"role": "assistant", "content": answer})
        messages.append({"role": "user", "content": user})
        return messages


def stream_answer(
    endpoint: Endpoint, model: str, messages: list[ChatCompletionMessageParam], params: dict, live: LiveArea
) -> Reply:
    """Streams the answer into the cell's live area and returns it, for the cell
    to show as Markdown. Raises Interrupted or WorkbenchError with what arrived
    left in the cell."""
    answer, finished = "", False
    try:
        client = endpoint.openai_client()
        with client.chat.completions.create(model=model, messages=messages, stream=True, **params) as stream:
            for chunk in stream:
                if chunk.choices:
                    answer += chunk.choices[0].delta.content or ""
                    finished = finished or chunk.choices[0].finish_reason is not None
                    live.show(answer + CURSOR)
        if not finished:  # the openai client takes a closed connection for the end of the stream
            raise openai.APIConnectionError(
                message="the stream ended before the answer did", request=stream.response.request
            )
    except KeyboardInterrupt:
        # Leaving the `with` closed the connection: the server cancels the generation.
        live.close(answer + "\n\n*[interrupted]*" if answer else "")
        raise Interrupted(
            "the answer was stopped; what arrived stays above and is not added to the chat history."
        ) from None
    except CLIENT_ERRORS as error:
        live.close(answer + "\n\n*[incomplete]*" if answer else "")
        raise WorkbenchError(explain(error, endpoint, bool(answer))) from None
    live.close()
    return Reply(answer)


def explain(error: Exception, endpoint: Endpoint, partial: bool) -> str:
    """What went wrong, in words, from one of CLIENT_ERRORS."""
    kept = " What arrived is kept above and not added to the chat history." if partial else ""
    if isinstance(error, CONNECTION_ERRORS):
        if partial:
            return f"The connection to the {endpoint.describe()} was lost mid-answer.{kept}"
        return f"Cannot reach the {endpoint.describe()}. Is it still running?"
    body = getattr(error, "body", None)
    message = (
        str(body["message"])
        if isinstance(body, dict) and body.get("message")
        else str(getattr(error, "message", error))
    )
    if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return endpoint.token_refused(error.status_code)
    if isinstance(error, openai.NotFoundError) and "Known models" not in message:
        message += known_models(endpoint)
    return message + kept


def known_models(endpoint: Endpoint) -> str:
    try:
        ids = [model.id for model in endpoint.openai_client().models.list()]
    except (openai.APIError, ValueError):  # mlx_lm.server may answer an empty body
        return ""
    return f" Known models: {', '.join(ids) or 'none'}."


def default_model(endpoint: Endpoint) -> str:
    """The model a chat uses when none is named: the server's default, else the
    first model an OpenAI endpoint lists."""
    if endpoint.is_workbench:
        model = endpoint.status().get("default_model")
    else:
        try:
            model = next(iter(endpoint.openai_client().models.list()), None)
            model = model and model.id
        except (openai.APIError, ValueError):
            model = None
    if not model:
        raise WorkbenchError(
            f"No model named and the {endpoint.describe()} has no default: use --model NAME (%mlx_models lists them)."
        )
    return model

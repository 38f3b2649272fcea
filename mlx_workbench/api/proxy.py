"""Chat and text completions for remote entries: the request's body forwarded to the
server that serves the model (`remote/backend.py`), its answer sent back as it arrives.

Our auth is in front (the handler's, as for every request), theirs behind (the entry's
key). The upstream validates the body itself, so what it accepts passes through (tools,
sampling options we do not implement). Events of a stream are relayed whole, as soon as
each is complete, with the model renamed to our id; errors come back in OpenAI's shape.
A client that hangs up cancels the relay, which closes the upstream connection: the
upstream server stops generating when its next write fails.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import httpx

from ..remote.backend import RemoteError
from .errors import ApiError
from .response_schemas import ErrorDetail, ErrorResponse
from .sse import ClientGone, EventStream

if TYPE_CHECKING:
    from .handlers import GenerationHandler


def remote_model(handler: GenerationHandler) -> str | None:
    """The remote entry a request's body names, if it names one (a body we cannot read
    goes the local way, which answers its 400)."""
    try:
        body = json.loads(handler.request.body or b"null")
    except (ValueError, RecursionError):  # too deep to read: the local way refuses it
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) and model in handler.workbench.remote.entries else None


async def forwarded(handler: GenerationHandler, path: str) -> bool:
    """Answers the request from a remote entry if it names one (True), as a task the
    handler cancels when its client hangs up."""
    name = remote_model(handler)
    if name is None:
        return False
    handler._model = (name, None)  # what its metrics are labelled with
    handler.relay = asyncio.ensure_future(forward(handler, name, path))
    try:
        await handler.relay
    except asyncio.CancelledError:
        if not handler.client_gone:
            raise
    return True


async def forward(handler: GenerationHandler, name: str, path: str) -> None:
    """Answers the handler's request with the remote entry `name`'s answer from `path`."""
    body = json.loads(handler.request.body)
    started = time.monotonic()
    outcome = "client gone"
    try:
        async with handler.workbench.remote.open(name, path, body) as response:
            if response.status_code >= 400:
                raise upstream_error(response.status_code, await response.aread())
            if body.get("stream"):
                await _relay_stream(handler, response, name)
            else:
                answer = json.loads(await response.aread())
                handler.finish(json.dumps(_renamed(answer, name)))
            outcome = "answered"
    except RemoteError as e:
        outcome = f"failed: {e.message}"
        raise remote_error(e) from None
    except ApiError as e:
        outcome = f"refused: {e.detail.message}"
        raise
    except httpx.HTTPError as e:  # the upstream failed while answering
        outcome = f"failed: {e!r}"
        raise ApiError(
            502, f"The remote server failed while answering: {e!r}", "server_error", code="upstream_error"
        ) from None
    except (ClientGone, asyncio.CancelledError):
        pass
    finally:
        seconds = time.monotonic() - started
        handler.log.info(
            "mlx %s %s (remote, %s): %s after %.2fs", handler.endpoint, name, _mode(body), outcome, seconds
        )


async def _relay_stream(handler: GenerationHandler, response: httpx.Response, name: str) -> None:
    stream = EventStream(handler, handler.workbench.sse_keepalive)
    stream.start()
    pending = b""
    try:
        async for data in response.aiter_raw():
            pending += data
            *events, pending = pending.replace(b"\r\n", b"\n").split(b"\n\n")
            for event in events:
                stream.relay(_renamed_event(event, name))
            await stream.flush()
        stream.end()
    except httpx.HTTPError as e:  # the 200 is gone: report in-band, as a local failure is
        message = f"The remote server failed while answering: {e!r}"
        stream.fail(ErrorResponse(error=ErrorDetail(message=message, type="server_error", code="upstream_error")))
    finally:
        stream.close()


def _renamed_event(event: bytes, name: str) -> str:
    """One SSE event, its `data:` JSON naming our model id instead of the upstream's."""
    lines = event.decode().split("\n")
    for i, line in enumerate(lines):
        if line.startswith("data:") and line[5:].strip().startswith("{"):
            lines[i] = "data: " + json.dumps(_renamed(json.loads(line[5:]), name))
    return "\n".join(lines) + "\n\n"


def _renamed(answer, name: str):
    if isinstance(answer, dict) and "model" in answer:
        answer["model"] = name
    return answer


def remote_error(error: RemoteError) -> ApiError:
    """What the remote backend refused or could not reach, in our shape."""
    kind = "server_error" if error.status >= 500 else "invalid_request_error"
    return ApiError(error.status, error.message, kind, code=error.code)


def upstream_error(status: int, content: bytes) -> ApiError:
    """An upstream's refusal in our shape: its message, and its status when it is the
    client's fault (4xx); the upstream failing, or refusing our key for it, is a 502."""
    message = content.decode(errors="replace").strip()
    try:
        error = json.loads(content)
        error = error.get("error", error) if isinstance(error, dict) else error
        message = error.get("message", message) if isinstance(error, dict) else str(error)
    except ValueError:
        pass
    message = f"The remote server answered {status}: {message or 'no message'}"
    if status in (401, 403) or status >= 500:
        return ApiError(502, message, "server_error", code="upstream_error")
    return ApiError(status, message, code="upstream_refused")


def _mode(body: dict) -> str:
    return "stream" if body.get("stream") else "json"

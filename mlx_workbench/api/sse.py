"""Server-sent events on a Jupyter API handler, framed as OpenAI frames them:
`data: <json>\\n\\n` per event, `: keep-alive\\n\\n` comments while idle, and
`data: [DONE]\\n\\n` at the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel
from tornado.iostream import StreamClosedError

T = TypeVar("T")

KEEPALIVE_SECONDS = 10.0
CONTENT_TYPE = "text/event-stream; charset=utf-8"


class ClientGone(Exception):
    """The client closed the connection; nothing more can be sent."""


class EventStream:
    def __init__(self, handler: APIHandler):
        self.handler = handler
        self.started = False

    def start(self) -> None:
        """Commit to a 200 event stream (the headers leave with the first event)."""
        h = self.handler
        h.set_status(200)
        h.set_header("Content-Type", CONTENT_TYPE)
        h.set_header("Cache-Control", "no-cache")
        h.set_header("X-Accel-Buffering", "no")  # tells proxies (nginx) not to buffer
        h.request.connection.stream.set_nodelay(True)
        self.started = True

    async def send(self, event: BaseModel) -> None:
        await self._write(f"data: {event.model_dump_json()}\n\n")

    async def keepalive(self) -> None:
        await self._write(": keep-alive\n\n")

    async def done(self) -> None:
        await self._write("data: [DONE]\n\n")
        self._finish()

    async def fail(self, error: BaseModel) -> None:
        """An error after the 200: one `data: {"error": ...}` event, and no [DONE]."""
        await self.send(error)
        self._finish()

    def _finish(self) -> None:
        # APIHandler.finish() would reset the content type to JSON.
        self.handler.finish(set_content_type=CONTENT_TYPE)

    async def _write(self, text: str) -> None:
        if self.handler.request.connection.stream.closed():
            raise ClientGone()
        self.handler.write(text.encode())
        try:
            await self.handler.flush()
        except StreamClosedError as e:
            raise ClientGone() from e


async def with_heartbeat(events: AsyncIterator[T], interval: float = KEEPALIVE_SECONDS) -> AsyncIterator[T | None]:
    """Yield the items of `events`, and None whenever `interval` seconds pass
    without one. The pending read is kept, not cancelled: cancelling an engine
    iterator would cancel the request."""
    pending: asyncio.Future | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield None
                continue
            task, pending = pending, None
            try:
                item = task.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.wait({pending})  # settled, so the caller may close `events`

"""Server-sent events on a Jupyter API handler, framed as OpenAI frames them:
`data: <json>\\n\\n` per event, `: keep-alive\\n\\n` comments while idle, and
`data: [DONE]\\n\\n` at the end; or, for the Responses and Anthropic APIs, each event
named by its type (`event: <type>\\n` first) and no [DONE]."""

from __future__ import annotations

import asyncio
import time

from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel
from tornado.iostream import IOStream, StreamClosedError

CONTENT_TYPE = "text/event-stream; charset=utf-8"


class ClientGone(Exception):
    """The client closed the connection; nothing more can be sent."""


class EventStream:
    """Events are written whole and sent together by `flush()`; a timer sends a
    keep-alive comment whenever `keepalive` seconds pass without a write (a long
    prefill, a model loading on the device thread), so proxies keep the
    connection open. The timer costs nothing per token."""

    def __init__(self, handler: APIHandler, keepalive: float, named: bool = False):
        self.handler = handler
        self.named = named
        self.keepalive = keepalive
        self._last_write = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def _stream(self) -> IOStream:
        """The client's socket: Tornado's HTTP/1 connection has one (its base class does not say so)."""
        return self.handler.request.connection.stream  # type: ignore[union-attr]

    def start(self) -> None:
        """Commit to a 200 event stream (the headers leave with the first flush)."""
        h = self.handler
        h.set_status(200)
        h.set_header("Content-Type", CONTENT_TYPE)
        h.set_header("Cache-Control", "no-cache")
        h.set_header("X-Accel-Buffering", "no")  # tells proxies (nginx) not to buffer
        # Small writes must leave at once: with Nagle's algorithm a token waits for the
        # client's delayed ACK of the previous one (~40 ms on Linux).
        self._stream().set_nodelay(True)
        self._last_write = time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(self.keepalive, self._beat)

    def write(self, event: BaseModel) -> None:
        name = f"event: {event.type}\n" if self.named else ""  # pyright: ignore[reportAttributeAccessIssue]  (named events have one)
        self._write(f"{name}data: {event.model_dump_json()}\n\n")

    def relay(self, event: str) -> None:
        """An event already framed (`data: ...\\n\\n`), from an upstream server."""
        self._write(event)

    def end(self) -> None:
        """The end of a relayed stream, which carried its own [DONE]."""
        self._finish()

    async def flush(self) -> None:
        try:
            await self.handler.flush()
        except StreamClosedError as e:
            raise ClientGone() from e

    def done(self) -> None:
        if not self.named:
            self._write("data: [DONE]\n\n")
        self._finish()

    def fail(self, error: BaseModel) -> None:
        """An error after the 200: one `data: {"error": ...}` event, and no [DONE]."""
        self.write(error)
        self._finish()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _finish(self) -> None:
        self.close()
        # APIHandler.finish() would reset the content type to JSON.
        self.handler.finish(set_content_type=CONTENT_TYPE)

    def _write(self, text: str) -> None:
        if self._stream().closed():
            raise ClientGone()
        self.handler.write(text.encode())
        self._last_write = time.monotonic()

    def _beat(self) -> None:
        idle = time.monotonic() - self._last_write
        if idle >= self.keepalive:
            try:
                self._write(": keep-alive\n\n")
            except ClientGone:
                return self.close()
            self.handler.flush().add_done_callback(lambda f: f.exception())  # a closed stream ends us anyway
            idle = 0.0
        self._timer = asyncio.get_running_loop().call_later(self.keepalive - idle, self._beat)

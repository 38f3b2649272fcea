"""Event delivery from the device thread: the events of a step are gathered per
request and sent once per step, so a token costs no lock and at most one
cross-thread wake-up per event loop, however many of its requests are in a batch.

While only more tokens of running streams wait, delivery also waits until
`interval` has passed since the last one: a model faster than that (a tiny one,
or a fast GPU) then sends a few tokens per wake-up instead of paying the event
loop, the HTTP chunk and the client's parsing per token. A request's first
token, its end and every other event leave at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .requests import Delta, Event
from .submission import Submission


class Outbox:
    """What the requests got during a step, until `flush` sends it."""

    def __init__(self, on_loop_closed: Callable[[Submission], None], interval: float = 0.0):
        self.interval = interval
        self._touched: list[Submission] = []  # the submissions with events to send
        self._urgent = False  # something beyond more tokens of a running stream waits
        self._sent_at = 0.0
        self._on_loop_closed = on_loop_closed  # a request whose caller's loop is gone (it cancels)

    def emit(self, sub: Submission, event: Event) -> None:
        if not sub.outbox:
            self._touched.append(sub)
        sub.outbox.append(event)
        if type(event) is not Delta or not sub.streaming:
            self._urgent = True
            sub.streaming = sub.streaming or type(event) is Delta

    def flush(self, force: bool = True) -> None:
        """Send what waits: one wake-up per event loop, however many of its requests
        are in the batch. Unless `force`, more tokens may wait for `interval`."""
        if not self._touched:
            return
        now = time.perf_counter()
        if not (force or self._urgent or now - self._sent_at >= self.interval):
            return
        self._sent_at, self._urgent = now, False
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for sub in self._touched:
            events, sub.outbox = sub.outbox, []
            if sub.loop is None:
                sub.send(events)
            else:
                by_loop.setdefault(sub.loop, []).append((sub, events))
        self._touched.clear()
        for loop, deliveries in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, deliveries)
            except RuntimeError:  # the loop is closed: nobody listens any more
                for sub, _ in deliveries:
                    if not sub.ended:
                        self._on_loop_closed(sub)
                self._touched.clear()


def _deliver(deliveries: list) -> None:
    for sub, events in deliveries:
        sub.send(events)

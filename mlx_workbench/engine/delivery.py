"""Event delivery from the device thread: the events of a step are gathered per
request and sent once per step, so a token costs no lock and at most one
cross-thread wake-up per event loop, however many of its requests are in a batch.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from .requests import Event
from .submission import Submission


class Outbox:
    """What the requests got during a step, until `flush` sends it."""

    def __init__(self, on_loop_closed: Callable[[Submission], None]):
        self._touched: list[Submission] = []  # the submissions with events to send
        self._on_loop_closed = on_loop_closed  # a request whose caller's loop is gone (it cancels)

    def emit(self, sub: Submission, event: Event) -> None:
        if not sub.outbox:
            self._touched.append(sub)
        sub.outbox.append(event)

    def flush(self) -> None:
        """Send what this step produced: one wake-up per event loop, however many
        of its requests are in the batch."""
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

"""Stored conversations: what a later request continues by id (the Responses API's
`previous_response_id`).

Each holds the conversation so far as the chat messages the engine renders, the
answer included, so that a continuation's prompt begins with the very tokens of the
previous turn and the prompt cache serves them; and the API's own record of it,
opaque here (the response a GET returns). The store is bounded by count and by bytes,
the least recently used going first. Plain Python, no MLX: any thread may use it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class Conversation:
    id: str
    messages: list[dict]  # {"role", "content"}, the last one the answer
    record: bytes  # the API's, returned as is
    nbytes: int = field(init=False)

    def __post_init__(self):
        self.nbytes = len(self.record) + len(json.dumps(self.messages))


class ConversationStore:
    def __init__(self, max_count: int, max_bytes: int | None):
        self.max_count = max_count  # 0 stores nothing
        self.max_bytes = max_bytes  # None: no limit
        self.nbytes = 0
        self._items: OrderedDict[str, Conversation] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, conversation: Conversation) -> bool:
        """Store it, evicting the least recently used beyond the bounds; False if it alone
        is over them (then it is not stored)."""
        if self.max_count < 1 or (self.max_bytes is not None and conversation.nbytes > self.max_bytes):
            return False
        with self._lock:
            self._remove(conversation.id)
            self._items[conversation.id] = conversation
            self.nbytes += conversation.nbytes
            while len(self._items) > self.max_count or (self.max_bytes is not None and self.nbytes > self.max_bytes):
                self._remove(next(iter(self._items)))
        return True

    def get(self, id: str) -> Conversation | None:
        with self._lock:
            conversation = self._items.get(id)
            if conversation is not None:
                self._items.move_to_end(id)
            return conversation

    def delete(self, id: str) -> bool:
        with self._lock:
            return self._remove(id)

    def _remove(self, id: str) -> bool:
        conversation = self._items.pop(id, None)
        if conversation is not None:
            self.nbytes -= conversation.nbytes
        return conversation is not None

"""One base model's mlx_lm BatchGenerator and the requests in it or waiting for it: the
base's own and its adapters' (`adapters.py`), in one batch."""

from __future__ import annotations

from collections import deque

from mlx_lm.generate import BatchGenerator

from .batch_masks import MaskedModel
from .config import EngineConfig
from .pool import Entry
from .submission import Choice, Submission


class Batch:
    """The BatchGenerator of one base entry and the requests in or waiting for it."""

    def __init__(self, entry: Entry, config: EngineConfig):
        self.entry = entry  # the base: its adapters' requests run here too
        self.size = config.completion_batch_size
        self.generator = BatchGenerator(
            MaskedModel(entry.runner),  # pyright: ignore[reportArgumentType] (the generator only calls it)
            stop_tokens=[[t] for t in entry.stop_ids],
            completion_batch_size=config.completion_batch_size,
            prefill_step_size=config.prefill_step_size,
        )
        self.choices: dict[int, Choice] = {}  # uid -> choice
        self.waiting: deque[Submission] = deque()
        self.scoring: Submission | None = None  # the request whose prompt is being scored

    def wait(self, sub: Submission) -> None:
        """Queue `sub` for a place: a low-priority request goes behind every normal one."""
        if sub.request.priority == "low":
            return self.waiting.append(sub)
        first_low = next((i for i, s in enumerate(self.waiting) if s.request.priority == "low"), len(self.waiting))
        self.waiting.insert(first_low, sub)

    def has_room(self, n: int) -> bool:
        # Places are taken already by the other choices of a request with n > 1, which join
        # after its prefill (Scheduler._fork_choices), and by a request to generate once scored.
        taken = len(self.choices) + sum(
            len(c.sub.choices) - 1 for c in self.choices.values() if c.index == 0 and c.sub.choices[-1].uid is None
        )
        if self.scoring is not None and self.scoring.request.sampling.max_tokens:
            taken += self.scoring.request.n
        return taken == 0 or taken + n <= self.size

    @property
    def idle(self) -> bool:
        return not (self.choices or self.waiting or self.scoring)

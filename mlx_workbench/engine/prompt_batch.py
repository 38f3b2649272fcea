"""Several requests read as one: a batch of prompts (OpenAI's text completions
take a list of them) whose choices are those of each prompt in turn.

Each prompt is its own GenerationRequest, so the scheduler batches them as it
does any others. Their events become those of one request of all their choices:
choice i of request k is choice offset(k) + i. It starts once every request has
(one Started, prompt tokens summed), ends once every one is done (one Done, usage
summed), and the first failure fails it all.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from .requests import Delta, Done, Event, Failed, Finished, GenerationRequest, PromptLogprobs, Started, Usage


class MergedEvents:
    def __init__(self, requests: list[GenerationRequest]):
        self.offsets = list(itertools.accumulate((r.n for r in requests[:-1]), initial=0))
        self._started: dict[int, Started] = {}
        self._usages: dict[int, Usage] = {}
        self._held: list[Event] = []  # what arrives until every request has started
        self.ended = False

    def take(self, k: int, events: list[Event]) -> list[Event]:
        """The merged events for `events` of request `k`: what may go to the caller now."""
        out, all_started = [], False
        for event in events:
            if isinstance(event, (PromptLogprobs, Delta, Finished)):
                out.append(replace(event, index=self.offsets[k] + event.index))
            elif isinstance(event, Started):
                self._started[k] = event
                all_started = self.all(self._started)
            elif isinstance(event, Failed) or (isinstance(event, Done) and k not in self._started):
                self.ended = True  # failed, or cancelled while it queued: so is the whole
                return [event]
            elif isinstance(event, Done):
                self._usages[k] = event.usage
                if self.complete:
                    self.ended = True
                    out.append(Done(combined(list(self._usages.values()))))
            # Progress of one prompt's prefill says nothing of the whole: it is dropped.
        if not self.all(self._started):
            self._held += out
            return []
        if all_started:  # the last one just started: Started goes first, then what waited
            started = self._started.values()
            out = [
                Started(
                    prompt_tokens=sum(s.prompt_tokens for s in started),
                    cached_tokens=sum(s.cached_tokens for s in started),
                    queue_seconds=max(s.queue_seconds for s in started),
                    load_seconds=max(s.load_seconds for s in started),
                    batch_size=max(s.batch_size for s in started),
                ),
                *self._held,
                *out,
            ]
            self._held = []
        return out

    @property
    def complete(self) -> bool:
        """Every request is done."""
        return self.all(self._usages)

    def all(self, per_request: dict) -> bool:
        return len(per_request) == len(self.offsets)


def combined(usages: list[Usage]) -> Usage:
    """The usage of requests submitted together, which ran side by side."""
    first = min(u.time_to_first_token for u in usages)
    generation = max(u.time_to_first_token + u.generation_seconds for u in usages) - first
    decoded = sum(u.tokens_per_second * u.generation_seconds for u in usages if u.tokens_per_second)
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in usages),
        completion_tokens=sum(u.completion_tokens for u in usages),
        cached_tokens=sum(u.cached_tokens for u in usages),
        time_to_first_token=first,
        generation_seconds=generation,
        tokens_per_second=decoded / generation if decoded and generation > 0 else None,
    )

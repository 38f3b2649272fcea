"""Continuous batching: one mlx_lm BatchGenerator per loaded base model, whose rows may
each run one of its adapters (`adapters.py`); requests join and leave between steps.
Device thread only.

Each request (a `Submission`) becomes `n` sequences in its entry's batch, one
`Choice` each (`submission.py`: text, stop strings, logprobs; `batch.py`: the
generator and its places). Events for a
request are gathered during a step and sent once per step (`delivery.py`), so a
token costs no lock and at most one cross-thread wake-up per request.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

import mlx.core as mx
from mlx_lm.utils import maybe_set_recommended_wired_limit

from ..model_ids import format_id
from .batch import Batch
from .cache import PromptCache
from .config import EngineConfig
from .constraints import grammar_tokenizer, matcher_factory
from .delivery import Outbox
from .errors import EngineError, GenerationFailed, QueueFull
from .metrics import EngineMetrics, RequestTimes
from .pool import Entry, Pool
from .prompts import prompt_tokens, unwritten_tokens
from .requests import Done, Event, Failed, Finished, FinishReason, Progress, PromptLogprobs, Started, Usage
from .rows import Row, tagged, untagged
from .sampling import LogitBias, make_logits_processors, make_sampler
from .scoring import PromptScore
from .status import EngineStatus, MemoryStatus
from .submission import Choice, Submission

log = logging.getLogger(__name__)

PUBLISH_INTERVAL = 0.5  # seconds between status snapshots while generating


class Scheduler:
    def __init__(self, config: EngineConfig, post: Callable):
        self.config = config
        self._post = lambda fn, *args: post(self._run_posted, fn, *args)
        self.pool = Pool(config, self._post, self._release_entry)
        self.pool.changed = self.publish
        self.cache = PromptCache(config.prompt_cache_size, config.prompt_cache_bytes)
        self.metrics = EngineMetrics()
        self.batches: dict[str, Batch] = {}
        self.submissions: dict[str, Submission] = {}
        self.busy = False  # some batch has sequences to step
        self.generated_tokens = 0
        self.steps = 0  # decode steps started; read by other threads to stamp their cancels
        self.cancelled_requests = 0
        self.steps_after_cancel = 0
        outbox = Outbox(on_loop_closed=self._cancel_request, interval=config.delivery_interval)
        self._emit, self._flush = outbox.emit, outbox.flush  # bound once: the per-token path pays no lookup
        self._changed = False  # a request started or ended since the last snapshot
        self._window_tokens, self._window_start = 0, time.perf_counter()
        # The device thread publishes the first real snapshot (memory readings are MLX calls).
        self.snapshot = EngineStatus(state="running", queue_limit=config.queue_limit)

    # ---- jobs (run between steps) -----------------------------------------

    def wire_memory(self) -> None:
        """Keep model weights wired (on Metal) while the engine runs, as mlx_lm.server does.
        Each BatchGenerator sets this limit and restores the one it found when it closes:
        with several models' batches closing in any order, one could unwire the others."""
        maybe_set_recommended_wired_limit()

    def enqueue(self, sub: Submission) -> None:
        # Decided here, where the queue is: a burst can outrun the device thread, and
        # counting on the caller's side then refused requests the batch had room for.
        if self._must_wait(sub) and self._queued_count() >= self.config.queue_limit:
            self._fail_request(sub, QueueFull(self.config.queue_limit))
        else:
            self.submissions[sub.request.id] = sub
            loading = self._entry_state(sub) != "loaded"
            self.pool.acquire(
                sub.model,
                sub.adapter,
                lambda entry, error: self._run_or_fail(sub, self._queue_for_batch, sub, entry, error, loading),
            )
        self._after_job()

    def _must_wait(self, sub: Submission) -> bool:
        """`sub` cannot join a batch now: its model must load first, or the batch is full."""
        if self._entry_state(sub) != "loaded":
            return True
        batch = self.batches.get(sub.model)
        return batch is not None and bool(batch.waiting or not batch.has_room(sub.request.n))

    def _entry_state(self, sub: Submission) -> str | None:
        entry = self.pool.entries.get(format_id(sub.model, sub.adapter))
        return entry and entry.state

    def _queued_count(self) -> int:
        return sum(1 for s in self.submissions.values() if s.queued)

    def _run_posted(self, fn: Callable, *args) -> None:
        """A job posted by the pool (a download ended) or by a job done in parts: what it
        settles must reach the callers now, not at the next step, which an idle engine
        never takes."""
        fn(*args)
        self._after_job()

    def _run_or_fail(self, sub: Submission, fn: Callable, *args) -> None:
        """Run `fn`; if it raises, only `sub` fails."""
        try:
            fn(*args)
        except EngineError as e:
            self._fail_request(sub, e)
        except Exception as e:
            log.exception("request %s failed", sub.request.id)
            self._fail_request(sub, GenerationFailed(f"{type(e).__name__}: {e}"))

    def cancel(self, request_id: str, asked_at_step: int) -> None:
        """`asked_at_step`: `self.steps` when the cancel was asked, on the caller's thread."""
        sub = self.submissions.get(request_id)
        if sub is not None:
            self.cancelled_requests += 1
            self.steps_after_cancel = max(self.steps_after_cancel, self.steps - asked_at_step)
            self._cancel_request(sub)
        self._after_job()

    def _after_job(self) -> None:
        self._admit_and_close_idle()
        self.publish()
        self._flush()

    def _admit_and_close_idle(self) -> None:
        """After a step or a job: fill the room that requests ending (or cancelled) left;
        drop the batches left with nothing to do (an idle generator would keep its last
        step's arrays alive, and a new one costs nothing); say whether there is work."""
        for key, batch in list(self.batches.items()):
            if batch.waiting:
                self._admit_waiting(batch)
            if batch.idle:
                self._close_batch(key)
        self.busy = any(b.choices or b.waiting for b in self.batches.values())

    # ---- admission ---------------------------------------------------------

    def _queue_for_batch(self, sub: Submission, entry: Entry, error: EngineError | None, loading: bool) -> None:
        """`loading`: the entry was not loaded when `sub` asked for it."""
        if loading:
            sub.load_seconds = time.perf_counter() - sub.submitted
        if sub.ended:  # cancelled while its model was loading
            return
        if error is not None:
            return self._fail_request(sub, error)
        sub.prompt = prompt_tokens(entry, sub.request)  # an EngineError fails sub alone (_run_or_fail)
        sub.entry = entry
        entry.active_requests += 1
        batch = self.batches.get(entry.model) or self.batches.setdefault(
            entry.model, Batch(self.pool.entry(entry.model), self.config)
        )
        batch.wait(sub)
        self._admit_waiting(batch)

    def _admit_waiting(self, batch: Batch) -> None:
        while batch.waiting and batch.has_room(batch.waiting[0].request.n):
            # Scoring runs a forward pass over the prompt: one per decode step, so that
            # a batch of prompts to score does not hold every stream up at once.
            if batch.waiting[0].request.prompt_logprobs is not None and batch.scoring is not None:
                break
            sub = batch.waiting.popleft()
            sub.leave_queue()
            self._run_or_fail(sub, self._start_request, batch, sub)
        self.busy = self.busy or bool(batch.choices or batch.waiting)

    def _start_request(self, batch: Batch, sub: Submission) -> None:
        assert sub.entry is not None  # set by _queue_for_batch
        entry, n = batch.entry, sub.request.n
        bias, constraint = sub.request.sampling.logit_bias, sub.request.sampling.constraint
        sub.logit_bias = LogitBias(bias, entry.config["vocab_size"]) if bias else None
        assert entry.family is not None  # a loaded entry knows its family
        if constraint is not None:
            vocabulary = grammar_tokenizer(entry.tokenizer, entry.config["vocab_size"], entry.stop_ids)
            sub.grammar = matcher_factory(constraint, vocabulary, entry.family.tool_syntax)
        sub.choices = [Choice(sub, i, entry.tokenizer, sub.request.sampling.stop, self._emit) for i in range(n)]
        top = sub.request.prompt_logprobs  # set: the prompt is scored
        # A prompt to score is computed from its first token: its pass replaces the prefill.
        cache, rest = self.cache.fetch(sub.entry.id, sub.prompt) if top is None else (None, sub.prompt)
        sub.cached_tokens = len(sub.prompt) - len(rest)
        sub.admitted = time.perf_counter()
        self.metrics.admitted(sub.model, sub.adapter, len(sub.prompt), sub.cached_tokens, looked_up=top is None)
        started = Started(
            prompt_tokens=len(sub.prompt),
            cached_tokens=sub.cached_tokens,
            queue_seconds=sub.admitted - sub.submitted,
            load_seconds=sub.load_seconds,
            batch_size=len(batch.choices) + n,
            tool_syntax=entry.family.tool_syntax.name,
        )
        self._emit(sub, started)
        self._changed = True
        if top is None:
            return self._start_generation(batch, sub, cache, rest)
        batch.scoring = sub
        sub.score = PromptScore(sub.entry.runner, sub.prompt, top, entry.tokenizer)
        self._post(self._run_or_fail, sub, self._score_chunk, batch, sub)

    def _score_chunk(self, batch: Batch, sub: Submission) -> None:
        """A chunk of the prompt per job: decode steps go on in between."""
        score = sub.score
        if score is None:  # cancelled: _end_request let go of its score
            return
        if not score.step():
            return self._post(self._run_or_fail, sub, self._score_chunk, batch, sub)
        batch.scoring = None
        written = score.tokens[unwritten_tokens(batch.entry, sub.request, sub.prompt) :]
        for choice in sub.choices:
            self._emit(sub, PromptLogprobs(choice.index, written))
        cache, sub.score = score.cache, None
        self._start_generation(batch, sub, cache, sub.prompt[-1:])

    def _start_generation(self, batch: Batch, sub: Submission, cache, rest: list[int]) -> None:
        """Start generating `sub`'s choices, `rest` of its prompt on top of `cache`."""
        if sub.request.sampling.max_tokens == 0:  # nothing to generate (a prompt to echo or score)
            for choice in sub.choices:
                self._finish_choice(batch, choice, "length")
            return
        sub.prefilled = len(sub.prompt) - len(rest)
        # n > 1: prefill once for choice 0; the others copy its KV cache (see _fork_choices).
        first = sub.choices[:1] if sub.request.n > 1 and len(rest) > 1 else sub.choices
        self._insert_into_generator(batch, first, rest, cache, sub.prompt[: sub.prefilled])

    def _fork_choices(self, batch: Batch, choice: Choice) -> None:
        """Choice 0 has processed all but the last prompt token: start the others from a copy."""
        ((kv, tokens),) = batch.generator.extract_cache([choice.uid]).values()
        rest = choice.sub.prompt[len(tokens) :]
        self._insert_into_generator(batch, choice.sub.choices[1:], rest, untagged(kv), tokens)

    def _insert_into_generator(
        self, batch: Batch, choices: list[Choice], rest: list[int], kv, cached: list[int]
    ) -> None:
        """Put `choices` into the generator: `rest` of the prompt on top of `kv` (holding `cached`)."""
        sub, entry = choices[0].sub, batch.entry
        assert sub.entry is not None and sub.entry.runner is not None  # loaded: its rows' model
        runner, params = sub.entry.runner, sub.request.sampling
        max_tokens = min(params.max_tokens, self.config.max_tokens_cap)
        if entry.context_length is not None:
            max_tokens = min(max_tokens, entry.context_length - len(sub.prompt))
        # A grammar's state is its choice's own: a matcher each.
        rows = [Row(sub.adapter, sub.grammar.new() if sub.grammar else None, len(rest) - 1) for _ in choices]
        uids = batch.generator.insert(
            [rest] * len(choices),
            max_tokens=[max_tokens] * len(choices),
            caches=[tagged(copy.deepcopy(kv) if kv else runner.make_cache(), row) for row in rows],
            all_tokens=[list(cached) for _ in choices],
            samplers=[make_sampler(params, c.index, sub.logit_bias) for c in choices],
            logits_processors=[make_logits_processors(params, len(sub.prompt))] * len(choices),
        )
        for choice, uid in zip(choices, uids):
            choice.uid = uid
            batch.choices[uid] = choice

    # ---- the step ----------------------------------------------------------

    def step(self) -> None:
        self.steps += 1
        for batch in list(self.batches.values()):
            if batch.choices:
                self._step_batch(batch)
        self._admit_and_close_idle()
        # Before the events go out, so that a caller who sees Done sees the status after it.
        if self._changed or time.perf_counter() - self._window_start >= PUBLISH_INTERVAL:
            self.publish()
        self._flush(force=not self.busy)  # tokens may wait for the next step, if there is one

    def _step_batch(self, batch: Batch) -> None:
        try:
            prompt_responses, responses = batch.generator.next()
        except Exception as e:
            log.exception("generation failed for %s", batch.entry.id)
            first_line = str(e).partition("\n")[0]  # the whole of it is in the log
            return self._fail_batch(
                batch,
                GenerationFailed(
                    f"The model '{batch.entry.id}' failed while generating: {type(e).__name__}: {first_line}"
                ),
            )
        for r in prompt_responses:
            choice = batch.choices.get(r.uid)
            if r.end_of_prompt or choice is None or choice.index:
                continue
            done = choice.sub.prefilled
            self._emit(choice.sub, Progress(done + r.progress[0], done + r.progress[1]))
            if r.end_of_segment and choice.sub.choices[-1].uid is None:
                self._run_or_fail(choice.sub, self._fork_choices, batch, choice)
        self.generated_tokens += len(responses)
        self._window_tokens += len(responses)
        now = time.perf_counter()
        if responses:
            self.metrics.step(batch.entry.model, batch.entry.adapter, len(responses), now)
        stopped = []
        for r in responses:
            choice = batch.choices.get(r.uid)
            if choice is None:  # its request failed earlier in this step
                continue
            try:
                stop_string = choice.add_token(r.token, r.logprobs, r.finish_reason, now)
            except Exception as e:
                log.exception("request %s failed", choice.sub.request.id)
                self._fail_request(choice.sub, GenerationFailed(f"{type(e).__name__}: {e}"))
                continue
            if r.finish_reason is not None:
                self._cache_prompt(choice.sub, r.all_tokens, r.prompt_cache)
                self._finish_choice(batch, choice, "stop" if stop_string or r.finish_reason == "stop" else "length")
            elif stop_string:
                stopped.append(r.uid)  # the generator does not know: remove it
        if stopped:
            for uid, (kv, tokens) in batch.generator.remove(stopped, return_prompt_caches=True).items():
                self._cache_prompt(batch.choices[uid].sub, tokens, kv)
                self._finish_choice(batch, batch.choices[uid], "stop")

    def _cache_prompt(self, sub: Submission, tokens: list[int] | None, kv) -> None:
        """Keyed on (base, adapter): a prefix one adapter computed is never another's."""
        if tokens and kv and sub.entry is not None:
            self.cache.store(sub.entry.id, tokens, untagged(kv))

    # ---- endings -----------------------------------------------------------

    def _finish_choice(self, batch: Batch, choice: Choice, reason: FinishReason) -> None:
        if choice.uid is not None:  # None: it never entered the generator (max_tokens 0)
            batch.choices.pop(choice.uid, None)
        choice.open = False
        sub = choice.sub
        self._emit(sub, Finished(choice.index, reason, choice.stops.matched if choice.stops else None))
        if not any(c.open for c in sub.choices):
            self._end_request(sub, Done(self._usage(sub)), reason)

    def _usage(self, sub: Submission) -> Usage:
        first, last = sub.first_token, sub.last_token
        decoded = sub.sampled - len(sub.choices)
        span = last - first if first is not None and last is not None else 0.0
        return Usage(
            prompt_tokens=len(sub.prompt),
            completion_tokens=sum(c.tokens for c in sub.choices),
            cached_tokens=sub.cached_tokens,
            time_to_first_token=first - sub.submitted if first is not None else 0.0,
            generation_seconds=span,
            tokens_per_second=decoded / span if span > 0 and decoded > 0 else None,
        )

    def _cancel_request(self, sub: Submission) -> None:
        for choice in sub.choices:
            if choice.open:
                self._emit(sub, Finished(choice.index, "cancelled"))
        self._end_request(sub, Done(self._usage(sub)), "cancelled")

    def _fail_request(self, sub: Submission, error: EngineError) -> None:
        self._end_request(sub, Failed(error), "error")

    def _end_request(self, sub: Submission, event: Event, reason: str) -> None:
        """The request's last event: whatever of it is still queued or in a batch leaves.
        `reason`: its last choice's finish reason, "cancelled" or "error" (for the metrics)."""
        sub.ended, self._changed = True, True
        times = RequestTimes(sub.submitted, sub.admitted, sub.first_token, sub.last_token, time.perf_counter())
        self.metrics.ended(sub.model, sub.adapter, reason, sum(c.tokens for c in sub.choices), times)
        sub.leave_queue()
        batch = self.batches.get(sub.entry.model) if sub.entry else None
        if batch is not None:
            if sub in batch.waiting:
                batch.waiting.remove(sub)
            if batch.scoring is sub:
                batch.scoring = None
            uids = [c.uid for c in sub.choices if c.open and c.uid is not None and batch.choices.pop(c.uid, None)]
            if uids:
                batch.generator.remove(uids)
        for choice in sub.choices:
            choice.open = False
        sub.logit_bias = sub.score = None  # MLX arrays: freed now, not once the cyclic GC finds sub
        self._emit(sub, event)
        self.submissions.pop(sub.request.id, None)
        if sub.entry is not None:
            sub.entry.active_requests -= 1
            self.pool.touch(sub.entry)

    def _fail_batch(self, batch: Batch, error: EngineError) -> None:
        """The model raised mid-step: fail the batch's requests, start a fresh generator."""
        subs = {c.sub for c in batch.choices.values()} | set(batch.waiting)
        self._close_batch(batch.entry.id)
        for sub in subs:
            self._fail_request(sub, error)

    def _release_entry(self, entry: Entry) -> None:
        """The pool drops `entry` (never while it serves a request): nothing of ours
        may keep its arrays alive. An adapter's rows run in its base's batch."""
        if entry.adapter is None:
            self._close_batch(entry.id)
        self.cache.drop(entry.id)

    def _close_batch(self, key: str) -> None:
        """Forget the batch of entry `key`, if there is one."""
        batch = self.batches.pop(key, None)
        if batch is not None:
            mx.synchronize(batch.generator.stream)  # a step it started (async_eval) holds the weights
            batch.generator.close()

    # ---- status ------------------------------------------------------------

    def tick(self) -> float | None:
        """Idle housekeeping: unload idle entries, let tokens/s decay to 0."""
        next_check = self.pool.unload_idle()
        rate_decaying = self.snapshot.tokens_per_second > 0
        self.publish()
        if rate_decaying:
            return min(next_check or PUBLISH_INTERVAL, PUBLISH_INTERVAL)
        return next_check

    def publish(self) -> None:
        now = time.perf_counter()
        elapsed = max(now - self._window_start, 1e-9)
        rate = self._window_tokens / elapsed if elapsed >= 0.05 else self.snapshot.tokens_per_second
        if elapsed >= 0.05:
            self._window_tokens, self._window_start = 0, now
        self._changed = False
        self.snapshot = EngineStatus(
            state="running",
            entries=[e.status() for e in self.pool.entries.values()],
            memory=MemoryStatus(
                active=mx.get_active_memory(),
                peak=mx.get_peak_memory(),
                cache=mx.get_cache_memory(),
                budget=self.config.memory_budget,
                device=_device_name(),
            ),
            active_requests=sum(1 for s in self.submissions.values() if not s.queued),
            queue_limit=self.config.queue_limit,
            tokens_per_second=rate,
            generated_tokens=self.generated_tokens,
            cancelled_requests=self.cancelled_requests,
            steps_after_cancel=self.steps_after_cancel,
            prompt_cache_hits=self.cache.hits,
            prompt_cache_misses=self.cache.misses,
            prompt_cache_bytes=self.cache.nbytes,
        )

    def close(self, error: EngineError) -> None:
        """Fail everything in flight with `error`; release every MLX object here."""
        for sub in list(self.submissions.values()):
            if not sub.ended:
                self._fail_request(sub, error)
        for key in list(self.batches):  # no local may keep a batch (and its model) alive
            self._close_batch(key)
        self.cache.clear()
        self.pool.release_all()
        self.busy = False
        self.publish()
        self._flush()


_device = None


def _device_name() -> str:
    global _device
    if _device is None:
        info = mx.device_info()
        kind = "gpu" if mx.default_device().type == mx.DeviceType.gpu else "cpu"
        _device = f"{kind} ({info.get('device_name', info.get('architecture', '?'))})"
    return _device

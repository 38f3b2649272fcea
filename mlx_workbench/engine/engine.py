"""The engine's public face: everything outside `engine/` uses only this class.

    engine = Engine(EngineConfig(...))
    engine.start()                      # starts the device thread; preloads
    engine.stop(timeout=10)             # in-flight requests get Failed(EngineStopped);
                                        # models released on the device thread
    engine.status() -> EngineStatus     # snapshot, never blocks on the device thread

    # generation: events in order Started, (Progress*), (PromptLogprobs*), (Delta | Finished)*, Done
    #             or, at any point, a final Failed
    async for event in engine.agenerate(request): ...   # from an asyncio loop
    async for batch in engine.astream(request): ...     # the same, as lists of the events
                                                        # that arrived since the last one
    async for batch in engine.astream_batch(requests): ...  # several prompts as one request
    for event in engine.generate(request): ...          # from any other thread
    engine.cancel(request.id)           # request ends with Finished(reason="cancelled")
                                        # for each open choice, then Done; breaking out of
                                        # agenerate()/generate() cancels too

    # Errors known at submit time raise at once from agenerate()/generate(), before
    # any event: EngineNotReady, ModelNotFound, InvalidRequest.
    # Errors found on the device thread (QueueFull, ContextLengthExceeded, LoadFailed, ...)
    # arrive as Failed before Started.

    # pool admin; each returns a concurrent.futures.Future of the EntryStatus
    engine.load(model, adapter=None, pin=None)   # registers `model` as a path/repo id if
                                                 # it is not a configured name
    engine.unload(model, adapter=None)           # adapter=None unloads the base and its adapters
    engine.pin(model, adapter=None, pinned=True)
    engine.model_ids() -> list[str]     # configured and loaded ids, "name" and "name:adapter"
    engine.conversations                # stored conversations by id (conversations.py)

    # inspection, for tests and debugging (device thread objects: look, touch only to inject faults)
    engine.request_ids() -> list[str]   # requests submitted and not yet ended
    engine.batch(model) -> Batch | None # a base model's generator (its adapters' rows too), while busy
    engine.scheduler, engine.device     # the running Scheduler and DeviceThread

A model id is "name" or "name:adapter", read as `model_ids.py` says (the adapter after the
last colon, a configured name as itself); GenerationRequest.adapter, when set, wins.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import queue
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Future
from dataclasses import replace

from ..model_ids import format_id, parse_id
from .batch import Batch
from .config import EngineConfig
from .conversations import ConversationStore
from .device import DeviceThread
from .errors import EngineNotReady, EngineStopped, InvalidRequest, ModelBusy, ModelNotFound
from .prompt_batch import MergedEvents
from .requests import Done, Event, Failed, GenerationRequest
from .scheduler import Scheduler
from .status import EngineStatus
from .submission import Submission

log = logging.getLogger(__name__)

MAX_RESTARTS = 3  # device thread deaths the engine recovers from before it gives up


class Engine:
    def __init__(self, config: EngineConfig | None = None):
        self.config = config or EngineConfig()
        self._state = "stopped"
        self._error: str | None = None
        self._restarts = 0
        self._queued = 0  # submitted, not yet in a batch (nor ended)
        self._lock = threading.Lock()  # guards _queued; taken per request, never per token
        self._scheduler: Scheduler | None = None
        self._device: DeviceThread | None = None
        # Conversations continued by id; their prompts hit the prompt cache by their tokens.
        self.conversations = ConversationStore(
            self.config.conversation_store_size, self.config.conversation_store_bytes
        )

    # ---- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        if self._state in ("starting", "running"):
            return
        self._state, self._error = "starting", None
        self._launch()
        self._state = "running"
        self._preload()
        # Release the models on the device thread even if the owner never calls stop().
        engine = weakref.ref(self)
        atexit.register(lambda: (alive := engine()) is not None and alive.stop())

    def _launch(self) -> None:
        self._scheduler = Scheduler(self.config, post=lambda *job: self.device.post(*job))
        self._device = DeviceThread(self._scheduler, on_exit=self._device_exited)
        self._device.start()
        self._device.post(self._scheduler.wire_memory)

    def _preload(self) -> None:
        for model_id in self.config.preload:
            self.load(*self._resolve(model_id, None)).add_done_callback(
                lambda f, m=model_id: f.exception() and log.error("preloading %s failed: %s", m, f.exception())
            )

    def stop(self, timeout: float = 10.0) -> None:
        if self._device is None or self._state == "stopped":
            self._state = "stopped"
            return
        self._state = "stopping"
        self._device.stop(EngineStopped("The engine stopped."), timeout)
        self._state = "stopped"

    def _device_exited(self, device: DeviceThread) -> None:
        """On the dying device thread, after it released its MLX state."""
        if self._state in ("stopping", "stopped") or device is not self._device:
            return
        self._error = f"The MLX device thread died: {device.error!r}"  # kept after a restart too
        if self._restarts >= MAX_RESTARTS:
            self._state = "failed"
            return
        self._restarts += 1
        log.warning("restarting the MLX device thread (restart %d)", self._restarts)
        self._launch()
        self._preload()

    def status(self) -> EngineStatus:
        snapshot = self._scheduler.snapshot if self._scheduler else EngineStatus(state="stopped")
        return replace(
            snapshot,
            recent=self._scheduler.metrics.recent.summary() if self._scheduler else snapshot.recent,
            state=self._state,
            queued_requests=self._queued,
            queue_limit=self.config.queue_limit,
            restarts=self._restarts,
            error=self._error,
        )

    # ---- generation --------------------------------------------------------

    async def agenerate(self, request: GenerationRequest) -> AsyncGenerator[Event, None]:
        async with contextlib.aclosing(self.astream(request)) as batches:
            async for batch in batches:
                for event in batch:
                    yield event

    async def astream(self, request: GenerationRequest) -> AsyncGenerator[list[Event], None]:
        """The events of `request` in batches: all that arrived since the caller
        last asked, so a consumer that falls behind catches up in one go."""
        events: asyncio.Queue = asyncio.Queue()
        self._submit(request, events.put_nowait, asyncio.get_running_loop())
        ended = False
        try:
            while not ended:
                batch = await events.get()
                while not events.empty():
                    batch += events.get_nowait()
                ended = isinstance(batch[-1], (Done, Failed))
                yield batch
        finally:
            if not ended:
                self.cancel(request.id)

    def astream_batch(self, requests: list[GenerationRequest]) -> AsyncGenerator[list[Event], None]:
        """Like astream, for a batch of prompts read as one request (see prompt_batch.py):
        choice i of requests[k] is choice sum(r.n for r in requests[:k]) + i."""
        return self.astream(requests[0]) if len(requests) == 1 else self._astream_merged(requests)

    async def _astream_merged(self, requests: list[GenerationRequest]) -> AsyncGenerator[list[Event], None]:
        events: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        merged = MergedEvents(requests)
        submitted = []
        try:
            for k, request in enumerate(requests):
                self._submit(request, lambda batch, k=k: events.put_nowait((k, batch)), loop)
                submitted.append(request)
            while not merged.ended:
                out = merged.take(*await events.get())
                while not events.empty() and not merged.ended:  # what arrived meanwhile goes too
                    out += merged.take(*events.get_nowait())
                if out:
                    yield out
        finally:
            if not merged.complete:  # one failed, or the caller left: the others go too
                for request in submitted:
                    self.cancel(request.id)

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        events: queue.SimpleQueue = queue.SimpleQueue()
        self._submit(request, events.put)
        ended = False
        try:
            while not ended:
                for event in events.get():
                    ended = isinstance(event, (Done, Failed))
                    yield event
        finally:
            if not ended:
                self.cancel(request.id)

    def cancel(self, request_id: str) -> None:
        if self._device is not None:
            self.device.post(self.scheduler.cancel, request_id, self.scheduler.steps)

    def _submit(
        self,
        request: GenerationRequest,
        send: Callable[[list[Event]], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Queue `request`; its events go to `send`, called on `loop` if given."""
        if self._state != "running":
            raise EngineNotReady(f"The engine is {self._state}." + (f" {self._error}" if self._error else ""))
        model, adapter = self._resolve(request.model, request.adapter)
        if sum(p is not None for p in (request.messages, request.prompt, request.infill)) != 1:
            raise InvalidRequest("Give exactly one of messages, prompt and infill.", param="messages")
        if request.sampling.max_tokens < 0:
            raise InvalidRequest("max_tokens must not be negative.", param="max_tokens")
        if request.n < 1:
            raise InvalidRequest("n must be at least 1.", param="n")
        if request.n > self.config.completion_batch_size:
            raise InvalidRequest(f"n must be at most {self.config.completion_batch_size}.", param="n")
        with self._lock:
            self._queued += 1
        sub = Submission(request, model, adapter, send, self._dequeued, loop)
        job = self.device.submit(self.scheduler.enqueue, sub)
        job.add_done_callback(lambda f: self._never_ran(sub, f.exception()))

    @staticmethod
    def _never_ran(sub: Submission, error: BaseException | None) -> None:
        """If the device thread ended before it took the request (`error`): end it anyway."""
        if error is None:
            return
        sub.leave_queue()
        events: list[Event] = [Failed(error)]
        if sub.loop is None:
            sub.send(events)
        else:
            sub.loop.call_soon_threadsafe(sub.send, events)

    def _dequeued(self) -> None:
        with self._lock:
            self._queued -= 1

    def _resolve(self, model_id: str, adapter: str | None) -> tuple[str, str | None]:
        """("name", adapter) for "name" or "name:adapter"; ModelNotFound if unknown."""
        model, named = parse_id(model_id, self.config.models)
        adapter = adapter or named
        spec = self.config.models.get(model)
        if spec is None or (adapter is not None and adapter not in spec.adapters):
            raise ModelNotFound(format_id(model, adapter), self.model_ids())
        return model, adapter

    def model_ids(self) -> list[str]:
        return self.config.model_ids()

    # ---- inspection --------------------------------------------------------

    @property
    def scheduler(self) -> Scheduler:
        """The running scheduler (replaced after a device thread restart)."""
        if self._scheduler is None:
            raise EngineNotReady("The engine has not started.")
        return self._scheduler

    @property
    def device(self) -> DeviceThread:
        """The running device thread (replaced after a restart)."""
        if self._device is None:
            raise EngineNotReady("The engine has not started.")
        return self._device

    def request_ids(self) -> list[str]:
        """The requests submitted and not yet ended (a copy: the device thread changes it)."""
        return list(self.scheduler.submissions)

    def batch(self, model: str) -> Batch | None:
        """The batch of base model `model` (its adapters' requests too) while it has requests; None once idle."""
        return self.scheduler.batches.get(model)

    # ---- pool admin --------------------------------------------------------

    def load(self, model: str, adapter: str | None = None, pin: bool | None = None) -> Future:
        """Load (model, adapter); `model` may be a configured name, a local folder
        or a Hugging Face repo id (registered under that name)."""
        return self._admin(self._load, model, adapter, pin)

    def unload(self, model: str, adapter: str | None = None) -> Future:
        return self._admin(self._unload, model, adapter)

    def pin(self, model: str, adapter: str | None = None, pinned: bool = True) -> Future:
        return self._admin(self._pin, model, adapter, pinned)

    def _admin(self, job: Callable, *args) -> Future:
        if self._state != "running":
            raise EngineNotReady(f"The engine is {self._state}.")
        result: Future = Future()

        def run():
            job(result, *args)
            self.scheduler.publish()

        self.device.submit(run).add_done_callback(
            lambda f: f.exception() and not result.done() and result.set_exception(f.exception())
        )
        return result

    # The jobs below run on the device thread.

    def _load(self, result: Future, model: str, adapter: str | None, pin: bool | None) -> None:
        pool = self.scheduler.pool
        if adapter is None and parse_id(model, self.config.models).model not in self.config.models:
            pool.register(model)  # a path or repo id, not "configured:adapter"
        model, adapter = self._resolve(model, adapter)
        entry = pool.entry(model, adapter)
        if pin is not None:
            entry.pinned = pin

        def ready(entry, error):
            if not result.done():  # the caller may have cancelled it
                self.scheduler.publish()  # whoever the answer wakes sees the new state
                result.set_exception(error) if error else result.set_result(entry.status())

        pool.acquire(model, adapter, ready)

    def _unload(self, result: Future, model: str, adapter: str | None) -> None:
        model, adapter = self._resolve(model, adapter)
        pool = self.scheduler.pool
        entry = pool.entry(model, adapter)
        busy = [e for e in pool.with_adapters(entry) if e.active_requests]
        if busy:
            raise ModelBusy(
                f"'{busy[0].id}' is serving {busy[0].active_requests} requests; unload it once they finish.",
                param="model",
            )
        if entry.state == "loaded":
            pool.unload(entry)
        elif entry.state == "failed":
            entry.state, entry.error = "unloaded", None  # the failure is forgotten; a load tries again
        self.scheduler.publish()
        result.set_result(entry.status())

    def _pin(self, result: Future, model: str, adapter: str | None, pinned: bool) -> None:
        model, adapter = self._resolve(model, adapter)
        entry = self.scheduler.pool.entry(model, adapter)
        entry.pinned = pinned
        self.scheduler.publish()
        result.set_result(entry.status())

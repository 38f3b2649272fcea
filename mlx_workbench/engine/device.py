"""The device thread: the one thread that makes MLX calls (docs/architecture.md, "Threads").

Other threads hand it jobs through a FIFO queue and get results through a
concurrent.futures.Future. Between rounds of jobs it runs `work.step()` while the
work is busy; idle, it blocks on the queue (with the work's tick timeout), so a
busy loop never sleeps and an idle one never spins.

Once stopped (or dead) the thread releases its MLX state and then parks for
good instead of ending: when a thread that ran MLX work ends before the process
does, MLX aborts at exit ("terminate called without an active exception", exit
134, 4 runs in 10 here even with every array freed); a parked daemon thread
never triggers it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

from .errors import EngineError, EngineNotReady

log = logging.getLogger(__name__)


class Work(Protocol):
    """What the device thread drives (the scheduler)."""

    busy: bool  # step() has something to do

    def step(self) -> None: ...

    def tick(self) -> float | None:
        """Housekeeping while idle; returns seconds until the next tick, or None."""

    def close(self, error: EngineError) -> None:
        """Fail what is in flight with `error` and release every MLX object."""


_STOP = object()


class DeviceThread:
    def __init__(self, work: Work, on_exit: Callable[[DeviceThread], None], name: str = "mlx-device"):
        self.work = work
        self.error: BaseException | None = None  # why the loop died, if it did
        self._on_exit = on_exit
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._stop_error: EngineError | None = None
        self._exit_error: Exception | None = None  # set once the loop is over: late jobs fail with it
        self._closed = threading.Event()  # the loop is over and MLX state released
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed.is_set()

    @property
    def current(self) -> bool:
        """True when called from the device thread itself."""
        return threading.current_thread() is self._thread

    def submit(self, fn: Callable, *args) -> Future:
        """Run `fn(*args)` on the device thread; its result or exception lands in the Future."""
        future: Future = Future()
        self._put((fn, args, future))
        return future

    def post(self, fn: Callable, *args) -> None:
        """Like submit, for jobs that report on their own (no Future to fill)."""
        self._put((fn, args, None))

    def _put(self, job) -> None:
        self._jobs.put(job)
        if self._exit_error is not None:  # too late: nobody will run it
            self._fail_queued(self._exit_error)

    def stop(self, error: EngineError, timeout: float | None = None) -> None:
        """Finish the current step, fail what is in flight with `error`, release
        models on the device thread, and wait until that is done."""
        self._stop_error = error
        self._jobs.put(_STOP)
        if not self.current:
            self._closed.wait(timeout)

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self._closed.wait(timeout)

    def _run(self) -> None:
        try:
            while self._run_jobs():
                if self.work.busy:
                    self.work.step()
        except BaseException as e:  # noqa: BLE001 - the loop itself died; report, never hang callers
            log.exception("MLX device thread died")
            self.error = e
        finally:
            self._close()
            self._on_exit(self)  # the engine replaces this thread before anyone sees it closed
            self._closed.set()
        threading.Event().wait()  # park: see the module docstring

    def _run_jobs(self) -> bool:
        """Run the jobs queued so far, or block for one when the work is idle. The jobs
        they queue wait for the next step: a job done in parts (a model reading its
        weights) re-queues itself, and streams go on in between. False on stop."""
        queued = self._jobs.qsize()
        while True:
            try:
                if self.work.busy:
                    if queued == 0:
                        return True
                    job = self._jobs.get_nowait()
                    queued -= 1
                else:
                    job = self._jobs.get(timeout=self.work.tick())
                    queued = self._jobs.qsize()
            except queue.Empty:
                return True
            if job is _STOP:
                return False
            fn, args, future = job
            if future is not None and not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except Exception as e:  # a failing job fails its caller only
                if future is None:
                    log.exception("device job %s failed", getattr(fn, "__name__", fn))
                else:
                    future.set_exception(e)
            else:
                if future is not None:
                    future.set_result(result)

    def _close(self) -> None:
        error = self._stop_error or EngineNotReady(f"The MLX device thread died: {self.error!r}")
        try:
            self.work.close(error)
        except Exception:
            log.exception("releasing the engine's MLX state failed")
        self._exit_error = error
        self._fail_queued(error)

    def _fail_queued(self, error: Exception) -> None:
        """Jobs left behind must not leave their callers waiting forever."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP and job[2] is not None and job[2].set_running_or_notify_cancel():
                job[2].set_exception(error)

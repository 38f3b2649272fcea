"""Remote entries of the pool: models another OpenAI-compatible server serves (vLLM,
llama.cpp, mlx_lm.server, another mlx_workbench), and distributed entries (an
`mlx.launch` group of mlx_lm.server ranks started here, served as a remote on loopback).

`RemoteBackend` lives on the server's event loop beside the Engine and never touches the
device thread: one pooled `httpx.AsyncClient` carries every request (a short connect
timeout, no read timeout, since a big model's prefill may keep the first byte waiting for
minutes), and a task polls each entry's health. The api forwards a request's body with
`open()` and streams the upstream's bytes through as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from ..engine.status import EntryStatus
from .distributed import DistributedServer, DistributedSpec, RankDied

CONNECT_TIMEOUT = 5.0
HEALTH_INTERVAL = 10.0


@dataclass
class RemoteSpec:
    """A model served elsewhere: its server's OpenAI base URL ("http://gpu-box:8000/v1"),
    its id there, and the key that server wants (given, or read from an environment
    variable at start). A distributed entry has no URL until its group is started."""

    name: str
    url: str
    model: str
    api_key: str | None = None
    distributed: DistributedSpec | None = None


def remote_spec(name: str, value: dict) -> RemoteSpec | None:
    """The `MLXWorkbench.models` entry `value` as a RemoteSpec, None if it is a local model;
    ValueError for one that is neither."""
    if "url" in value:
        unknown = set(value) - {"url", "model", "api_key", "api_key_env"}
        if unknown or "model" not in value or ("api_key" in value and "api_key_env" in value):
            raise ValueError(
                f"model {name!r}: a remote entry is {{'url': ..., 'model': ..., 'api_key' or 'api_key_env': ...}},"
                f" got {value!r}"
            )
        key = value.get("api_key") or (os.environ.get(value["api_key_env"]) if "api_key_env" in value else None)
        return RemoteSpec(name, value["url"].rstrip("/"), value["model"], key)
    if "distributed" in value:
        if set(value) != {"path", "distributed"}:
            raise ValueError(f"model {name!r}: a distributed entry is {{'path': ..., 'distributed': {{...}}}}")
        spec = DistributedSpec.parse(name, value["path"], value["distributed"])
        return RemoteSpec(name, "", spec.path, distributed=spec)
    return None


class RemoteError(Exception):
    """A remote entry could not answer: `status` and `code` say how (502 the upstream
    failed or answered nonsense, 503 it is down or still starting, 400 for what a remote
    entry cannot do)."""

    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class RemoteEntry:
    def __init__(self, spec: RemoteSpec):
        self.spec = spec
        self.state = "loaded" if spec.distributed is None else "unloaded"
        self.error: str | None = None
        self.latency: float | None = None  # seconds of the last health check
        self.active = 0
        self.last_used: float | None = None
        self.server: DistributedServer | None = None
        self.starting: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return self.server.url if self.server else self.spec.url

    def status(self) -> EntryStatus:
        return EntryStatus(
            id=self.spec.name,
            model=self.spec.name,
            adapter=None,
            state=self.state,  # pyright: ignore[reportArgumentType]  (one of EntryState)
            progress=self.server.progress if self.server and self.state == "loading" else 0.0,
            last_used=self.last_used,
            active_requests=self.active,
            error=self.error,
            remote=self.url or None,
            latency_ms=None if self.latency is None else round(self.latency * 1000, 1),
        )


class RemoteBackend:
    def __init__(self, specs: dict[str, RemoteSpec], idle_timeout: float | None = None, log=None):
        self.entries = {name: RemoteEntry(spec) for name, spec in specs.items()}
        self.idle_timeout = idle_timeout
        self.log = log
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=CONNECT_TIMEOUT, read=None, write=60.0, pool=60.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
        )
        self._poller: asyncio.Task | None = None

    def ids(self) -> list[str]:
        return list(self.entries)

    def status(self) -> list[EntryStatus]:
        return [entry.status() for entry in self.entries.values()]

    def start(self) -> None:
        """Starts the health poll; call on the event loop."""
        if self.entries:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stops the poll and every distributed group (no rank survives), closes the client."""
        if self._poller:
            self._poller.cancel()
        await asyncio.gather(*(self.unload(name) for name, e in self.entries.items() if e.spec.distributed))
        await self.client.aclose()

    # ---- requests ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open(self, name: str, path: str, body: dict) -> AsyncIterator[httpx.Response]:
        """POST `body` (its model replaced by the upstream's id) to the entry's server at
        `path` ("chat/completions"); yields the response with its body still to read, and
        closes the upstream connection on the way out, which stops an unfinished answer."""
        entry = self.entries[name]
        await self._ready(entry)
        request = self.client.build_request(
            "POST", f"{entry.url}/{path}", json={**body, "model": entry.spec.model}, headers=self._headers(entry)
        )
        entry.active += 1
        entry.last_used = time.time()
        try:
            try:
                response = await self.client.send(request, stream=True)
            except httpx.HTTPError as e:
                self._down(entry, e)
                raise RemoteError(
                    502 if isinstance(e, httpx.ProtocolError) else 503, self._why(entry, e), "upstream_unavailable"
                ) from e
            if entry.spec.distributed is None and _serves_us(response.status_code):  # up before the next check
                entry.state, entry.error = "loaded", None
            try:
                yield response
            finally:
                await response.aclose()
        finally:
            entry.active -= 1
            entry.last_used = time.time()

    def _headers(self, entry: RemoteEntry) -> dict:
        return {"Authorization": f"Bearer {entry.spec.api_key}"} if entry.spec.api_key else {}

    async def _ready(self, entry: RemoteEntry) -> None:
        """A distributed entry's group, started on first use and awaited."""
        if entry.spec.distributed is None:
            return
        if entry.state != "loaded":
            await self.load(entry.spec.name)
        if entry.state != "loaded":
            raise RemoteError(
                503, f"The distributed model '{entry.spec.name}' failed: {entry.error}", "model_load_failed"
            )

    # ---- pool admin -------------------------------------------------------------------

    def begin_load(self, name: str) -> asyncio.Task:
        """A distributed entry: its group starting (one start shared by every caller), a task
        that ends once it serves or failed. A plain remote entry cannot be loaded: RemoteError 400."""
        entry = self._distributed(name, "loaded")
        if entry.starting is None or entry.starting.done():
            entry.starting = asyncio.get_running_loop().create_task(self._launch(entry))
            if entry.state != "loaded":
                entry.state, entry.error = "loading", None
        return entry.starting

    async def load(self, name: str) -> EntryStatus:
        await asyncio.shield(self.begin_load(name))
        return self.entries[name].status()

    async def unload(self, name: str) -> EntryStatus:
        """A distributed entry: stop its group, every rank. A remote entry: RemoteError 400."""
        entry = self._distributed(name, "unloaded")
        if entry.starting and not entry.starting.done():
            entry.starting.cancel()
        if entry.server:
            await entry.server.stop()
            entry.server = None
        entry.state, entry.error, entry.latency = "unloaded", None, None
        return entry.status()

    def _distributed(self, name: str, action: str) -> RemoteEntry:
        entry = self.entries[name]
        if entry.spec.distributed is None:
            raise RemoteError(
                400,
                f"The model '{name}' is served by {entry.spec.url}: it cannot be {action} from here.",
                "remote_model",
            )
        return entry

    async def _launch(self, entry: RemoteEntry) -> None:
        assert entry.spec.distributed is not None
        if entry.state == "loaded":
            return
        entry.server = DistributedServer(entry.spec.distributed)
        try:
            await entry.server.start(self.client)
        except asyncio.CancelledError:
            await entry.server.stop()
            raise
        except (RankDied, OSError, TimeoutError) as e:
            await entry.server.stop()
            entry.state, entry.error = "failed", str(e)
            return
        entry.state = "loaded"
        if self.log:
            self.log.info("mlx_workbench: distributed model %s serves at %s", entry.spec.name, entry.url)

    # ---- health -----------------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            results = await asyncio.gather(*(self.check(e) for e in self.entries.values()), return_exceptions=True)
            for entry, result in zip(self.entries.values(), results):
                if isinstance(result, Exception) and self.log:  # the poll goes on for the others
                    self.log.error("mlx_workbench: health check of %s failed: %r", entry.spec.name, result)
            await asyncio.sleep(HEALTH_INTERVAL)

    async def check(self, entry: RemoteEntry) -> None:
        """One health check: GET models on the entry's server, its latency recorded; a
        distributed group whose rank died fails with its log tail; an idle one stops."""
        if entry.spec.distributed is not None:
            if entry.state != "loaded" or entry.server is None:
                return
            if (died := entry.server.died()) is not None:
                await entry.server.stop()
                entry.server, entry.state, entry.error = None, "failed", died
                return
            idle = time.time() - (entry.last_used or 0)
            if self.idle_timeout and not entry.active and idle > self.idle_timeout:
                await self.unload(entry.spec.name)
                return
        started = time.monotonic()
        try:
            response = await self.client.get(
                f"{entry.url}/models", headers=self._headers(entry), timeout=CONNECT_TIMEOUT * 2
            )
            if not _serves_us(response.status_code):
                raise httpx.HTTPStatusError(
                    f"answered {response.status_code}", request=response.request, response=response
                )
        except httpx.HTTPError as e:
            self._down(entry, e)
            return
        entry.latency = time.monotonic() - started
        entry.state, entry.error = "loaded", None

    def _down(self, entry: RemoteEntry, error: Exception) -> None:
        if entry.spec.distributed is None or entry.state == "loaded":
            entry.state, entry.error, entry.latency = "failed", self._why(entry, error), None

    @staticmethod
    def _why(entry: RemoteEntry, error: Exception) -> str:
        return f"{entry.url} did not answer: {type(error).__name__}: {error or 'no reason given'}"


def _serves_us(status: int) -> bool:
    """An answer from a server that is up and takes our key (a 4xx of the client's is fine)."""
    return status < 500 and status not in (401, 403)

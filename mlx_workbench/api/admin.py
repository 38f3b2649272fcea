"""Tornado handlers beside the OpenAI API: health (no auth), server status, the
pool admin (load, unload, pin) and the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.utils import url_path_join
from tornado import web

from ..engine import errors
from ..engine.status import EntryStatus
from ..model_ids import format_id
from ..remote.backend import RemoteError
from . import request_schemas as req
from . import response_schemas as res
from .base import BaseHandler
from .errors import api_error
from .proxy import remote_error


class HealthHandler(BaseHandler):
    _track_activity = False  # polling health must not keep an idle server alive

    @allow_unauthenticated
    def get(self):
        status = self.engine.status()
        health = (
            "ok" if status.state == "running" else "degraded" if status.state in ("starting", "stopping") else "down"
        )
        body = res.HealthResponse(
            status=health,
            version=self.workbench.version,
            engine=status.state,
            loaded=[e.id for e in status.entries if e.state == "loaded"],
            restarts=status.restarts,
        )
        self.send(body, 503 if health == "down" else 200)


class StatusHandler(BaseHandler):
    @web.authenticated
    def get(self):
        config = self.workbench.engine_config
        configured = [
            res.ConfiguredModel(name=m.name, path=m.path, adapters=list(m.adapters)) for m in config.models.values()
        ] + [res.ConfiguredModel(name=e.id, path=e.remote or "", adapters=[]) for e in self.workbench.remote.status()]
        info = res.ServerInfo(
            version=self.workbench.version,
            openai_base_url=url_path_join(self.base_url, "mlx/v1"),
            default_model=config.default_model,
            configured=configured,
        )
        status = self.engine.status()
        status.entries = status.entries + self.workbench.remote.status()
        self.send(res.StatusResponse(**info.model_dump(), **vars(status)))


class EntryHandler(BaseHandler):
    """Pool admin: each action returns a concurrent Future of the EntryStatus."""

    async def entry(self, future) -> EntryStatus:
        try:
            return await asyncio.wrap_future(future)
        except errors.EngineError as e:
            raise api_error(e) from None

    async def remote(self, action: str, model: str, adapter: str | None, wait: bool = True) -> bool:
        """Answers for a remote entry (True): a distributed one starts or stops its group,
        anything else is a 400."""
        if model not in self.workbench.remote.entries:
            return False
        backend = self.workbench.remote
        try:
            if adapter or action == "pin":
                raise RemoteError(
                    400, f"The model '{model}' is remote: it has no adapters and cannot be pinned.", "remote_model"
                )
            if action == "load" and not wait:
                backend.begin_load(model)
                entry = backend.entries[model].status()
                self.send(res.EntryResponse(entry=entry), 200 if entry.state == "loaded" else 202)
                return True
            entry = await (backend.load(model) if action == "load" else backend.unload(model))
        except RemoteError as e:
            raise remote_error(e) from None
        self.send(res.EntryResponse(entry=entry))
        return True

    def call(self, action, *args, **kwargs):
        try:
            return action(*args, **kwargs)
        except errors.EngineError as e:
            raise api_error(e) from None


class LoadHandler(EntryHandler):
    @web.authenticated
    async def post(self):
        body: req.LoadRequest = self.parse(req.LoadRequest)
        if await self.remote("load", body.model, body.adapter, body.wait):
            return
        model, adapter = self.model_id(body.model, body.adapter)
        entry_id = format_id(model, adapter)
        known = self.engine.model_ids()
        if adapter and entry_id not in known:  # refused now rather than in a 202's aftermath
            raise api_error(errors.ModelNotFound(entry_id, known))
        future = self.call(self.engine.load, model, adapter, pin=body.pin)
        if body.wait or future.done():
            self.send(res.EntryResponse(entry=await self.entry(future)))
            return
        current = next((e for e in self.engine.status().entries if e.id == entry_id), None)
        if current is None:
            entry = EntryStatus(id=entry_id, model=model, adapter=adapter, state="loading")
        else:  # the device thread may not have taken the job yet
            entry = current if current.state == "loaded" else replace(current, state="loading", error=None)
        self.send(res.EntryResponse(entry=entry), 202)


class UnloadHandler(EntryHandler):
    @web.authenticated
    async def post(self):
        body: req.UnloadRequest = self.parse(req.UnloadRequest)
        if await self.remote("unload", body.model, body.adapter):
            return
        model, adapter = self.model_id(body.model, body.adapter)
        self.send(res.EntryResponse(entry=await self.entry(self.call(self.engine.unload, model, adapter))))


class PinHandler(EntryHandler):
    @web.authenticated
    async def post(self):
        body: req.PinRequest = self.parse(req.PinRequest)
        if await self.remote("pin", body.model, body.adapter):
            return
        model, adapter = self.model_id(body.model, body.adapter)
        future = self.call(self.engine.pin, model, adapter, pinned=body.pinned)
        self.send(res.EntryResponse(entry=await self.entry(future)))


class OpenAPIHandler(BaseHandler):
    @web.authenticated
    def get(self):
        from .openapi import openapi_document

        self.finish(json.dumps(openapi_document(self.workbench.version, self.base_url)))

"""Tornado handlers: the OpenAI API, health and the pool admin API.

Each handler validates its body with the pydantic models of `request_schemas.py`, talks
to the engine (`self.engine`, set up by `app.py`) and answers OpenAI-shaped JSON,
errors included. A generation waits for the engine's Started (or Failed) before
any header leaves, so errors found while loading or tokenizing keep their
status code; after that, a stream reports a failure as an `error` event.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import time
from dataclasses import replace
from http.client import responses

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from pydantic import BaseModel, ValidationError
from tornado import web

from ..engine import errors
from ..engine.requests import Delta, Done, Failed, Finished, GenerationRequest, Progress, Started
from ..engine.status import EntryStatus
from . import request_schemas as req
from . import response_schemas as res
from .formats import ChatBuilder, ResponseBuilder, TextBuilder, merge_deltas
from .sse import ClientGone, EventStream

# ---- errors -----------------------------------------------------------------------


class ApiError(web.HTTPError):
    """An error answered as {"error": {...}}; raise it from any handler."""

    def __init__(
        self, status: int, message: str, type: str = "invalid_request_error", param=None, code=None, headers=None
    ):
        super().__init__(status, log_message=message.replace("%", "%%"))
        self.detail = res.ErrorDetail(message=message, type=type, param=param, code=code)
        self.headers = headers or {}


# engine error -> (status, type, code); the first matching class wins.
_ENGINE_ERRORS: list[tuple[type, int, str, str]] = [
    (errors.ContextLengthExceeded, 400, "invalid_request_error", "context_length_exceeded"),
    (errors.InvalidForModel, 400, "invalid_request_error", "invalid_for_model"),
    (errors.InvalidRequest, 400, "invalid_request_error", "invalid_value"),
    (errors.ModelNotFound, 404, "invalid_request_error", "model_not_found"),
    (errors.QueueFull, 429, "rate_limit_error", "queue_full"),
    (errors.EngineNotReady, 503, "server_error", "engine_not_ready"),
    (errors.EngineStopped, 503, "server_error", "engine_stopped"),
    (errors.MemoryBudgetExceeded, 503, "server_error", "memory_budget_exceeded"),
    (errors.LoadFailed, 503, "server_error", "model_load_failed"),
    (errors.ChatTemplateFailed, 500, "server_error", "chat_template_error"),
    (errors.GenerationFailed, 500, "server_error", "generation_failed"),
]


def api_error(exc: Exception) -> ApiError:
    for cls, status, type_, code in _ENGINE_ERRORS:
        if isinstance(exc, cls):
            headers = {"Retry-After": str(math.ceil(exc.retry_after))} if isinstance(exc, errors.QueueFull) else None
            return ApiError(status, exc.message, type_, exc.param, code, headers)
    return ApiError(500, f"Internal error: {type(exc).__name__}: {exc}", "server_error")


# pydantic's loc names union members ('str', 'list[int]', 'TextPart'...); a param is fields and indexes only.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|[A-Z]\w*|[\w-]+\[.*\]|\[key\])$")


def validation_error(exc: ValidationError) -> ApiError:
    # Of a union's alternatives, the one that got furthest says the most.
    first = max(exc.errors(), key=lambda e: len(e["loc"]))
    param = ".".join(str(p) for p in first["loc"] if isinstance(p, int) or not _UNION_TAG.match(p)) or None
    reason = first["msg"].removeprefix("Value error, ")
    if first["type"] == "json_invalid":
        return ApiError(400, f"The request body is not valid JSON: {reason.removeprefix('Invalid JSON: ')}.",
                        code="invalid_json")
    if first["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
    elif first["type"] == "model_type":
        message = "The request body must be a JSON object."
    elif param is None:
        message = f"Invalid request: {reason}."
    else:
        message = f"Invalid value for '{param}': {reason}."
    code = "missing_required_parameter" if first["type"] == "missing" else "invalid_value"
    return ApiError(400, message, param=param, code=code)


# ---- base ---------------------------------------------------------------------------


def implemented_methods(handler: type[web.RequestHandler]) -> list[str]:
    """The HTTP methods `handler` answers (the others are 405)."""
    return [m for m in handler.SUPPORTED_METHODS
            if getattr(handler, m.lower()) is not getattr(web.RequestHandler, m.lower())]


def is_open(method) -> bool:
    """Marked @allow_unauthenticated."""
    return getattr(method, "__allow_unauthenticated", False)


class BaseHandler(APIHandler):
    @property
    def workbench(self):
        """The MLXWorkbench extension app."""
        return self.settings["mlx_workbench"]

    @property
    def engine(self):
        return self.workbench.engine

    async def prepare(self):
        await super().prepare()
        # Jupyter only refuses what @web.authenticated guards; refuse an unknown path or
        # method too, so that nothing under mlx/ but health answers without a token.
        if not self.current_user and not is_open(getattr(self, self.request.method.lower())):
            raise web.HTTPError(403)  # answered as 401 by write_error

    def parse(self, model: type[BaseModel]):
        # pydantic parses the bytes itself: bounded nesting, UTF-8 checked, JSON types kept.
        try:
            return model.model_validate_json(self.request.body or b"null")
        except ValidationError as e:
            raise validation_error(e) from None

    def send(self, body: BaseModel, status: int = 200) -> None:
        self.set_status(status)
        self.finish(body.model_dump_json())

    def write_error(self, status_code: int, **kwargs) -> None:
        """Every error OpenAI-shaped, never an HTML page."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            error = exc
        elif status_code == 403 and not self.current_user:
            # Jupyter refuses a missing or wrong token with 403; OpenAI clients expect 401.
            error = ApiError(
                401,
                "Missing or invalid token: pass the Jupyter server's token as the API key "
                "(Authorization: Bearer <token>).",
                code="invalid_api_key",
            )
            self.set_header("WWW-Authenticate", "Bearer")
        elif status_code == 403 and "xsrf" in str(getattr(exc, "log_message", "")).lower():
            error = ApiError(
                403,
                "A cookie-authenticated request that changes state needs the X-XSRFToken header "
                "(the value of the _xsrf cookie); an API client should send the token instead "
                "(Authorization: Bearer <token>).",
                code="xsrf_check_failed",
            )
        elif isinstance(exc, web.HTTPError):
            message = exc.log_message % exc.args if exc.log_message else responses.get(status_code, "Error")
            error = ApiError(status_code, message)
        elif exc is not None:
            error = api_error(exc)
        else:
            error = ApiError(status_code, responses.get(status_code, "Error"))
        if status_code != error.status_code:
            self.set_status(error.status_code)
        if error.status_code == 405:
            self.set_header("Allow", ", ".join(implemented_methods(type(self))))
        for name, value in error.headers.items():
            self.set_header(name, value)
        self.finish(res.ErrorResponse(error=error.detail).model_dump_json())


# ---- OpenAI: generation -----------------------------------------------------------------


def split_model_id(model_id: str, adapter: str | None) -> tuple[str, str | None]:
    """"name:adapter" -> (name, adapter); the "adapter" field must agree with it."""
    name, sep, id_adapter = model_id.rpartition(":")
    if not (sep and name and id_adapter):
        return model_id, adapter
    if adapter not in (None, id_adapter):
        raise ApiError(400, f"The model id names adapter '{id_adapter}' but 'adapter' is '{adapter}'.",
                       param="adapter", code="conflicting_adapter")
    return name, id_adapter


class GenerationHandler(BaseHandler):
    """Runs one GenerationRequest and answers it as JSON or as an event stream."""

    endpoint = ""
    _request_id: str | None = None
    _client_gone = False
    _tokens = 0  # completion tokens received from the engine

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._client_gone = True
        if self._request_id:
            self.engine.cancel(self._request_id)

    async def generate(self, body: req.GenerationParams, request: GenerationRequest, builder: ResponseBuilder) -> None:
        if self._client_gone:  # hung up while the request was read or authenticated: nothing to run
            self.log.info("%s: client gone before the request was queued", self._describe(body, request))
            return
        self._request_id = request.id
        submitted = time.monotonic()
        task = asyncio.current_task()  # so that server shutdown waits for this answer
        self.workbench.generations.add(task)
        task.add_done_callback(self.workbench.generations.discard)
        try:
            batches = self.engine.astream(request)
            first, *rest = await anext(batches)
        except errors.EngineError as e:
            raise api_error(e) from None
        stream = None
        try:
            if isinstance(first, Failed):
                raise api_error(first.error)
            if not isinstance(first, Started):  # Done: cancelled while it queued, the client hung up
                raise ClientGone()
            if body.stream:
                stream = EventStream(self, self.workbench.sse_keepalive)
                stream.start()
                for chunk in builder.opening_chunks():
                    stream.write(chunk)
                answer = functools.partial(self._stream, stream, builder, body.include_usage)
            else:
                answer = functools.partial(self._collect, builder)
            batch = rest
            while (last := await answer(batch)) is None:
                batch = await anext(batches)
        except ClientGone:
            last = None
        finally:
            if stream is not None:
                stream.close()
            await batches.aclose()  # cancels the request unless it ended
        self._log_generation(body, request, last, time.monotonic() - submitted)

    # Each answer takes the events in the batches they arrive in, and returns the
    # request's last event (Done or Failed) once it has seen it.

    async def _collect(self, builder: ResponseBuilder, batch: list) -> Done | None:
        for event in batch:
            if isinstance(event, Delta):
                self._tokens += len(event.token_ids)
                builder.add(event)
            elif isinstance(event, Finished):
                builder.finish(event.index, event.reason)
            elif isinstance(event, Failed):
                raise api_error(event.error)
            elif isinstance(event, Done):
                if self._client_gone:  # cancelled by the disconnect
                    raise ClientGone()
                self.send(builder.response(event.usage))
                return event
        return None

    async def _stream(self, stream: EventStream, builder: ResponseBuilder, include_usage: bool,
                      batch: list) -> Done | Failed | None:
        """One chunk per choice and batch: a client that falls behind gets the
        tokens it missed in one delta, instead of ever more chunks to parse."""
        for event in merge_deltas(batch):
            if isinstance(event, Delta):
                self._tokens += len(event.token_ids)
                chunk = builder.delta_chunk(event)
                if chunk is not None:
                    stream.write(chunk)
            elif isinstance(event, Finished):
                stream.write(builder.finish_chunk(event.index, event.reason))
            elif isinstance(event, Failed):
                # The 200 is gone: report in-band, as OpenAI does, and end without [DONE].
                stream.fail(res.ErrorResponse(error=api_error(event.error).detail))
                return event
            elif isinstance(event, Done):
                if include_usage:
                    stream.write(builder.usage_chunk(event.usage))
                stream.done()
                return event
            else:
                assert isinstance(event, Progress), event
        await stream.flush()
        return None

    def _log_generation(self, body: req.GenerationParams, request: GenerationRequest, last, seconds: float) -> None:
        """One line per request: what a person tuning the server wants to see."""
        what = self._describe(body, request)
        if isinstance(last, Failed):
            self.log.warning("%s: failed after %.2fs: %s", what, seconds, last.error)
        elif last is None:
            self.log.info("%s: client gone, cancelled after %.2fs and %d tokens", what, seconds, self._tokens)
        else:
            u = last.usage
            rate = u.completion_tokens / u.generation_seconds if u.generation_seconds > 0 else 0.0
            self.log.info(
                "%s: prompt %d tokens (%d cached), completion %d tokens, TTFT %.0f ms, %.1f tokens/s",
                what, u.prompt_tokens, u.cached_tokens, u.completion_tokens, u.time_to_first_token * 1000, rate,
            )

    def _describe(self, body: req.GenerationParams, request: GenerationRequest) -> str:
        model = request.model + (f":{request.adapter}" if request.adapter else "")
        return f"mlx {self.endpoint} {model} ({'stream' if body.stream else 'json'})"

    def request_for(self, body: req.GenerationParams, **prompt) -> GenerationRequest:
        model, adapter = split_model_id(body.model, body.adapter)
        return GenerationRequest(
            model=model, adapter=adapter, sampling=body.sampling(self.workbench.max_tokens_cap), n=body.n, **prompt
        )


class ChatCompletionsHandler(GenerationHandler):
    endpoint = "chat"

    @web.authenticated
    async def post(self):
        body: req.ChatCompletionRequest = self.parse(req.ChatCompletionRequest)
        request = self.request_for(body, messages=[m.for_template() for m in body.messages])
        await self.generate(body, request, ChatBuilder(body.model, body.n, body.logprobs))


class CompletionsHandler(GenerationHandler):
    endpoint = "completion"

    @web.authenticated
    async def post(self):
        body: req.CompletionRequest = self.parse(req.CompletionRequest)
        request = self.request_for(body, prompt=body.prompt)
        echo = body.prompt if body.echo else ""
        await self.generate(body, request, TextBuilder(body.model, body.n, body.wants_logprobs(), echo))


# ---- OpenAI: models ------------------------------------------------------------------------


class ModelsHandler(BaseHandler):
    @web.authenticated
    def get(self):
        created = self.workbench.started_at
        self.send(res.ModelList(data=[res.Model(id=i, created=created) for i in self.engine.model_ids()]))


class ModelHandler(BaseHandler):
    @web.authenticated
    def get(self, model_id: str):
        known = self.engine.model_ids()
        if model_id not in known:
            raise api_error(errors.ModelNotFound(model_id, known))
        self.send(res.Model(id=model_id, created=self.workbench.started_at))


# ---- health and pool admin -------------------------------------------------------------------


class HealthHandler(BaseHandler):
    _track_activity = False  # polling health must not keep an idle server alive

    @allow_unauthenticated
    def get(self):
        status = self.engine.status()
        health = {"running": "ok", "starting": "degraded", "stopping": "degraded"}.get(status.state, "down")
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
        ]
        info = res.ServerInfo(
            version=self.workbench.version,
            openai_base_url=url_path_join(self.base_url, "mlx/v1"),
            default_model=config.default_model,
            configured=configured,
        )
        self.send(res.StatusResponse(**info.model_dump(), **vars(self.engine.status())))


class EntryHandler(BaseHandler):
    """Pool admin: each action returns a concurrent Future of the EntryStatus."""

    async def entry(self, future) -> EntryStatus:
        try:
            return await asyncio.wrap_future(future)
        except errors.EngineError as e:
            raise api_error(e) from None

    def call(self, action, *args, **kwargs):
        try:
            return action(*args, **kwargs)
        except errors.EngineError as e:
            raise api_error(e) from None


class LoadHandler(EntryHandler):
    @web.authenticated
    async def post(self):
        body: req.LoadRequest = self.parse(req.LoadRequest)
        model, adapter = split_model_id(body.model, body.adapter)
        known = self.engine.model_ids()
        if adapter and f"{model}:{adapter}" not in known:  # refused now rather than in a 202's aftermath
            raise api_error(errors.ModelNotFound(f"{model}:{adapter}", known))
        future = self.call(self.engine.load, model, adapter, pin=body.pin)
        if body.wait or future.done():
            self.send(res.EntryResponse(entry=await self.entry(future)))
            return
        entry_id = model + (f":{adapter}" if adapter else "")
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
        model, adapter = split_model_id(body.model, body.adapter)
        self.send(res.EntryResponse(entry=await self.entry(self.call(self.engine.unload, model, adapter))))


class PinHandler(EntryHandler):
    @web.authenticated
    async def post(self):
        body: req.PinRequest = self.parse(req.PinRequest)
        model, adapter = split_model_id(body.model, body.adapter)
        future = self.call(self.engine.pin, model, adapter, pinned=body.pinned)
        self.send(res.EntryResponse(entry=await self.entry(future)))


class OpenAPIHandler(BaseHandler):
    @web.authenticated
    def get(self):
        from .openapi import openapi_document

        self.finish(json.dumps(openapi_document(self.workbench.version, self.base_url)))


class NotFoundHandler(BaseHandler):
    """Unknown paths under mlx/ answer OpenAI-shaped 404s, whatever the method."""

    async def prepare(self):
        await super().prepare()  # refuses a request without a token first
        raise ApiError(404, f"Unknown endpoint: {self.request.method} {self.request.path}.", code="unknown_url")


HANDLERS = [
    (r"mlx/v1/chat/completions", ChatCompletionsHandler),
    (r"mlx/v1/completions", CompletionsHandler),
    (r"mlx/v1/models", ModelsHandler),
    (r"mlx/v1/models/(.+)", ModelHandler),
    (r"mlx/health", HealthHandler),
    (r"mlx/api/status", StatusHandler),
    (r"mlx/api/models/load", LoadHandler),
    (r"mlx/api/models/unload", UnloadHandler),
    (r"mlx/api/models/pin", PinHandler),
    (r"mlx/api/openapi.json", OpenAPIHandler),
    (r"mlx/(?:v1|api)/.*", NotFoundHandler),
]

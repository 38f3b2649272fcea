"""Tornado handlers of the OpenAI API (chat and text completions, Responses, models),
of Anthropic's Messages API, and HANDLERS, the route table of every handler under mlx/.

Each handler validates its body with the pydantic models of `request_schemas.py`
(`responses.py`, `anthropic.py`), talks to the engine (`self.engine`, set up by `app.py`)
and answers in its API's shape, errors included (`errors.py`). Every generation takes one
path, `GenerationHandler.generate`, and a builder per wire format (`formats.py`). It waits
for the engine's Started (or Failed) before any header leaves, so errors found while
loading or tokenizing keep their status code; after that, a stream reports a failure as
an event.
Health and the pool admin are in `admin.py`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Protocol

from tornado import web

from ..engine import errors, metrics
from ..engine.conversations import Conversation
from ..engine.requests import (
    Delta,
    Done,
    Failed,
    Finished,
    GenerationRequest,
    Progress,
    PromptLogprobs,
    SamplingParams,
    Started,
)
from ..model_ids import format_id
from . import anthropic
from . import request_schemas as req
from . import response_schemas as res
from .admin import HealthHandler, LoadHandler, OpenAPIHandler, PinHandler, StatusHandler, UnloadHandler
from .base import BaseHandler
from .errors import ApiError, api_error
from .formats import ChatBuilder, ResponseBuilder, TextBuilder, merge_deltas
from .inline import InlineCompletionRequest
from .proxy import forwarded
from .remote_events import remote_events
from .response_objects import DeletedResponse, Response
from .response_requests import CreateResponse, template_message
from .responses import ResponsesBuilder, output_messages
from .sse import ClientGone, EventStream
from .tracing import RequestSpan


class GenerationBody(Protocol):
    """What the shared generation path reads of a request body: chat and text completions,
    Responses and Anthropic Messages alike."""

    @property
    def model(self) -> str: ...

    @property
    def adapter(self) -> str | None: ...

    @property
    def n(self) -> int: ...

    @property
    def stream(self) -> bool | None: ...

    @property
    def include_usage(self) -> bool: ...

    def sampling(self, max_tokens_cap: int) -> SamplingParams: ...


# ---- OpenAI: generation -----------------------------------------------------------------


class GenerationHandler(BaseHandler):
    """Runs GenerationRequests (one, or one per prompt of a batch) and answers them as
    JSON or as an event stream."""

    endpoint = ""
    _request_ids: tuple[str, ...] = ()
    _client_gone = False
    _tokens = 0  # completion tokens received from the engine
    _model: tuple[str, str | None] = ("", None)  # what the request asked for, once read
    _last: Done | Failed | None = None  # the engine's last event, once answered (None: the client left)
    span: RequestSpan
    relay: asyncio.Future | None = None  # the answer of a remote entry being relayed (proxy.py)

    @property
    def client_gone(self) -> bool:
        return self._client_gone

    def initialize(self) -> None:
        self.span = RequestSpan(self.request.headers, self.endpoint)

    def on_finish(self) -> None:
        """Count the request by its outcome, end its span."""
        if self.request.method == "OPTIONS":  # a CORS preflight: no request yet (its span is dropped unended)
            return
        error = self.answered_error
        if error is None and isinstance(self._last, Failed):  # reported in the stream
            error = api_error(self._last.error)
        outcome = (error.detail.code or error.detail.type) if error else "cancelled" if self._client_gone else "ok"
        metrics.request_answered(self.endpoint, *self._model, outcome)
        self.span.end(self._last, error)

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._client_gone = True
        for request_id in self._request_ids:
            self.engine.cancel(request_id)
        if self.relay is not None:
            self.relay.cancel()

    async def generate(self, body: GenerationBody, requests: list[GenerationRequest], builder: ResponseBuilder) -> None:
        request = requests[0]  # the others differ only in their prompt
        span = self.span
        if self._client_gone:  # hung up while the request was read or authenticated: nothing to run
            self.log.info("%s: client gone before the request was queued", self._describe(body, request))
            return
        remote = request.model in self.workbench.remote.entries  # never the device thread's
        self._request_ids = () if remote else tuple(r.id for r in requests)
        submitted = time.monotonic()
        task = asyncio.current_task()  # so that server shutdown waits for this answer
        assert task is not None  # a handler runs in a task
        self.workbench.generations.add(task)
        task.add_done_callback(self.workbench.generations.discard)
        try:
            batches = remote_events(self.workbench.remote, request) if remote else self.engine.astream_batch(requests)
            first, *rest = await anext(batches)
        except errors.EngineError as e:
            raise api_error(e) from None
        stream = None
        try:
            if isinstance(first, Failed):
                raise api_error(first.error)
            if not isinstance(first, Started):  # Done: cancelled while it queued, the client hung up
                raise ClientGone()
            builder.begin(first)
            span.started = first
            if body.stream:
                stream = EventStream(self, self.workbench.sse_keepalive, named=builder.named_events)
                stream.start()
                span.stream_started = time.time_ns()
                answer = functools.partial(self._stream, stream, builder, body.include_usage)
                for chunk in builder.opening_chunks():
                    stream.write(chunk)
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
            elif isinstance(event, PromptLogprobs):
                builder.add_prompt_logprobs(event)
            elif isinstance(event, Finished):
                self.span.finish_reasons.append(event.reason)
                builder.finish(event.index, event.reason, event.stop_sequence)
            elif isinstance(event, Failed):
                raise api_error(event.error)
            elif isinstance(event, Done):
                if self._client_gone:  # cancelled by the disconnect
                    raise ClientGone()
                self._last = event
                self.send(builder.response(event.usage))
                return event
        return None

    async def _stream(
        self, stream: EventStream, builder: ResponseBuilder, include_usage: bool, batch: list
    ) -> Done | Failed | None:
        """One chunk per choice and batch: a client that falls behind gets the
        tokens it missed in one delta, instead of ever more chunks to parse."""
        for event in merge_deltas(batch):
            if isinstance(event, Delta):
                self._tokens += len(event.token_ids)
                for chunk in builder.delta_chunks(event):
                    stream.write(chunk)
            elif isinstance(event, PromptLogprobs):
                stream.write(builder.prompt_logprobs_chunk(event))
            elif isinstance(event, Finished):
                self.span.finish_reasons.append(event.reason)
                builder.finish(event.index, event.reason, event.stop_sequence)
                if (chunk := builder.finish_chunk(event.index, event.reason)) is not None:
                    stream.write(chunk)
            elif isinstance(event, Failed):
                # The 200 is gone: report in-band, as OpenAI does, and end without [DONE].
                self._last = event
                stream.fail(builder.failure_chunk(api_error(event.error)))
                return event
            elif isinstance(event, Done):
                for chunk in builder.closing_chunks(event.usage, include_usage):
                    stream.write(chunk)
                self._last = event
                stream.done()
                return event
            else:
                assert isinstance(event, Progress), event
        await stream.flush()
        return None

    def _log_generation(self, body: GenerationBody, request: GenerationRequest, last, seconds: float) -> None:
        """One line per request: what a person tuning the server wants to see."""
        what = self._describe(body, request)
        if isinstance(last, Failed):
            self.log.warning("%s: failed after %.2fs: %s", what, seconds, last.error)
        elif last is None:
            self.log.info("%s: client gone, cancelled after %.2fs and %d tokens", what, seconds, self._tokens)
        else:
            u = last.usage
            rate = u.tokens_per_second or 0.0
            self.log.info(
                "%s: prompt %d tokens (%d cached), completion %d tokens, TTFT %.0f ms, %.1f tokens/s",
                what,
                u.prompt_tokens,
                u.cached_tokens,
                u.completion_tokens,
                u.time_to_first_token * 1000,
                rate,
            )

    def _describe(self, body: GenerationBody, request: GenerationRequest) -> str:
        model = format_id(request.model, request.adapter)
        return f"mlx {self.endpoint} {model} ({'stream' if body.stream else 'json'})"

    def request_for(self, body: GenerationBody, **prompt) -> GenerationRequest:
        model, adapter = self._model = self.model_id(body.model, body.adapter)
        request = GenerationRequest(
            model=model, adapter=adapter, sampling=body.sampling(self.workbench.max_tokens_cap), n=body.n, **prompt
        )
        self.span.request(request, bool(body.stream))
        return request


class ChatCompletionsHandler(GenerationHandler):
    endpoint = "chat"

    @web.authenticated
    async def post(self):
        if await forwarded(self, "chat/completions"):
            return
        body: req.ChatCompletionRequest = self.parse(req.ChatCompletionRequest)
        tools = body.tool_plan()
        request = self.request_for(body, messages=[m.for_template() for m in body.messages], tools=tools.tools or None)
        await self.generate(body, [request], ChatBuilder(body.model, body.n, body.logprobs, tools))


class CompletionsHandler(GenerationHandler):
    endpoint = "completion"

    @web.authenticated
    async def post(self):
        if await forwarded(self, "completions"):
            return
        body: req.CompletionRequest = self.parse(req.CompletionRequest)
        prompts = req.as_prompts(body.prompt)
        echoes = [prompt if body.echo else "" for prompt in prompts for _ in range(body.n)]  # one per choice
        builder = TextBuilder(body.model, len(echoes), body.wants_logprobs(), echoes)
        requests = [self.request_for(body, prompt=prompt, prompt_logprobs=body.prompt_logprobs()) for prompt in prompts]
        await self.generate(body, requests, builder)


class InlineCompletionHandler(GenerationHandler):
    """Code completion at a notebook's cursor, for the lab extension (see inline.py)."""

    endpoint = "inline"

    @web.authenticated
    async def post(self):
        body: InlineCompletionRequest = self.parse(InlineCompletionRequest)
        request = body.request(*self.model_id(body.model, body.adapter), self.workbench.max_tokens_cap)
        await self.generate(body, [request], TextBuilder(body.model, 1, False, [""]))


class ResponsesHandler(GenerationHandler):
    """The Responses API, translated onto chat generation (see responses.py)."""

    endpoint = "responses"

    @web.authenticated
    async def post(self):
        body: CreateResponse = self.parse(CreateResponse)
        history = self._previous(body.previous_response_id).messages if body.previous_response_id else []
        conversation = history + body.messages()
        instructions = [template_message("system", body.instructions)] if body.instructions else []
        request = self.request_for(body, messages=instructions + conversation, tools=body.tool_plan().tools or None)

        def store(response: Response) -> None:
            if body.store:
                answer = output_messages(response)
                self.engine.conversations.put(
                    Conversation(response.id, conversation + answer, response.model_dump_json().encode())
                )

        await self.generate(body, [request], ResponsesBuilder(body, store))

    def _previous(self, response_id: str) -> Conversation:
        previous = self.engine.conversations.get(response_id)
        if previous is None:
            raise ApiError(
                400,
                f"Previous response with id '{response_id}' not found: it was never stored "
                "(store=false), was deleted, or left the bounded store.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return previous


class ResponseHandler(BaseHandler):
    """A stored response: GET returns it, DELETE forgets it."""

    @web.authenticated
    def get(self, response_id: str):
        self.finish(self._stored(response_id).record)

    @web.authenticated
    def delete(self, response_id: str):
        if not self.engine.conversations.delete(response_id):
            raise self._not_stored(response_id)
        self.send(DeletedResponse(id=response_id))

    def _stored(self, response_id: str) -> Conversation:
        stored = self.engine.conversations.get(response_id)
        if stored is None:
            raise self._not_stored(response_id)
        return stored

    @staticmethod
    def _not_stored(response_id: str) -> ApiError:
        return ApiError(404, f"No response with id '{response_id}' is stored.", code="response_not_found")


# ---- Anthropic ---------------------------------------------------------------------------


class AnthropicHandler(GenerationHandler):
    def error_body(self, error: ApiError) -> anthropic.AnthropicError:
        return anthropic.error_body(error)


class MessagesHandler(AnthropicHandler):
    """Anthropic's Messages API, translated onto chat generation (see anthropic.py)."""

    endpoint = "messages"

    @web.authenticated
    async def post(self):
        body: anthropic.MessagesRequest = self.parse(anthropic.MessagesRequest)
        tools = body.tool_plan()
        request = self.request_for(body, messages=body.for_template(), tools=tools.tools or None)
        await self.generate(body, [request], anthropic.MessagesBuilder(body.model, tools))


class CountTokensHandler(AnthropicHandler):
    """The prompt's tokens, counted by the engine as it would read them (nothing generated)."""

    endpoint = "count_tokens"

    @web.authenticated
    async def post(self):
        body: anthropic.CountTokensRequest = self.parse(anthropic.CountTokensRequest)
        model, adapter = self.model_id(body.model, None)
        request = GenerationRequest(
            model=model,
            adapter=adapter,
            messages=body.for_template(),
            tools=body.tool_plan().tools or None,
            sampling=SamplingParams(max_tokens=0),
        )
        try:
            async for event in self.engine.agenerate(request):
                if isinstance(event, Failed):
                    raise api_error(event.error)
                if isinstance(event, Started):
                    self.send(anthropic.TokenCount(input_tokens=event.prompt_tokens))
                    return
        except errors.EngineError as e:
            raise api_error(e) from None


# ---- OpenAI: models ------------------------------------------------------------------------


class ModelsHandler(BaseHandler):
    @web.authenticated
    def get(self):
        created = self.workbench.started_at
        self.send(res.ModelList(data=[res.Model(id=i, created=created) for i in self.workbench.model_ids()]))


class ModelHandler(BaseHandler):
    @web.authenticated
    def get(self, model_id: str):
        known = self.workbench.model_ids()
        if model_id not in known:
            raise api_error(errors.ModelNotFound(model_id, known))
        self.send(res.Model(id=model_id, created=self.workbench.started_at))


class NotFoundHandler(BaseHandler):
    """Unknown paths under mlx/ answer OpenAI-shaped 404s, whatever the method."""

    async def prepare(self):
        await super().prepare()  # refuses a request without a token first
        raise ApiError(404, f"Unknown endpoint: {self.request.method} {self.request.path}.", code="unknown_url")


HANDLERS = [
    (r"mlx/v1/chat/completions", ChatCompletionsHandler),
    (r"mlx/v1/completions", CompletionsHandler),
    (r"mlx/v1/responses", ResponsesHandler),
    (r"mlx/v1/responses/(.+)", ResponseHandler),
    (r"mlx/v1/messages", MessagesHandler),
    (r"mlx/v1/messages/count_tokens", CountTokensHandler),
    (r"mlx/v1/models", ModelsHandler),
    (r"mlx/v1/models/(.+)", ModelHandler),
    (r"mlx/health", HealthHandler),
    (r"mlx/api/inline-completions", InlineCompletionHandler),
    (r"mlx/api/status", StatusHandler),
    (r"mlx/api/models/load", LoadHandler),
    (r"mlx/api/models/unload", UnloadHandler),
    (r"mlx/api/models/pin", PinHandler),
    (r"mlx/api/openapi.json", OpenAPIHandler),
    (r"mlx/(?:v1|api)/.*", NotFoundHandler),
]

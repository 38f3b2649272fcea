"""The OpenAPI 3.1 document of every endpoint, generated from `request_schemas.py`
and `response_schemas.py`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from . import anthropic, inline, response_objects, response_requests
from . import request_schemas as req
from . import response_schemas as res

REF = "#/components/schemas/{model}"

_ERRORS = {"default": (res.ErrorResponse, 'An error, OpenAI-shaped: {"error": {message, type, param, code}}.')}
_GENERATION_ERRORS = {
    "400": (
        res.ErrorResponse,
        "Invalid request; or valid, but not for this model (code invalid_for_model: "
        "token ids outside its vocabulary, a chat its template refuses) or over its context "
        "(code context_length_exceeded); or an adapter the model id contradicts "
        "(code conflicting_adapter); or tools another field contradicts (code tool_mismatch: a "
        "tool_choice or parallel_tool_calls without tools, a named tool not among them, a tool "
        "result answering no call, a forced call with a response format).",
    ),
    "401": (res.ErrorResponse, "Missing or invalid token."),
    "404": (res.ErrorResponse, "Unknown model (code model_not_found)."),
    "429": (res.ErrorResponse, "Queue full; retry after the Retry-After header's seconds."),
    "503": (res.ErrorResponse, "Engine not ready, or the model could not be loaded."),
}


_ANTHROPIC_ERRORS = {
    "default": (anthropic.AnthropicError, 'An error, Anthropic-shaped: {"type": "error", "error": {type, message}}.')
}
_ANTHROPIC_GENERATION_ERRORS = {
    "400": (
        anthropic.AnthropicError,
        "Invalid request; or valid, but not for this model (its vocabulary, template or context).",
    ),
    "401": (anthropic.AnthropicError, "Missing or invalid token."),
    "404": (anthropic.AnthropicError, "Unknown model."),
    "429": (anthropic.AnthropicError, "Queue full; retry after the Retry-After header's seconds."),
    "503": (anthropic.AnthropicError, "Engine not ready, or the model could not be loaded."),
}


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    responses: dict  # status -> (response model or None, description)
    request: type[BaseModel] | None = None
    chunk: type[BaseModel] | None = None  # each `data:` event when the request asks to stream
    authenticated: bool = True
    named_events: bool = False  # each event named by its type (`event:`), and no [DONE]
    errors: dict = None  # type: ignore[assignment]  (None: the default error answer, OpenAI's, set after init)
    description: str | None = None
    links: dict | None = None  # OpenAPI links of the 200 answer: operations that take its values

    def __post_init__(self):
        self.errors = self.errors or _ERRORS


_OPERATIONS = [
    Operation(
        "post",
        "/mlx/v1/chat/completions",
        "Create a chat completion",
        {
            "200": (res.ChatCompletion, "The completion, or with stream=true an event stream of chunks."),
            **_GENERATION_ERRORS,
        },
        request=req.ChatCompletionRequest,
        chunk=res.ChatCompletionChunk,
    ),
    Operation(
        "post",
        "/mlx/v1/completions",
        "Create a text completion",
        {
            "200": (res.Completion, "The completion, or with stream=true an event stream of chunks."),
            **_GENERATION_ERRORS,
        },
        request=req.CompletionRequest,
        chunk=res.Completion,
    ),
    Operation(
        "post",
        "/mlx/v1/responses",
        "Create a response (OpenAI's Responses API)",
        {
            "200": (response_objects.Response, "The response, or with stream=true an event stream of its events."),
            **_GENERATION_ERRORS,
        },
        request=response_requests.CreateResponse,
        chunk=response_objects.ResponseStreamEvents,
        named_events=True,
        links={
            f"{verb}Response": {
                "operationId": f"{verb.lower()}_mlx_v1_responses_response_id",
                "parameters": {"response_id": "$response.body#/id"},
            }
            for verb in ("Get", "Delete")
        },
        description="Stored unless store=false, for GET and previous_response_id, in a bounded store "
        "(MLXWorkbench.response_store_size responses and response_store_bytes bytes; the least recently "
        "used go first). previous_response_id replays the stored conversation, whose tokens the prompt "
        "cache holds. Tools and text.format json_schema are not supported yet (400).",
    ),
    Operation(
        "get",
        "/mlx/v1/responses/{response_id}",
        "Retrieve a stored response",
        {
            "200": (response_objects.Response, "The response."),
            "404": (res.ErrorResponse, "Not stored, deleted, or gone from the bounded store."),
        },
    ),
    Operation(
        "delete",
        "/mlx/v1/responses/{response_id}",
        "Delete a stored response",
        {"200": (response_objects.DeletedResponse, "Deleted."), "404": (res.ErrorResponse, "Not stored.")},
    ),
    Operation(
        "post",
        "/mlx/v1/messages",
        "Create a message (Anthropic's Messages API)",
        {
            "200": (anthropic.MessageResponse, "The message, or with stream=true an event stream."),
            **_ANTHROPIC_GENERATION_ERRORS,
        },
        request=anthropic.MessagesRequest,
        chunk=anthropic.MessageStreamEvents,
        named_events=True,
        errors=_ANTHROPIC_ERRORS,
        description="The key goes in x-api-key (or Authorization: Bearer). A last assistant message "
        "(a prefill) and tools are not supported (400).",
    ),
    Operation(
        "post",
        "/mlx/v1/messages/count_tokens",
        "Count a message's input tokens (Anthropic's API)",
        {"200": (anthropic.TokenCount, "The prompt's tokens as the model reads them."), **_ANTHROPIC_GENERATION_ERRORS},
        request=anthropic.CountTokensRequest,
        errors=_ANTHROPIC_ERRORS,
    ),
    Operation(
        "get",
        "/mlx/v1/models",
        "List the configured and loaded model ids",
        {"200": (res.ModelList, 'Model ids, "name" and "name:adapter".')},
    ),
    Operation(
        "get",
        "/mlx/v1/models/{model_id}",
        "Describe one model id",
        {"200": (res.Model, "The model."), "404": (res.ErrorResponse, "Unknown model.")},
    ),
    Operation(
        "get",
        "/mlx/health",
        "Liveness and version (no authentication)",
        {"200": (res.HealthResponse, "Engine running or starting."), "503": (res.HealthResponse, "Engine down.")},
        authenticated=False,
    ),
    Operation(
        "post",
        "/mlx/api/inline-completions",
        "Complete the code at a notebook's cursor (the lab extension's ghost text)",
        {
            "200": (res.Completion, "The completion, or with stream=true an event stream of chunks."),
            **_GENERATION_ERRORS,
        },
        request=inline.InlineCompletionRequest,
        chunk=res.Completion,
        description="The prompt is framed with the model's fill-in-the-middle tokens when its tokenizer has "
        "them (else the code before the cursor alone) and trimmed to its context; the request runs at low "
        "priority. A client that hangs up cancels it.",
    ),
    Operation(
        "get",
        "/mlx/api/status",
        "Server info and engine snapshot",
        {"200": (res.StatusResponse, "Pool, memory, queue and counters.")},
    ),
    Operation(
        "post",
        "/mlx/api/models/load",
        "Load a model or adapter into the pool",
        {
            "200": (res.EntryResponse, "Loaded (wait=true)."),
            "202": (res.EntryResponse, "Loading started; poll the status."),
            "404": (res.ErrorResponse, "Unknown model or adapter."),
            "503": (res.ErrorResponse, "Load failed or over the memory budget."),
        },
        request=req.LoadRequest,
    ),
    Operation(
        "post",
        "/mlx/api/models/unload",
        "Unload a model (and its adapters) or one adapter",
        {
            "200": (res.EntryResponse, "Unloaded."),
            "404": (res.ErrorResponse, "Unknown model."),
            "409": (res.ErrorResponse, "The model or one of its adapters is serving requests (code model_busy)."),
        },
        request=req.UnloadRequest,
    ),
    Operation(
        "post",
        "/mlx/api/models/pin",
        "Pin or unpin a pool entry",
        {"200": (res.EntryResponse, "The entry."), "404": (res.ErrorResponse, "Unknown model.")},
        request=req.PinRequest,
    ),
    Operation("get", "/mlx/api/openapi.json", "This document", {"200": (None, "The OpenAPI document.")}),
]


def _json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _event_schema(chunk: dict, named: bool) -> dict:
    """One server-sent event, as Open API 3.1 describes a stream (3.2 would call it
    itemSchema): `data` is a chunk, an error after the 200 has gone, or the final [DONE];
    or, for named events, `event` is the type of the chunk in `data` (errors included)."""
    if named:
        json_data = {"type": "string", "contentMediaType": "application/json", "contentSchema": chunk}
        return {
            "type": "object",
            "properties": {"event": {"type": "string"}, "data": json_data},
            "required": ["event", "data"],
        }
    json_data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"anyOf": [chunk, {"$ref": REF.format(model="ErrorResponse")}]},
    }
    return {
        "type": "object",
        "properties": {"data": {"anyOf": [{"const": "[DONE]"}, json_data]}},
        "required": ["data"],
    }


VALIDATION: JsonSchemaMode = "validation"  # a request body's schema
SERIALIZATION: JsonSchemaMode = "serialization"  # a response's


@lru_cache
def openapi_document(version: str, base_url: str = "/") -> dict:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in _OPERATIONS:
        if op.request:
            models.append((op.request, VALIDATION))
        models += [(m, SERIALIZATION) for m, _ in {**op.responses, **op.errors}.values() if m]  # type: ignore[misc]  (the dicts hold models)
        if op.chunk:
            models.append((op.chunk, SERIALIZATION))
    refs, components = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)

    paths: dict = {}
    for op in _OPERATIONS:
        spec: dict = {"summary": op.summary, "operationId": re.sub(r"\W+", "_", f"{op.method} {op.path}").strip("_")}
        if op.description:
            spec["description"] = op.description
        spec["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", op.path)
        ]
        if not spec["parameters"]:
            del spec["parameters"]
        if op.request:
            spec["requestBody"] = {"required": True, "content": _json_content(refs[(op.request, "validation")])}
        spec["responses"] = {}
        for status, (model, description) in {**op.responses, **op.errors}.items():
            content = _json_content(refs[(model, "serialization")] if model else {"type": "object"})
            if status == "200" and op.chunk:
                content["text/event-stream"] = {
                    "schema": _event_schema(refs[(op.chunk, "serialization")], op.named_events)
                }
            response = {"description": description, "content": content}
            if status == "200" and op.links:
                response["links"] = op.links
            if status == "429":
                response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
            spec["responses"][status] = response
        if not op.authenticated:
            spec["security"] = []
        elif op.errors is _ANTHROPIC_ERRORS:
            spec["security"] = [{"anthropicKey": []}, {"jupyterToken": []}]
        paths.setdefault(op.path, {})[op.method] = spec

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mlx_workbench",
            "version": version,
            "description": "OpenAI-compatible LLM API and model pool admin of a Jupyter server running MLX. "
            "Authenticate with the Jupyter token as a bearer token.",
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "security": [{"jupyterToken": []}],
        "paths": paths,
        "components": {
            "schemas": components["$defs"],
            "securitySchemes": {
                "jupyterToken": {"type": "http", "scheme": "bearer"},
                "anthropicKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "The Jupyter token, as Anthropic's clients send their key.",
                },
            },
        },
    }

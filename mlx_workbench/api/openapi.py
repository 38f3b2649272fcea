"""The OpenAPI 3.1 document of every endpoint, generated from `request_schemas.py`
and `response_schemas.py`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from . import request_schemas as req
from . import response_schemas as res

REF = "#/components/schemas/{model}"

_ERRORS = {"default": (res.ErrorResponse, 'An error, OpenAI-shaped: {"error": {message, type, param, code}}.')}
_GENERATION_ERRORS = {
    "400": (res.ErrorResponse, "Invalid request; or valid, but not for this model (code invalid_for_model: "
                             "token ids outside its vocabulary, a chat its template refuses) or over its context "
                             "(code context_length_exceeded); or an adapter the model id contradicts "
                             "(code conflicting_adapter)."),
    "401": (res.ErrorResponse, "Missing or invalid token."),
    "404": (res.ErrorResponse, "Unknown model (code model_not_found)."),
    "429": (res.ErrorResponse, "Queue full; retry after the Retry-After header's seconds."),
    "503": (res.ErrorResponse, "Engine not ready, or the model could not be loaded."),
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


_OPERATIONS = [
    Operation("post", "/mlx/v1/chat/completions", "Create a chat completion",
              {"200": (res.ChatCompletion, "The completion, or with stream=true an event stream of chunks."),
               **_GENERATION_ERRORS},
              request=req.ChatCompletionRequest, chunk=res.ChatCompletionChunk),
    Operation("post", "/mlx/v1/completions", "Create a text completion",
              {"200": (res.Completion, "The completion, or with stream=true an event stream of chunks."),
               **_GENERATION_ERRORS},
              request=req.CompletionRequest, chunk=res.Completion),
    Operation("get", "/mlx/v1/models", "List the configured and loaded model ids",
              {"200": (res.ModelList, 'Model ids, "name" and "name:adapter".')}),
    Operation("get", "/mlx/v1/models/{model_id}", "Describe one model id",
              {"200": (res.Model, "The model."), "404": (res.ErrorResponse, "Unknown model.")}),
    Operation("get", "/mlx/health", "Liveness and version (no authentication)",
              {"200": (res.HealthResponse, "Engine running or starting."), "503": (res.HealthResponse, "Engine down.")},
              authenticated=False),
    Operation("get", "/mlx/api/status", "Server info and engine snapshot",
              {"200": (res.StatusResponse, "Pool, memory, queue and counters.")}),
    Operation("post", "/mlx/api/models/load", "Load a model or adapter into the pool",
              {"200": (res.EntryResponse, "Loaded (wait=true)."),
               "202": (res.EntryResponse, "Loading started; poll the status."),
               "404": (res.ErrorResponse, "Unknown model or adapter."),
               "503": (res.ErrorResponse, "Load failed or over the memory budget.")},
              request=req.LoadRequest),
    Operation("post", "/mlx/api/models/unload", "Unload a model (and its adapters) or one adapter",
              {"200": (res.EntryResponse, "Unloaded."), "404": (res.ErrorResponse, "Unknown model."),
               "409": (res.ErrorResponse, "The model or one of its adapters is serving requests (code model_busy).")},
              request=req.UnloadRequest),
    Operation("post", "/mlx/api/models/pin", "Pin or unpin a pool entry",
              {"200": (res.EntryResponse, "The entry."), "404": (res.ErrorResponse, "Unknown model.")},
              request=req.PinRequest),
    Operation("get", "/mlx/api/openapi.json", "This document", {"200": (None, "The OpenAPI document.")}),
]


def _json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _event_schema(chunk: dict) -> dict:
    """One server-sent event, as Open API 3.1 describes a stream (3.2 would call it
    itemSchema): `data` is a chunk, an error after the 200 has gone, or the final [DONE]."""
    json_data = {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"anyOf": [chunk, {"$ref": REF.format(model="ErrorResponse")}]}}
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
        models.extend((m, SERIALIZATION) for m, _ in {**op.responses, **_ERRORS}.values() if m)
        if op.chunk:
            models.append((op.chunk, SERIALIZATION))
    refs, components = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)

    paths: dict = {}
    for op in _OPERATIONS:
        spec: dict = {"summary": op.summary, "operationId": re.sub(r"\W+", "_", f"{op.method} {op.path}").strip("_")}
        if "{model_id}" in op.path:
            spec["parameters"] = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}]
        if op.request:
            spec["requestBody"] = {"required": True, "content": _json_content(refs[(op.request, "validation")])}
        spec["responses"] = {}
        for status, (model, description) in {**op.responses, **_ERRORS}.items():
            content = _json_content(refs[(model, "serialization")] if model else {"type": "object"})
            if status == "200" and op.chunk:
                content["text/event-stream"] = {"schema": _event_schema(refs[(op.chunk, "serialization")])}
            response = {"description": description, "content": content}
            if status == "429":
                response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
            spec["responses"][status] = response
        if not op.authenticated:
            spec["security"] = []
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
            "securitySchemes": {"jupyterToken": {"type": "http", "scheme": "bearer"}},
        },
    }

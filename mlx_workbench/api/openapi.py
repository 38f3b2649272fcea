"""The OpenAPI 3.1 document of every endpoint, generated from `schemas.py`."""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import schemas as s

REF = "#/components/schemas/{model}"

# (method, path, summary, request model, {status: (response model, description)}, streams, authenticated)
_ERRORS = {"default": (s.ErrorResponse, "An error, OpenAI-shaped: {\"error\": {message, type, param, code}}.")}
_GENERATION_ERRORS = {
    "400": (s.ErrorResponse, "Invalid request, or the prompt exceeds the context (code context_length_exceeded)."),
    "401": (s.ErrorResponse, "Missing or invalid token."),
    "404": (s.ErrorResponse, "Unknown model (code model_not_found)."),
    "429": (s.ErrorResponse, "Queue full; retry after the Retry-After header's seconds."),
    "503": (s.ErrorResponse, "Engine not ready, or the model could not be loaded."),
}
_OPERATIONS = [
    ("post", "/mlx/v1/chat/completions", "Create a chat completion", s.ChatCompletionRequest,
     {"200": (s.ChatCompletion, "The completion, or with stream=true an event stream of chunks."), **_GENERATION_ERRORS},
     s.ChatCompletionChunk, True),
    ("post", "/mlx/v1/completions", "Create a text completion", s.CompletionRequest,
     {"200": (s.Completion, "The completion, or with stream=true an event stream of chunks."), **_GENERATION_ERRORS},
     s.Completion, True),
    ("get", "/mlx/v1/models", "List the configured and loaded model ids", None,
     {"200": (s.ModelList, "Model ids, \"name\" and \"name:adapter\".")}, None, True),
    ("get", "/mlx/v1/models/{model_id}", "Describe one model id", None,
     {"200": (s.Model, "The model."), "404": (s.ErrorResponse, "Unknown model.")}, None, True),
    ("get", "/mlx/health", "Liveness and version (no authentication)", None,
     {"200": (s.HealthResponse, "Engine running or starting."), "503": (s.HealthResponse, "Engine down.")}, None, False),
    ("get", "/mlx/api/status", "Server info and engine snapshot", None,
     {"200": (s.StatusResponse, "Pool, memory, queue and counters.")}, None, True),
    ("post", "/mlx/api/models/load", "Load a model or adapter into the pool", s.LoadRequest,
     {"200": (s.EntryResponse, "Loaded (wait=true)."), "202": (s.EntryResponse, "Loading started; poll the status."),
      "404": (s.ErrorResponse, "Unknown model or adapter."), "503": (s.ErrorResponse, "Load failed or over budget.")},
     None, True),
    ("post", "/mlx/api/models/unload", "Unload a model (and its adapters) or one adapter", s.UnloadRequest,
     {"200": (s.EntryResponse, "Unloaded."), "404": (s.ErrorResponse, "Unknown model.")}, None, True),
    ("post", "/mlx/api/models/pin", "Pin or unpin a pool entry", s.PinRequest,
     {"200": (s.EntryResponse, "The entry."), "404": (s.ErrorResponse, "Unknown model.")}, None, True),
    ("get", "/mlx/api/openapi.json", "This document", None, {"200": (None, "The OpenAPI document.")}, None, True),
]


def _json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


@lru_cache
def openapi_document(version: str, base_url: str = "/") -> dict:
    models: list[tuple[type[BaseModel], str]] = []
    for _, _, _, request, responses, chunk, _ in _OPERATIONS:
        if request:
            models.append((request, "validation"))
        models += [(m, "serialization") for m, _ in {**responses, **_ERRORS}.values() if m]
        if chunk:
            models.append((chunk, "serialization"))
    refs, components = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)

    paths: dict = {}
    for method, path, summary, request, responses, chunk, authenticated in _OPERATIONS:
        op: dict = {"summary": summary, "operationId": f"{method}_{path.strip('/').replace('/', '_').strip('{}')}"}
        if "{model_id}" in path:
            op["parameters"] = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}]
        if request:
            op["requestBody"] = {"required": True, "content": _json_content(refs[(request, "validation")])}
        op["responses"] = {}
        for status, (model, description) in {**responses, **_ERRORS}.items():
            content = _json_content(refs[(model, "serialization")] if model else {"type": "object"})
            if status == "200" and chunk:
                content["text/event-stream"] = {
                    "schema": {"type": "string"},
                    "itemSchema": refs[(chunk, "serialization")],  # each `data:` event; then `data: [DONE]`
                }
            response = {"description": description, "content": content}
            if status == "429":
                response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
            op["responses"][status] = response
        if not authenticated:
            op["security"] = []
        paths.setdefault(path, {})[method] = op

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

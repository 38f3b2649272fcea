"""OpenAI-shaped errors: `ApiError`, and what each failure becomes.

An engine error maps to a status, type and code through one table; a pydantic
ValidationError becomes a 400 naming the offending parameter; and
`error_for` decides the error any handler answers (see `BaseHandler.write_error`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from http.client import responses

from pydantic import ValidationError
from tornado import web

from ..engine import errors
from .response_schemas import ErrorDetail


class ApiError(web.HTTPError):
    """An error answered as {"error": {...}}; raise it from any handler."""

    def __init__(
        self, status: int, message: str, type: str = "invalid_request_error", param=None, code=None, headers=None
    ):
        super().__init__(status, log_message=message.replace("%", "%%"))
        self.detail = ErrorDetail(message=message, type=type, param=param, code=code)
        self.headers = headers or {}


# engine error -> (status, type, code); the first matching class wins.
_ENGINE_ERRORS: list[tuple[type[errors.EngineError], int, str, str]] = [
    (errors.ContextLengthExceeded, 400, "invalid_request_error", "context_length_exceeded"),
    (errors.InvalidForModel, 400, "invalid_request_error", "invalid_for_model"),
    (errors.InvalidRequest, 400, "invalid_request_error", "invalid_value"),
    (errors.ModelNotFound, 404, "invalid_request_error", "model_not_found"),
    (errors.ModelBusy, 409, "invalid_request_error", "model_busy"),
    (errors.QueueFull, 429, "rate_limit_error", "queue_full"),
    (errors.EngineNotReady, 503, "server_error", "engine_not_ready"),
    (errors.EngineStopped, 503, "server_error", "engine_stopped"),
    (errors.MemoryBudgetExceeded, 503, "server_error", "memory_budget_exceeded"),
    (errors.LoadFailed, 503, "server_error", "model_load_failed"),
    (errors.ChatTemplateFailed, 500, "server_error", "chat_template_error"),
    (errors.GenerationFailed, 500, "server_error", "generation_failed"),
]


def api_error(exc: BaseException) -> ApiError:
    for cls, status, type_, code in _ENGINE_ERRORS:
        if isinstance(exc, errors.EngineError) and isinstance(exc, cls):
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
        return ApiError(
            400, f"The request body is not valid JSON: {reason.removeprefix('Invalid JSON: ')}.", code="invalid_json"
        )
    if first["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
    elif first["type"] == "model_type":
        message = "The request body must be a JSON object."
    elif param is None:
        message = f"Invalid request: {reason}."
    else:
        message = f"Invalid value for '{param}': {reason}."
    code = {"missing": "missing_required_parameter", "tool_mismatch": "tool_mismatch"}.get(
        first["type"], "invalid_value"
    )
    return ApiError(400, message, param=param, code=code)


def error_for(status_code: int, exc: BaseException | None, anonymous: Callable[[], bool]) -> ApiError:
    """The error to answer for a request that ended in `status_code` (and `exc`, if
    it raised): every error OpenAI-shaped, never an HTML page. `anonymous()` is asked
    only about a 403: before `prepare` has run (a method Tornado refuses) there is no user to ask about."""
    if isinstance(exc, ApiError):
        return exc
    if status_code == 403 and anonymous():
        # Jupyter refuses a missing or wrong token with 403; OpenAI clients expect 401.
        return ApiError(
            401,
            "Missing or invalid token: pass the Jupyter server's token as the API key "
            "(Authorization: Bearer <token>, or x-api-key: <token>).",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if status_code == 403 and "xsrf" in str(getattr(exc, "log_message", "")).lower():
        return ApiError(
            403,
            "A cookie-authenticated request that changes state needs the X-XSRFToken header "
            "(the value of the _xsrf cookie); an API client should send the token instead "
            "(Authorization: Bearer <token>, or x-api-key: <token>).",
            code="xsrf_check_failed",
        )
    if isinstance(exc, web.HTTPError):
        message = exc.log_message % exc.args if exc.log_message else responses.get(status_code, "Error")
        return ApiError(status_code, message)
    if exc is not None:
        return api_error(exc)
    return ApiError(status_code, responses.get(status_code, "Error"))

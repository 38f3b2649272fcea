"""Typed answers: a pydantic model class or a JSON-schema dict as the response_format
the server enforces while decoding, and the answer parsed back into it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from .client import WorkbenchError

Schema = type[BaseModel] | dict


def response_format(schema: Schema) -> dict:
    """OpenAI's json_schema response_format for `schema`."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        name, body = schema.__name__, closed(schema.model_json_schema())
    elif isinstance(schema, dict):
        name, body = schema.get("title", "answer"), schema
    else:
        raise WorkbenchError(f"A schema is a pydantic model class or a JSON-schema dict, not {type(schema).__name__}.")
    return {"type": "json_schema", "json_schema": {"name": _safe_name(name), "schema": body, "strict": True}}


def closed(schema: Any) -> Any:
    """`schema` with objects that say nothing of other keys refusing them: pydantic ignores
    them anyway, and a model left free to add keys may never stop adding them."""
    if isinstance(schema, dict):
        schema = {key: closed(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [closed(item) for item in schema]
    return schema


def parse(schema: Schema, text: str) -> Any:
    """The answer as the schema's object: a model instance, or plain JSON data."""
    try:
        if isinstance(schema, dict):
            return json.loads(text)
        return schema.model_validate_json(text)
    except (ValueError, ValidationError) as e:  # an answer cut short by max_tokens
        raise WorkbenchError(
            f"The answer is not a complete {_kind(schema)} ({str(e).splitlines()[0]}); "
            "if it was cut short, allow more tokens (--max-tokens)."
        ) from None


def _kind(schema: Schema) -> str:
    return schema.__name__ if isinstance(schema, type) else "JSON value"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in str(name))[:64] or "answer"

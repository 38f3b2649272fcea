"""Schemathesis hooks for test_schemathesis.py (the CLI loads this file from
$SCHEMATHESIS_HOOKS; the model ids come from the running server via $FUZZ_MODELS)."""

from __future__ import annotations

import json
import os
import re
import zlib

import schemathesis

MODELS = os.environ["FUZZ_MODELS"].split(",")

# What a schema-valid request may be refused for: rules that depend on the model, on
# the server's state (a response id it never stored) or tie two fields together, stated
# in the document's descriptions only.
MODEL_DEPENDENT_CODES = {
    "context_length_exceeded",
    "invalid_for_model",
    "conflicting_adapter",
    "previous_response_not_found",
    "tool_mismatch",
}
# Anthropic's errors carry no code: the same refusals, known by their messages; and a last
# assistant message (a prefill), which JSON Schema cannot single out.
ANTHROPIC_REFUSALS = re.compile(
    r"maximum context length|for this model|chat template rejected|names adapter|"
    r"prefill to continue|needs tools|among the tools|forced tool call|which no tool_use made"
)


@schemathesis.hook
def map_body(context, body):
    """Half of the bodies that name a model name a real one, so that they reach the
    engine instead of stopping at 404 model_not_found (chosen by a hash of the body:
    deterministic)."""
    if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"]:
        pick = zlib.crc32(json.dumps(body, sort_keys=True, default=repr).encode())
        if pick % 2:
            body["model"] = MODELS[pick // 2 % len(MODELS)]
    return body


@schemathesis.check
def schema_valid_body_is_served(ctx, response, case):
    """positive_data_acceptance, narrowed: a 400 for a schema-valid request must be one
    the document could not have ruled out."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return None
    error = response.json()["error"]
    if "code" not in error:  # Anthropic's shape
        if not ANTHROPIC_REFUSALS.search(error["message"]):
            raise AssertionError(f"Schema-valid request refused with 400: {response.text}")
        return None
    code = error["code"]
    if code not in MODEL_DEPENDENT_CODES:
        raise AssertionError(f"Schema-valid request refused with 400 ({code}): {response.text}")
    return None

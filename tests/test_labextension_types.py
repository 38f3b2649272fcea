"""The lab extension's status types (labextension/src/api.ts) match the OpenAPI document the
server serves: the same fields, each with its JSON type and null where the server may send null.
Reads files and builds the document in-process: no server, no browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlx_workbench.api.openapi import openapi_document

API_TS = (Path(__file__).parents[1] / "labextension" / "src" / "api.ts").read_text()
SCHEMAS = openapi_document("0")["components"]["schemas"]
# TypeScript interface -> the schema of the same object in the OpenAPI document.
INTERFACES = {
    "IPoolStatus": "StatusResponse",
    "IEntryStatus": "EntryStatus",
    "IMemoryStatus": "MemoryStatus",
    "IRecentStatus": "RecentStatus",
    "IConfiguredModel": "ConfiguredModel",
}
TS_TYPES = {"string": "string", "number": "number", "boolean": "boolean"}


def ts_fields(interface: str) -> dict[str, str]:
    """Field -> its TypeScript type, as written in api.ts."""
    body = re.search(rf"export interface {interface} \{{(.*?)^\}}", API_TS, re.DOTALL | re.MULTILINE)
    assert body, f"no interface {interface} in api.ts"
    return dict(re.findall(r"^\s+(\w+): (.+);$", body[1], re.MULTILINE))


def ts_type(text: str) -> set[str]:
    """The JSON types a TypeScript type allows: "string | null" -> {"string", "null"}."""
    kinds = set()
    for part in (p.strip() for p in text.split("|")):
        if part == "null":
            kinds.add("null")
        elif part.endswith("[]"):
            kinds.add("array")
        elif part.startswith("'") or part in ("EntryState",):
            kinds.add("string")  # a string literal union
        elif part in TS_TYPES:
            kinds.add(TS_TYPES[part])
        else:
            kinds.add("object")  # another interface
    return kinds


def schema_type(schema: dict) -> set[str]:
    """The JSON types a schema allows, integers counted as numbers (TypeScript has one)."""
    if "anyOf" in schema:
        return set().union(*(schema_type(s) for s in schema["anyOf"]))
    if "$ref" in schema:
        return {"object"}
    kind = schema["type"]
    return {"number" if kind == "integer" else kind}


@pytest.mark.parametrize(("interface", "schema"), sorted(INTERFACES.items()))
def test_status_types_match_the_openapi_document(interface, schema):
    fields = ts_fields(interface)
    properties = SCHEMAS[schema]["properties"]
    assert list(fields) == list(properties), f"{interface} and {schema} list different fields"
    for name, text in fields.items():
        assert ts_type(text) == schema_type(properties[name]), f"{interface}.{name}: {text}"

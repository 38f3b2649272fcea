"""mlx/api/openapi.json describes every endpoint, and real answers fit its schemas."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from mlx_workbench.api.handlers import HANDLERS

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def document(http) -> dict:
    response = http.get("mlx/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def validator(document: dict, name: str) -> jsonschema.Draft202012Validator:
    """A validator for components.schemas[name] that resolves its $refs in the document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_document_covers_every_route(document):
    assert document["openapi"].startswith("3.1")
    routes = {"/" + re.sub(r"\(\.\+\)", "{id}", pattern) for pattern, _ in HANDLERS if ".*" not in pattern}
    assert routes == {re.sub(r"{\w+}", "{id}", path) for path in document["paths"]}
    assert document["paths"]["/mlx/health"]["get"]["security"] == []


def test_every_ref_resolves(document):
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs and refs <= set(document["components"]["schemas"])


def test_real_answers_fit_the_schemas(document, http):
    chat = http.post(
        "mlx/v1/chat/completions",
        json={"model": "demo", "messages": HELLO, "max_tokens": 3, "logprobs": True, "top_logprobs": 1},
    )
    validator(document, "ChatCompletion").validate(chat.json())
    text = http.post("mlx/v1/completions", json={"model": "demo", "prompt": "Hello", "max_tokens": 3, "logprobs": 1})
    validator(document, "Completion").validate(text.json())
    validator(document, "ModelList").validate(http.get("mlx/v1/models").json())
    validator(document, "StatusResponse").validate(http.get("mlx/api/status").json())
    validator(document, "HealthResponse").validate(http.get("mlx/health").json())
    bad = http.post("mlx/v1/chat/completions", json={"model": "demo", "messages": "nope"})
    validator(document, "ErrorResponse").validate(bad.json())

    streamed = {
        "model": "demo",
        "messages": HELLO,
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with http.stream("POST", "mlx/v1/chat/completions", json=streamed) as r:
        events = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    chunk = validator(document, "ChatCompletionChunk")
    for event in events[:-1]:
        chunk.validate(json.loads(event))


def test_request_schema_rejects_what_the_server_rejects(document, http):
    request = validator(document, "ChatCompletionRequest")
    good = {"model": "demo", "messages": HELLO, "temperature": 0.5, "stop": "x"}
    request.validate(good)
    for bad in ({"model": "demo", "messages": HELLO, "temperature": 9}, {"model": "demo"}):
        assert not request.is_valid(bad)
        assert http.post("mlx/v1/chat/completions", json=bad).status_code == 400


def sse_data(http, path: str, body: dict) -> list[dict]:
    with http.stream("POST", path, json={**body, "stream": True}) as r:
        return [json.loads(line[len("data: ") :]) for line in r.iter_lines() if line.startswith("data: {")]


def test_answers_of_the_agent_apis_fit_the_schemas(document, http):
    """The Responses and Anthropic Messages routes: objects, stream events, errors."""
    created = http.post("mlx/v1/responses", json={"model": "demo", "input": "Hello", "max_output_tokens": 16})
    validator(document, "Response").validate(created.json())
    validator(document, "Response").validate(http.get(f"mlx/v1/responses/{created.json()['id']}").json())
    validator(document, "DeletedResponse").validate(http.delete(f"mlx/v1/responses/{created.json()['id']}").json())
    event = validator(document, "ResponseStreamEvents")
    for data in sse_data(http, "mlx/v1/responses", {"model": "demo", "input": "Hello", "max_output_tokens": 16}):
        event.validate(data)

    message = {"model": "demo", "max_tokens": 3, "messages": HELLO}
    validator(document, "MessageResponse").validate(http.post("mlx/v1/messages", json=message).json())
    counted = http.post("mlx/v1/messages/count_tokens", json={"model": "demo", "messages": HELLO})
    validator(document, "TokenCount").validate(counted.json())
    event = validator(document, "MessageStreamEvents")
    for data in sse_data(http, "mlx/v1/messages", message):
        event.validate(data)
    validator(document, "AnthropicError").validate(http.post("mlx/v1/messages", json={"model": "demo"}).json())


def test_tool_calls_fit_the_schemas(document, http):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    body = {"model": "demo", "messages": HELLO, "tools": tools, "tool_choice": "required", "max_tokens": 30}
    validator(document, "ChatCompletionRequest").validate(body)
    answer = http.post("mlx/v1/chat/completions", json=body).json()
    assert answer["choices"][0]["message"]["tool_calls"]
    validator(document, "ChatCompletion").validate(answer)
    chunks = sse_data(http, "mlx/v1/chat/completions", body)
    assert any(c["choices"] and c["choices"][0]["delta"].get("tool_calls") for c in chunks)
    for chunk in chunks:
        validator(document, "ChatCompletionChunk").validate(chunk)
    history = [*HELLO, answer["choices"][0]["message"]]
    tool_call_id = answer["choices"][0]["message"]["tool_calls"][0]["id"]
    validator(document, "ChatCompletionRequest").validate(
        {"model": "demo", "messages": [*history, {"role": "tool", "tool_call_id": tool_call_id, "content": "4"}]}
    )
    response_body = {"model": "demo", "input": "Hello", "tools": [{"type": "function", **tools[0]["function"]}]}
    response_body |= {"tool_choice": "required", "max_output_tokens": 30}
    validator(document, "CreateResponse").validate(response_body)
    response = http.post("mlx/v1/responses", json=response_body).json()
    assert response["output"][0]["type"] == "function_call"
    validator(document, "Response").validate(response)
    events = sse_data(http, "mlx/v1/responses", response_body)
    assert "response.function_call_arguments.done" in {e["type"] for e in events}
    for event in events:
        validator(document, "ResponseStreamEvents").validate(event)
    message_body = {"model": "demo", "max_tokens": 30, "messages": HELLO, "tool_choice": {"type": "any"}}
    message_body["tools"] = [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    message = http.post("mlx/v1/messages", json=message_body).json()
    assert message["content"][0]["type"] == "tool_use"
    validator(document, "MessageResponse").validate(message)
    for event in sse_data(http, "mlx/v1/messages", message_body):
        validator(document, "MessageStreamEvents").validate(event)

"""A web page on another origin, in a real browser, calls the API as the official JS SDKs
do (their headers, hence a CORS preflight) once the user allowed that origin
(`ServerApp.allow_origin`): answers, streams and errors all reach the page. The SDKs
themselves are not installed here; the browser is what enforces CORS."""

from __future__ import annotations

import http.server
import threading
from functools import partial

import pytest
from server import free_port, start_jupyter

# The headers openai-node sends besides Authorization and Content-Type (x-stainless-*
# telemetry), and those anthropic-sdk-typescript adds in a browser.
OPENAI_HEADERS = {
    "x-stainless-lang": "js",
    "x-stainless-package-version": "6.0.0",
    "x-stainless-os": "Unknown",
    "x-stainless-arch": "unknown",
    "x-stainless-runtime": "browser:chrome",
    "x-stainless-runtime-version": "140",
    "x-stainless-retry-count": "0",
    "x-stainless-timeout": "600",
}
ANTHROPIC_HEADERS = {
    **OPENAI_HEADERS,
    "anthropic-version": "2023-06-01",
    "anthropic-dangerous-direct-browser-access": "true",
}

CALLS = """async ({api, token, openai, anthropic}) => {
    const json = {"Content-Type": "application/json"};
    const read = async (response) => [response.status, await response.text()];
    const chat = {model: "demo", messages: [{role: "user", content: "What is 3 + 4?"}], temperature: 0};
    return {
        models: await read(await fetch(api + "/models", {headers: {...openai, Authorization: "Bearer " + token}})),
        wrongKey: await read(await fetch(api + "/models", {headers: {...openai, Authorization: "Bearer wrong"}})),
        stream: await read(await fetch(api + "/chat/completions", {method: "POST",
            headers: {...openai, ...json, Authorization: "Bearer " + token},
            body: JSON.stringify({...chat, stream: true})})),
        responses: await read(await fetch(api + "/responses", {method: "POST",
            headers: {...openai, ...json, Authorization: "Bearer " + token},
            body: JSON.stringify({model: "demo", input: "What is 3 + 4?", temperature: 0})})),
        messages: await read(await fetch(api + "/messages", {method: "POST",
            headers: {...anthropic, ...json, "x-api-key": token},
            body: JSON.stringify({...chat, max_tokens: 32})})),
    };
}"""


@pytest.fixture(scope="module")
def web_page_origin(tmp_path_factory):
    """A page of the user's own web app, served from another port (another origin)."""
    root = tmp_path_factory.mktemp("web-app")
    (root / "index.html").write_text("<!doctype html><title>my app</title>")
    port = free_port()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


@pytest.fixture(scope="module")
def allowing_server(web_page_origin):
    server = start_jupyter(f"--ServerApp.allow_origin={web_page_origin}")
    yield server
    server.stop()


def test_the_sdks_calls_pass_cors_from_an_allowed_origin(browser, web_page_origin, allowing_server, demo_answers):
    row = next(r for r in demo_answers if r["user"] == "What is 3 + 4?" and not r["system"] and not r["adapter"])
    page = browser.new_page()
    try:
        page.goto(web_page_origin + "/index.html")
        results = page.evaluate(
            CALLS,
            {
                "api": allowing_server.openai_base_url,
                "token": allowing_server.token,
                "openai": OPENAI_HEADERS,
                "anthropic": ANTHROPIC_HEADERS,
            },
        )
    finally:
        page.close()
    status = {name: code for name, (code, _) in results.items()}
    assert status == {"models": 200, "wrongKey": 401, "stream": 200, "responses": 200, "messages": 200}, results
    assert "invalid_api_key" in results["wrongKey"][1]  # the page reads why
    assert results["stream"][1].rstrip().endswith("data: [DONE]")
    assert row["answer"] in results["responses"][1] and row["answer"] in results["messages"][1]


def test_other_origins_stay_blocked(browser, web_page_origin, jupyter_server):
    """Without allow_origin (the default), the browser refuses the page the answer."""
    page = browser.new_page()
    try:
        page.goto(web_page_origin + "/index.html")
        outcome = page.evaluate(
            """async ({api, token, openai}) => {
            try {
                await fetch(api + "/models", {headers: {...openai, Authorization: "Bearer " + token}});
                return "read";
            }
            catch (error) { return error.name; }
        }""",
            {"api": jupyter_server.openai_base_url, "token": jupyter_server.token, "openai": OPENAI_HEADERS},
        )
    finally:
        page.close()
    assert outcome == "TypeError"  # fetch's "Failed to fetch": CORS refused

"""Auth on every route of the extension, listed from its HANDLERS: without the
token or with a wrong one, everything but health is an OpenAI-shaped 401; a
cookie session cannot change state without the XSRF header; and under a
base_url nothing answers outside it."""

from __future__ import annotations

import re

import httpx
import pytest

from mlx_workbench.api.base import implemented_methods, is_open
from mlx_workbench.api.handlers import HANDLERS


def example_paths(pattern: str) -> list[str]:
    """Paths that `pattern` routes: one per alternative, "demo" for a model id and an
    unknown endpoint for a catch-all."""
    alternation = re.search(r"\(\?:([^)]*)\)", pattern)
    patterns = [pattern.replace(alternation[0], alt) for alt in alternation[1].split("|")] if alternation else [pattern]
    paths = [p.replace("(.+)", "demo").replace(".*", "no-such-endpoint") for p in patterns]
    assert all(re.fullmatch(pattern, path) for path in paths)
    return paths


def routes() -> list[tuple[str, str, bool]]:
    """(method, path, open) for every method of every route, and one method it does not implement."""
    found = []
    for pattern, handler in HANDLERS:
        for path in example_paths(pattern):
            for method in implemented_methods(handler):
                if method != "OPTIONS":  # CORS preflight, which carries no credentials
                    found.append((method, path, is_open(getattr(handler, method.lower()))))
            found.append(("DELETE", path, False))
    return found


ROUTES = routes()
GUARDED = [(m, p) for m, p, is_open_ in ROUTES if not is_open_]
POSTS = sorted({p for m, p in GUARDED if m == "POST"})
WRONG = {
    "no token": {},
    "wrong bearer": {"headers": {"Authorization": "Bearer wrong"}},
    "wrong token scheme": {"headers": {"Authorization": "token wrong"}},
    "wrong query token": {"params": {"token": "wrong"}},
}


@pytest.fixture(params=["root", "prefix"])
def server(request, jupyter_server, fuzz_server):
    """Both base_urls, for the requests that change nothing (the session's server is shared)."""
    return {"root": jupyter_server, "prefix": fuzz_server}[request.param]


def test_the_routes_are_the_handlers():
    assert [p for m, p, is_open_ in ROUTES if is_open_] == ["mlx/health"]
    assert len(GUARDED) >= 2 * (len(HANDLERS) - 1)


@pytest.mark.parametrize("credentials", WRONG.values(), ids=WRONG.keys())
@pytest.mark.parametrize("method, path", GUARDED, ids=[f"{m} {p}" for m, p in GUARDED])
def test_missing_or_wrong_token_is_401(server, method, path, credentials):
    response = httpx.request(method, server.url + path, json={"model": "demo"}, **credentials)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["www-authenticate"] == "Bearer"
    if path.startswith("mlx/v1/messages"):  # Anthropic's API, Anthropic's shape
        assert response.json()["type"] == "error"
        error = response.json()["error"]
        assert set(error) == {"type", "message"} and error["type"] == "authentication_error"
    else:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["code"] == "invalid_api_key"
    assert "token" in error["message"]


@pytest.mark.parametrize("method, path", GUARDED, ids=[f"{m} {p}" for m, p in GUARDED])
def test_the_token_opens_every_route(fuzz_server, method, path):
    """The same requests with the token get past auth (so the 401s above are about the token)."""
    headers = {"Authorization": f"Bearer {fuzz_server.token}"}
    response = httpx.request(
        method, fuzz_server.url + path, json={"model": "demo", "wait": True}, headers=headers, timeout=60
    )
    assert response.status_code not in (401, 403), response.text


def test_health_needs_no_token(server):
    assert httpx.get(server.url + "mlx/health").json()["status"] == "ok"


@pytest.fixture
def browser(fuzz_server):
    """A cookie session as JupyterLab has one: logged in by the token once, then cookies only."""
    with httpx.Client(base_url=fuzz_server.url, timeout=60) as client:
        client.get("api/status", params={"token": fuzz_server.token})
        client.get("lab")  # sets the _xsrf cookie
        assert client.get("mlx/api/status").status_code == 200
        yield client


@pytest.mark.parametrize("path", POSTS)
def test_cookie_post_without_xsrf_is_403(browser, path):
    for headers in ({}, {"X-XSRFToken": "forged"}):
        response = browser.post(path, json={"model": "demo"}, headers=headers)
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error.get("code", "xsrf_check_failed") == "xsrf_check_failed"  # Anthropic's errors have no code
        assert "X-XSRFToken" in error["message"]


@pytest.mark.parametrize("path", POSTS)
def test_cookie_post_with_xsrf_is_served(browser, path):
    response = browser.post(
        path, json={"model": "demo", "wait": True}, headers={"X-XSRFToken": browser.cookies["_xsrf"]}
    )
    assert response.status_code not in (401, 403), response.text


def test_nothing_is_served_outside_base_url(fuzz_server):
    root = fuzz_server.url.removesuffix("prefix/")
    assert httpx.get(fuzz_server.url + "mlx/health").status_code == 200
    headers = {"Authorization": f"Bearer {fuzz_server.token}"}
    for method, path, _ in ROUTES:
        outside = httpx.request(method, root + path, json={"model": "demo"}, headers=headers, timeout=60)
        assert outside.status_code == 404, f"{method} {root + path}: {outside.status_code}"
        assert "demo" not in outside.text and "mlx_workbench" not in outside.text

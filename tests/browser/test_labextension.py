"""The lab extension in a real browser against a real server: the status bar
shows the pool the server reports, the sidebar loads / pins / unloads the demo
model and loads / unloads the real one (smollm2), a failed load is shown in place,
and the copied OpenAI snippet runs.

(The %%mlx_chat cell and the ipywidgets panel in a notebook: test_notebook.py.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

import pytest
from pixels import assert_drawn
from playwright.sync_api import Locator, Page, expect

BUDGET = "512 MiB"  # conftest's MEMORY_LIMIT, as the extension formats it
SIZE = r"[\d.]+ (B|KiB|MiB)"
LIVE = 10_000  # ms: the extension polls every second


def api(lab, path: str, body: dict | None = None) -> dict:
    """The pool admin API, straight over HTTP with the token."""
    request = urllib.request.Request(
        lab.url + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def server_entry(lab, entry_id: str) -> dict | None:
    return next((e for e in api(lab, "mlx/api/status")["entries"] if e["id"] == entry_id), None)


@pytest.fixture(autouse=True)
def empty_pool(lab):
    for entry in api(lab, "mlx/api/status")["entries"]:
        if entry["state"] == "loaded":
            api(lab, "mlx/api/models/unload", {"model": entry["model"], "adapter": entry["adapter"]})


@pytest.fixture
def status_item(page: Page) -> Locator:
    return page.locator("#jp-main-statusbar .mlx-StatusItem")


@pytest.fixture
def panel(page: Page, status_item: Locator) -> Locator:
    """The sidebar panel, opened by clicking the status bar item."""
    status_item.click()
    panel = page.locator("#mlx-workbench-pool")
    expect(panel).to_be_visible()
    return panel


def test_status_bar_shows_the_server_state(lab, page, status_item, screenshot):
    status = api(lab, "mlx/api/status")
    assert [e["id"] for e in status["entries"] if e["state"] != "unloaded"] == []  # (earlier modules unloaded theirs)
    expect(status_item).to_have_text(re.compile(rf"^MLX: no model · {SIZE} / {BUDGET}$"), timeout=LIVE)
    expect(status_item.locator("span")).to_have_attribute("title", re.compile(re.escape(status["memory"]["device"])))
    expect(page.locator(".jp-Launcher")).to_be_visible()

    assert_drawn(screenshot("lab"), min_colors=600)
    assert_drawn(screenshot("status-item", of=status_item), min_colors=4)  # drawn text, not an empty box


def test_warning_colour_near_the_budget(page, status_item, screenshot):
    """The demo model is far too small to fill a budget on purpose, so the real
    status answer is passed through with its active memory raised to 95%."""
    text = status_item.locator(".mlx-StatusItem-text")
    expect(text).to_have_attribute("data-level", "ok", timeout=LIVE)
    normal = text.evaluate("node => getComputedStyle(node).color")

    def near_budget(route):
        response = route.fetch()
        status = response.json()
        status["memory"]["active"] = int(status["memory"]["budget"] * 0.95)
        route.fulfill(response=response, json=status)

    status_url = re.compile(r"/mlx/api/status\b")  # ServerConnection adds ?<cache buster>
    page.route(status_url, near_budget)
    try:
        expect(text).to_have_attribute("data-level", "warn", timeout=LIVE)
        expect(text).to_contain_text(f"486 MiB / {BUDGET}")
        assert text.evaluate("node => getComputedStyle(node).color") != normal
        screenshot("warn", of=status_item)
    finally:
        page.unroute(status_url)
    expect(text).to_have_attribute("data-level", "ok", timeout=LIVE)


def test_load_pin_unload_through_the_sidebar(lab, panel, status_item, screenshot):
    names = panel.locator(".mlx-Model-name")
    expect(names).to_have_text(["demo", "demo:upper", "demo:pirate", "smollm2", "broken"])
    demo = panel.locator('.mlx-Model[data-id="demo"]')
    expect(demo).to_have_attribute("data-state", "unloaded")

    demo.get_by_role("button", name="Load").click()
    expect(demo).to_have_attribute("data-state", "loaded", timeout=60_000)
    expect(status_item).to_have_text(re.compile(rf"^MLX: demo · {SIZE} / {BUDGET}$"), timeout=LIVE)
    entry = server_entry(lab, "demo")
    assert entry["state"] == "loaded" and entry["memory_bytes"] > 0
    expect(demo.locator(".mlx-Model-memory")).to_have_text(re.compile(rf"^{SIZE}$"))
    expect(panel.locator(".mlx-Engine-state")).to_contain_text("running")
    chat = {"model": "demo", "messages": [{"role": "user", "content": "Count to 5."}], "temperature": 0}
    api(lab, "mlx/v1/chat/completions", chat)
    recent = panel.locator(".mlx-Engine-recent")
    expect(recent).to_contain_text(re.compile(r"[1-9]\d* requests? · TTFT p50 \d"), timeout=LIVE)
    expect(recent.locator("polyline")).to_have_count(1)
    assert_drawn(screenshot("loaded"), min_colors=600)

    demo.get_by_role("button", name="Pin").click()
    expect(demo.locator(".mlx-Model-pinned")).to_be_visible(timeout=LIVE)
    assert server_entry(lab, "demo")["pinned"] is True
    demo.get_by_role("button", name="Unpin").click()
    expect(demo.locator(".mlx-Model-pinned")).to_have_count(0, timeout=LIVE)
    assert server_entry(lab, "demo")["pinned"] is False

    demo.get_by_role("button", name="Unload").click()
    expect(demo).to_have_attribute("data-state", "unloaded", timeout=LIVE)
    expect(status_item).to_have_text(re.compile(r"^MLX: no model · "), timeout=LIVE)
    entry = server_entry(lab, "demo")
    assert entry is None or entry["state"] == "unloaded"


def test_smollm2_loads_and_unloads_through_the_sidebar(lab, panel, status_item, screenshot):
    """The real model, SmolLM2-135M-Instruct (a Q4_1 GGUF file of ~115 MB once loaded):
    its first load converts the file into the server's cache, then loads it."""
    smollm2 = panel.locator('.mlx-Model[data-id="smollm2"]')
    expect(smollm2.locator(".mlx-Model-name")).to_have_text("smollm2")
    expect(smollm2).to_have_attribute("data-state", "unloaded")
    expect(smollm2.locator(".mlx-Model-memory")).to_have_count(0)

    smollm2.get_by_role("button", name="Load").click()
    expect(smollm2).to_have_attribute("data-state", "loaded", timeout=300_000)
    memory = smollm2.locator(".mlx-Model-memory")
    expect(memory).to_have_text(re.compile(r"^\d+ MiB$"), timeout=LIVE)
    mebibytes = int(memory.inner_text().removesuffix(" MiB"))
    assert 60 <= mebibytes <= 250, f"smollm2 shown as {mebibytes} MiB, not ~110 MiB"
    expect(smollm2.locator(".mlx-Detail")).to_contain_text("chatml")
    expect(smollm2.locator(".mlx-Error")).to_have_count(0)
    expect(status_item).to_have_text(re.compile(rf"^MLX: smollm2 · {SIZE} / {BUDGET}$"), timeout=LIVE)
    entry = server_entry(lab, "smollm2")
    assert entry["state"] == "loaded" and 60 * 2**20 <= entry["memory_bytes"] <= 250 * 2**20
    assert_drawn(screenshot("loaded"), min_colors=600)

    smollm2.get_by_role("button", name="Unload").click()
    expect(smollm2).to_have_attribute("data-state", "unloaded", timeout=LIVE)
    expect(smollm2.locator(".mlx-Model-memory")).to_have_count(0)
    expect(smollm2.get_by_role("button", name="Load")).to_be_enabled()
    expect(status_item).to_have_text(re.compile(r"^MLX: no model · "), timeout=LIVE)
    entry = server_entry(lab, "smollm2")
    assert entry is None or entry["state"] == "unloaded"


def test_status_follows_changes_made_elsewhere(lab, panel, status_item):
    """Another client (a notebook, curl) loads an adapter: the UI catches up by itself."""
    api(lab, "mlx/api/models/load", {"model": "demo", "adapter": "upper", "wait": True})
    expect(status_item).to_contain_text("demo:upper", timeout=LIVE)
    expect(panel.locator('.mlx-Model[data-id="demo:upper"]')).to_have_attribute("data-state", "loaded", timeout=LIVE)

    api(lab, "mlx/api/models/unload", {"model": "demo", "adapter": None})
    expect(status_item).to_have_text(re.compile(r"^MLX: no model · "), timeout=LIVE)


def test_failed_load_is_shown_in_place(lab, panel, status_item, screenshot):
    broken = panel.locator('.mlx-Model[data-id="broken"]')
    broken.get_by_role("button", name="Load").click()
    expect(broken).to_have_attribute("data-state", "failed", timeout=60_000)
    expect(broken.locator(".mlx-Error")).to_contain_text("no-such-model")
    assert server_entry(lab, "broken")["state"] == "failed"
    # The rest of the pool is unaffected.
    expect(status_item).to_have_text(re.compile(r"^MLX: no model · "))
    expect(panel.locator('.mlx-Model[data-id="demo"] .mlx-Error')).to_have_count(0)
    assert_drawn(screenshot("failed"), min_colors=600)
    # Unload forgets the failure; Load could try again.
    broken.get_by_role("button", name="Unload").click()
    expect(broken).to_have_attribute("data-state", "unloaded", timeout=30_000)
    expect(broken.locator(".mlx-Error")).to_have_count(0)
    assert server_entry(lab, "broken")["state"] == "unloaded"


def run_palette_command(page: Page, label: str) -> str:
    """Runs a command from the command palette; returns the clipboard's text."""
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette-input")
    expect(palette).to_be_visible()
    palette.fill(label)
    page.locator(".lm-CommandPalette-item.lm-mod-active", has_text=label).click()
    return page.evaluate("navigator.clipboard.readText()")


def test_copied_openai_snippet_runs(lab, page, screenshot):
    assert run_palette_command(page, "MLX: Copy OpenAI Base URL") == lab.openai_base_url

    snippet = run_palette_command(page, "MLX: Copy OpenAI Python Snippet")
    assert f'base_url="{lab.openai_base_url}"' in snippet and f'api_key="{lab.token}"' in snippet
    screenshot("copied")
    # The snippet as a user would paste it, with the real openai client.
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the snippet printed no answer"


def test_without_the_server_extension(lab_without_server_extension, page_of, screenshot):
    """The lab extension says what is wrong instead of breaking the page."""
    errors: list[str] = []
    page = page_of(lab_without_server_extension, errors)
    status_item = page.locator("#jp-main-statusbar .mlx-StatusItem")
    expect(status_item).to_have_text("MLX: unavailable", timeout=LIVE)
    status_item.click()
    expect(page.locator("#mlx-workbench-pool .mlx-Error")).to_contain_text("server extension is not enabled")
    assert_drawn(screenshot("unavailable", of=page), min_colors=600)
    assert not errors, errors

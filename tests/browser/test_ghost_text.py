"""Inline completion in a real notebook: typed code gets the demo model's streamed ghost
text, equal to the server's greedy text completion of the same prefix (the cell above
included), and Tab accepts it; a keystroke while a completion streams cancels it on the
server, and the status bar says when one runs; the settings show in the Settings Editor.
Keystroke to first ghost character is measured in the page and printed (not asserted:
timings belong to the benchmark)."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import nbformat
import pytest
from conftest import open_lab
from demo_requests import other_users
from pixels import assert_drawn
from playwright.sync_api import Page, expect

SETTINGS = "lab/api/settings/mlx-workbench:plugin"
# Debounce 0: every keystroke asks at once (and cancels the last), the latency measured is the server's and ours.
INLINE = {"enabled": True, "model": "demo", "maxTokens": 1024, "stopAt": "cell", "debounce": 0}
CONTEXT = "import math"  # the cell above: part of the prompt
COUNT = "# Count to 9: 1, 2,"  # the demo model continues it for a few tokens, then ends
ENDLESS = "Once upon a time"  # ... and this one until max_tokens

SHOWN = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in front, not one in a hidden tab

# Records, in the page, the last keydown and every state of the ghost text after it.
WATCH_GHOST = f"""() => {{
    const seen = window.mlxGhost = {{key: null, frames: []}};
    document.addEventListener('keydown', () => {{ seen.key = performance.now(); seen.frames = []; }}, true);
    new MutationObserver(() => {{
        const ghost = document.querySelector('{SHOWN} .jp-GhostText');
        const text = ghost ? ghost.innerText : '';
        const streaming = !!document.querySelector('{SHOWN} .jp-GhostText-streamingIndicator');
        const last = seen.frames[seen.frames.length - 1];
        if (text && (!last || last.text !== text || last.streaming !== streaming)) {{
            seen.frames.push({{at: performance.now(), text, streaming}});
        }}
    }}).observe(document.body, {{childList: true, subtree: true, characterData: true}});
}}"""


def http(lab, path: str, body: dict | None = None, method: str | None = None) -> dict:
    request = urllib.request.Request(
        lab.url + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read()
        return json.loads(text) if text else {}


def greedy_completion(lab, prompt: str) -> str:
    """The server's own greedy text completion, as any OpenAI client gets it."""
    body = {"model": "demo", "prompt": prompt, "temperature": 0, "max_tokens": INLINE["maxTokens"]}
    return http(lab, "mlx/v1/completions", body)["choices"][0]["text"]


@pytest.fixture(scope="module")
def page(lab, browser, page_errors):
    """JupyterLab with inline completion on (the session's lab has it off, see conftest)."""
    shared = http(lab, SETTINGS)["raw"]
    http(lab, SETTINGS, {"raw": json.dumps({"inlineCompletion": INLINE})}, method="PUT")
    page = open_lab(browser, lab, page_errors)
    yield page
    page.context.close()
    http(lab, SETTINGS, {"raw": shared}, method="PUT")


def open_notebook(lab, page: Page, name: str, cells: list):
    """The notebook of `cells` (the first not empty), open, its ghost text watched; its cells."""
    notebook = nbformat.v4.new_notebook(
        cells=cells,
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
    )
    nbformat.write(notebook, lab.root_dir / name)
    page.goto(f"{lab.url}lab/tree/{name}")
    # This notebook in front, its cells loaded (not a notebook restored from the last page,
    # nor the placeholder cell of one still loading).
    expect(page.locator(".jp-mod-current.lm-TabBar-tab")).to_contain_text(name, timeout=60_000)
    cells = page.locator(f"{SHOWN} .jp-Cell")
    expect(cells).to_have_count(len(notebook.cells), timeout=60_000)
    expect(cells.first).to_contain_text(notebook.cells[0].source)
    page.evaluate(WATCH_GHOST)
    return cells


def edit(cell) -> None:
    """Click into the cell's editor until it has the focus (a notebook still settling
    may take the first click for itself)."""
    editor = cell.locator(".cm-editor")
    deadline = time.monotonic() + 30
    while True:
        cell.locator(".cm-content").click()
        try:
            expect(editor).to_have_class(re.compile("cm-focused"), timeout=2_000)
            return
        except AssertionError:
            assert time.monotonic() < deadline, "the cell's editor never took the focus"


def editor_text(cell) -> str:
    """The cell's text, without the ghost text shown in it."""
    return cell.locator(".cm-content").evaluate(
        """content => {
            const copy = content.cloneNode(true);
            copy.querySelectorAll('.jp-GhostText').forEach(ghost => ghost.remove());
            return [...copy.querySelectorAll('.cm-line')].map(line => line.textContent).join('\\n');
        }"""
    )


def ghost(page: Page):
    return page.locator(f"{SHOWN} .jp-GhostText")


def test_typed_code_gets_the_streamed_greedy_completion_and_tab_accepts_it(lab, page, screenshot):
    expected = greedy_completion(lab, f"{CONTEXT}\n\n{COUNT}")
    assert len(expected) > 5
    code = nbformat.v4.new_code_cell
    cell = open_notebook(lab, page, "inline.ipynb", [code(CONTEXT), code("")]).nth(1)
    edit(cell)
    page.keyboard.insert_text(COUNT[:-1])
    page.keyboard.press(COUNT[-1])  # the keystroke measured
    expect(ghost(page)).to_have_text(expected, timeout=30_000)
    page.wait_for_function(f"!document.querySelector('{SHOWN} .jp-GhostText-streamingIndicator')")  # streaming over
    seen = page.evaluate("window.mlxGhost")
    first = seen["frames"][0]
    server_ttft = re.findall(r"mlx inline demo \(stream\): prompt .* TTFT (\d+) ms", lab.log())[-1]
    print(
        f"\nkeystroke -> first ghost character: {first['at'] - seen['key']:.0f} ms "
        f"({len(first['text'])} of {len(expected)} characters; the server's TTFT of it: {server_ttft} ms), "
        f"whole completion: {seen['frames'][-1]['at'] - seen['key']:.0f} ms, {len(seen['frames'])} ghost states"
    )
    assert all(expected.startswith(f["text"]) for f in seen["frames"])  # it only ever grew toward the answer
    assert_drawn(screenshot("ghost-text", of=cell), min_colors=8)

    page.keyboard.press("Tab")
    expect(ghost(page)).to_have_count(0)
    assert editor_text(cell) == COUNT + expected
    assert_drawn(screenshot("accepted", of=cell), min_colors=8)


def test_a_keystroke_cancels_the_running_completion_on_the_server(lab, page, screenshot):
    status_item = page.locator("#jp-main-statusbar .mlx-StatusItem")
    title = nbformat.v4.new_markdown_cell("A markdown cell is no context.")
    cell = open_notebook(lab, page, "cancel.ipynb", [title, nbformat.v4.new_code_cell("")]).nth(1)
    log_offset = len(lab.log())
    # Other streams share the batch, so that the 1024 tokens take seconds and the keystroke lands mid-way.
    with other_users(lab, streams=4, model="demo"):
        edit(cell)  # once the others stream: the notebook has settled meanwhile, and keeps the focus here
        page.keyboard.insert_text(ENDLESS[:-1])
        page.keyboard.press(ENDLESS[-1])  # completions follow typing (a paste asks for none)
        assert editor_text(cell) == ENDLESS
        page.wait_for_function("window.mlxGhost.frames.some(f => f.streaming)", timeout=30_000)
        expect(status_item).to_contain_text("completing")
        assert_drawn(screenshot("streaming", of=page), min_colors=300)
        streaming = http(lab, "mlx/api/status")
        page.keyboard.press("!")  # the user types on
        deadline = time.monotonic() + 30
        while http(lab, "mlx/api/status")["cancelled_requests"] == streaming["cancelled_requests"]:
            assert time.monotonic() < deadline, "the server never saw the completion cancelled"
            time.sleep(0.1)
        cancelled_lines = lab.log()[log_offset:].count("mlx inline demo (stream): client gone, cancelled")
    assert cancelled_lines >= 1
    assert editor_text(cell) == ENDLESS + "!"  # nothing of the cancelled ghost text was inserted
    page.keyboard.press("Escape")  # dismiss the completion of the new text
    expect(status_item).not_to_contain_text("completing", timeout=60_000)
    assert_drawn(screenshot("after-cancel", of=page), min_colors=300)


def test_the_settings_are_in_the_settings_editor(page, screenshot):
    """Under MLX Workbench, with the values this module set."""
    page.keyboard.press("Control+Comma")  # JupyterLab's Settings Editor
    page.locator(".jp-PluginList").get_by_text("MLX Workbench", exact=True).click()
    form = page.locator(".jp-SettingsPanel, .jp-SettingsEditor").first
    for field in ["Inline completion", "Model", "Adapter", "Maximum tokens", "Debounce (ms)", "Stop at", "Enabled"]:
        expect(form.get_by_text(field, exact=True).first).to_be_visible(timeout=30_000)
    expect(form.locator("input[type=checkbox]").first).to_be_checked()
    assert_drawn(screenshot("settings", of=page), min_colors=300)

"""The kernel side in a real browser: %%mlx_chat streams its answer into a
notebook cell and the pool panel widget renders, both talking to the server
JupyterLab runs on."""

from __future__ import annotations

import re

import nbformat
from demo_requests import other_users
from pixels import assert_drawn
from playwright.sync_api import expect

from mlx_workbench.demo import load_answers
from mlx_workbench.kernel.chat import CURSOR

# Records every text the chat cell's outputs show, as the browser renders them.
WATCH_OUTPUTS = """(area) => {
    window.mlxFrames = [];
    const text = () => [...area.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join('\\n');
    new MutationObserver(() => window.mlxFrames.push(text()))
        .observe(area, {childList: true, subtree: true, characterData: true});
}"""


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_chat_magic_streams_and_pool_panel_renders_in_a_notebook(lab, page_of, screenshot):
    story = next(
        r
        for r in load_answers()
        if r["model"] == "demo" and not r["adapter"] and not r["system"] and r["user"] == "Tell me a story."
    )
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext mlx_workbench"),
            nbformat.v4.new_code_cell(f"%%mlx_chat --model demo\n{story['user']}"),
            nbformat.v4.new_code_cell("import mlx_workbench\nmlx_workbench.panel()"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
    )
    nbformat.write(notebook, lab.root_dir / "chat.ipynb")
    errors: list[str] = []
    page = page_of(lab, errors)
    page.goto(f"{lab.url}lab/tree/chat.ipynb")
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")
    expect(cells).to_have_count(3, timeout=30_000)
    expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle", timeout=60_000)  # kernel up
    chat_output = cells.nth(1).locator(".jp-OutputArea")
    chat_output.evaluate(WATCH_OUTPUTS)

    page.get_by_role("menuitem", name="Run", exact=True).click()
    try:
        with other_users(lab, streams=6, model="demo"):
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            expect(chat_output).to_contain_text(story["answer"], timeout=60_000)
        panel = cells.nth(2).locator(".jp-OutputArea-output .widget-box").first
        expect(panel).to_be_visible(timeout=30_000)
        expect(panel).to_contain_text("demo:upper")
    finally:
        shot = screenshot("notebook", of=page)
    assert not errors, errors
    assert_drawn(shot, min_colors=600)

    # While it streamed, the cell showed ever longer beginnings of the answer, with a cursor.
    answer = squash(story["answer"])
    frames = [squash(f) for f in chat_output.evaluate("() => window.mlxFrames")]
    streaming = [f.removesuffix(CURSOR.strip()).strip() for f in frames if f.endswith(CURSOR.strip())]
    growing = list(dict.fromkeys(f for f in streaming if f))
    assert len(growing) >= 2, frames
    assert all(answer.startswith(f) for f in growing), growing
    assert growing == sorted(growing, key=len), growing
    assert squash(chat_output.inner_text()).endswith(answer)

"""The kernel side in a real browser: %%mlx_chat answers in a notebook cell and
the pool panel widget renders, both talking to the server JupyterLab runs on."""

from __future__ import annotations

import nbformat
from playwright.sync_api import expect

from mlx_workbench.demo import load_answers


def test_chat_magic_and_pool_panel_in_a_notebook(lab, page_of, screenshot):
    row = next(r for r in load_answers() if r["model"] == "demo" and not r["adapter"] and not r["system"])
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext mlx_workbench"),
            nbformat.v4.new_code_cell(f"%%mlx_chat --model demo\n{row['user']}"),
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

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    try:
        expect(cells.nth(1).locator(".jp-OutputArea")).to_contain_text(row["answer"], timeout=60_000)
        panel = cells.nth(2).locator(".jp-OutputArea-output .widget-box").first
        expect(panel).to_be_visible(timeout=30_000)
        expect(panel).to_contain_text("demo:upper")
    finally:
        screenshot("notebook", of=page)
    assert not errors, errors

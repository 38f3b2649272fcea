"""Whether a screenshot shows a drawn page, not a blank or broken one."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def assert_drawn(png: Path, min_colors: int) -> None:
    """Counts colours: a blank page has one, a plain text error page ~250, JupyterLab
    with its icons and panels over 1000; text on the status bar ~180, an empty box 1."""
    colors = Image.open(png).convert("RGB").getcolors(maxcolors=1 << 24)
    assert len(colors) >= min_colors, f"{png} looks blank: {len(colors)} colours"

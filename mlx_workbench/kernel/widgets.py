"""The notebook widgets: the pool panel and the side-by-side comparison.

`mlx_workbench.panel()` and `mlx_workbench.compare()` land here; the widgets
themselves live in pool_panel.py and compare.py.
"""

from __future__ import annotations

from .compare import Comparison, compare
from .pool_panel import PoolPanel


def panel(**kwargs) -> PoolPanel:
    """The pool panel: configured and loaded models with load / unload / pin,
    live memory, queue and throughput. kwargs: endpoint (default: this kernel's
    server), interval (seconds between status polls while the panel is shown)."""
    return PoolPanel(**kwargs)


__all__ = ["Comparison", "PoolPanel", "compare", "panel"]

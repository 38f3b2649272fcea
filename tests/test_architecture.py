"""docs/architecture.md stays true: it names every module, names no module that is gone,
and the layers import only what the layering rule allows. Reads files only: no server, no MLX."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "mlx_workbench"
LAB_SOURCES = ROOT / "labextension" / "src"
DOC = (ROOT / "docs" / "architecture.md").read_text()

# The engine's modules that the api may import: plain data, no MLX.
PLAIN_ENGINE_MODULES = {"requests", "errors", "status", "config", "conversations", "metrics", "tool_calls"}
FORBIDDEN = {
    "api": {"mlx", "mlx_lm"},
    "kernel": {"mlx", "mlx_lm"},
    "engine": {"tornado", "jupyter_server", "IPython", "ipywidgets"},
    "remote": {"mlx", "mlx_lm", "tornado", "jupyter_server", "IPython", "ipywidgets"},
}


def package_modules() -> list[str]:
    """Every module of the package, as the document names it: "app.py", "engine/pool.py"."""
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts)


def lab_modules() -> list[str]:
    return sorted(p.name for p in LAB_SOURCES.glob("*.ts*"))


def listed_modules() -> set[str]:
    """The modules the document lists, one per "- `name`: ..." line."""
    return set(re.findall(r"^- `([\w/]+\.(?:py|tsx?))`:", DOC, re.MULTILINE))


def imported_modules(path: Path) -> set[str]:
    """Absolute names of everything `path` imports at run time, at any depth (function-level
    imports too; not those under `if TYPE_CHECKING:`, which only a type checker reads)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}  # `from . import errors`
    return names


def layer_files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def test_every_module_is_in_the_document():
    missing = [m for m in package_modules() + lab_modules() if m not in listed_modules()]
    assert not missing, f"docs/architecture.md does not name {missing}: add one line for each"


def test_the_document_names_no_module_that_is_gone():
    gone = listed_modules() - set(package_modules()) - set(lab_modules())
    assert not gone, f"docs/architecture.md names modules that do not exist: {sorted(gone)}"


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_what_they_may(layer):
    wrong = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in layer_files(layer)
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN[layer]
        or (layer == "engine" and name.startswith(("mlx_workbench.api", "mlx_workbench.kernel")))
        or (layer == "kernel" and name.startswith(("mlx_workbench.engine", "mlx_workbench.api")))
        or (layer == "engine" and name.startswith("mlx_workbench.remote"))
        or (layer == "remote" and name.startswith(("mlx_workbench.api", "mlx_workbench.kernel")))
        or (
            layer == "remote"
            and name.startswith("mlx_workbench.engine.")
            and name.split(".")[2] not in PLAIN_ENGINE_MODULES
        )
    }
    assert not wrong, f"{layer}/ imports what the layering rule forbids: {sorted(wrong)}"


def test_api_uses_only_the_engines_plain_modules():
    engine_modules = {
        name.split(".")[2]
        for path in layer_files("api")
        for name in imported_modules(path)
        if name.startswith("mlx_workbench.engine.")
    }
    assert engine_modules <= PLAIN_ENGINE_MODULES, engine_modules - PLAIN_ENGINE_MODULES
    for module in PLAIN_ENGINE_MODULES:
        imports = imported_modules(PACKAGE / "engine" / f"{module}.py")
        assert not {name for name in imports if name.split(".")[0] in {"mlx", "mlx_lm"}}, module


def test_importing_the_api_and_the_kernel_loads_no_mlx():
    """What the import graph says, checked in a fresh interpreter."""
    probe = (
        "import sys, mlx_workbench.api.handlers, mlx_workbench.kernel.magics, mlx_workbench.kernel.widgets,"
        " mlx_workbench.remote.backend;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm')))"
    )
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "[]\n"

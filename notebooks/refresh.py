"""Re-execute the example notebooks, each against a fresh server, and store their outputs.

    .venv/bin/python notebooks/refresh.py [notebook.ipynb ...]   (default: the ones below)

The stored outputs are what nbval checks (see conftest.py): run this after
changing a notebook or what the demo models answer, and review the diff.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from conftest import restart_server, stop_server
from nbclient import NotebookClient

HERE = Path(__file__).parent
NOTEBOOKS = [
    "quickstart.ipynb",
    "openai_client.ipynb",
    "magics_and_memory.ipynb",
    "structured_output.ipynb",
    "real_model.ipynb",
    "remote_models.ipynb",
]


def main(paths: list[str]) -> None:
    try:
        for path in [Path(p) for p in paths or [HERE / name for name in NOTEBOOKS]]:
            restart_server(path.name)
            notebook = nbformat.read(path, as_version=4)
            NotebookClient(
                notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
            ).execute()
            notebook.metadata.pop("widgets", None)  # widget state: new ids every run, and nbval skips it
            nbformat.write(notebook, path)
            print(f"executed {path}")
    finally:
        stop_server()


if __name__ == "__main__":
    main(sys.argv[1:])

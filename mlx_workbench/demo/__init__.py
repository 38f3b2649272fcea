"""Small chat models shipped with the package, so nothing is ever downloaded unasked.

They are trained to answer a fixed set of prompts exactly (see README.md and answers.json);
scripts/build_demo_models.py rebuilds them.
"""

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


def load_answers() -> list[dict]:
    """Rows {"model", "adapter", "system", "user", "answer"}: prompts with their exact greedy answers."""
    return json.loads(ANSWERS_FILE.read_text())

"""What the API, kernel and reliability tests ask the demo models, and the answers they expect."""

from __future__ import annotations

import json
from pathlib import Path

from mlx_workbench.demo import DEMO_MODELS, load_answers

STORY = "Tell me a story."  # the demo model's longest answer: for streams that must last
ANSWERS = load_answers()


def answer(model: str, user: str, adapter: str | None = None, system: str | None = None) -> str:
    """The demo model's exact greedy answer, from answers.json."""
    for row in ANSWERS:
        if (row["model"], row["adapter"], row["system"], row["user"]) == (model, adapter, system, user):
            return row["answer"]
    raise KeyError((model, adapter, system, user))


def endless(model: str = "demo") -> dict:
    """logit_bias that forbids the model's end tokens: it generates until max_tokens."""
    config = json.loads((Path(DEMO_MODELS[model]["path"]) / "generation_config.json").read_text())
    eos = config["eos_token_id"]
    return {str(token): -100 for token in (eos if isinstance(eos, list) else [eos])}

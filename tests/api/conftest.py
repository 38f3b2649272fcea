"""Fixtures of the API tests: the demo models' greedy answers, picked by model and system prompt."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def answers(demo_answers):
    """answers(model="demo", adapter=None, system=False) -> matching rows of answers.json;
    system=True picks rows with a system prompt, False rows without."""

    def pick(model: str = "demo", adapter: str | None = None, system: bool = False) -> list[dict]:
        rows = [
            r for r in demo_answers if r["model"] == model and r["adapter"] == adapter and bool(r["system"]) == system
        ]
        assert rows, f"answers.json has no row for {model}:{adapter} (system={system})"
        return rows

    return pick

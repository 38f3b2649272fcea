"""What the API, kernel and reliability tests ask the demo models, and the answers they expect."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

import httpx

from mlx_workbench.demo import DEMO_MODELS, load_answers
from mlx_workbench.model_ids import format_id

STORY = "Tell me a story."  # the demo model's longest answer: for streams that must last
ANSWERS = load_answers()


def answer(model: str, user: str, adapter: str | None = None, system: str | None = None) -> str:
    """The demo model's exact greedy answer, from answers.json."""
    for row in ANSWERS:
        if (row["model"], row["adapter"], row["system"], row["user"]) == (model, adapter, system, user):
            return row["answer"]
    raise KeyError((model, adapter, system, user))


def messages(row: dict) -> list[dict]:
    """A row of answers.json as chat messages."""
    system = [{"role": "system", "content": row["system"]}] if row["system"] else []
    return [*system, {"role": "user", "content": row["user"]}]


def model_id(row: dict) -> str:
    """A row's OpenAI model id, "model" or "model:adapter"."""
    return format_id(row["model"], row["adapter"])


def endless(model: str = "demo") -> dict:
    """logit_bias that forbids the model's end tokens: it generates until max_tokens."""
    config = json.loads((Path(DEMO_MODELS[model]["path"]) / "generation_config.json").read_text())
    eos = config["eos_token_id"]
    return {str(token): -100 for token in (eos if isinstance(eos, list) else [eos])}


@contextlib.contextmanager
def other_users(server, streams: int = 16, model: str = "demo-chatml", n: int = 1):
    """Endless streams of other clients while the block runs, all generating once it
    starts: the device thread shares each step between them and the test's request, so
    that a demo answer takes seconds, not 0.2 s, and a test can act in the middle of it."""
    done = threading.Event()
    streaming = threading.Barrier(streams + 1, timeout=60)

    def stream():
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "Hello!"}],
            "stream": True,
            "max_tokens": 2000,
            "logit_bias": endless(model),
            "n": n,
        }
        headers = {"Authorization": f"token {server.token}"}
        with httpx.stream(
            "POST", server.openai_base_url + "/chat/completions", json=body, headers=headers, timeout=60
        ) as response:
            if response.status_code != 200:
                streaming.abort()  # the test fails now, not when the barrier times out
                return
            lines = response.iter_lines()
            next(lines)
            streaming.wait()
            for _ in lines:
                if done.is_set():
                    break

    threads = [threading.Thread(target=stream) for _ in range(streams)]
    for t in threads:
        t.start()
    try:
        streaming.wait()  # every one of them is generating
        yield
    finally:
        done.set()
        for t in threads:
            t.join(timeout=30)

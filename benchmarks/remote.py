"""What a remote entry costs, and what a distributed one gives, on the demo model:

    .venv/bin/python -m benchmarks.remote            # 1, 4, 8, 16 streams, 3 repetitions
    .venv/bin/python -m benchmarks.remote --quick    # 1 and 4 streams, one repetition

Systems, all streaming through the official openai client, on the same prompts, greedy,
every stream running to max_tokens (the EOS tokens biased away), interleaved:
- `mlx_lm.server`: asked directly, on loopback;
- `remote entry`: the same mlx_lm.server asked through a Jupyter server's remote entry
  (our auth, the relay): the difference is the proxy's cost;
- `local entry`: the same Jupyter server's own engine;
- `distributed entry` (with --distributed): mlx.launch of two ring ranks on loopback, through the
  same Jupyter server; one machine's cores shared by both ranks, so this shows the wiring
  and its overhead, not the speed of two Macs.
Prints a table and writes remote.json to --out (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from . import figures
from .run import machine, progress
from .systems import MLXLMServer, OpenAIClientSystem, Workbench
from .workload import Workload, demo_workload


class Entry(OpenAIClientSystem):
    """One model id of a Jupyter server's pool."""

    def __init__(self, server: Workbench, model_id: str, label: str):
        super().__init__(server.server.openai_base_url, server.server.token)
        self.id, self.label = model_id, label

    def model_id(self, workload: Workload) -> str:
        return self.id


async def benchmark(quick: bool, distributed: bool, scratch: Path) -> dict:
    workload = demo_workload(quick, scratch)
    upstream = MLXLMServer(workload)
    models: dict = {
        "demo": {"path": workload.path, "adapters": {}},
        "demo-remote": {"url": str(upstream.client.base_url).rstrip("/"), "model": "default_model"},
    }
    if distributed:
        models["demo-sharded"] = {"path": workload.path, "distributed": {"hosts": ["127.0.0.1", "127.0.0.1"]}}
    jupyter = Workbench(models)
    systems = [
        upstream,
        Entry(jupyter, "demo-remote", "remote entry"),
        Entry(jupyter, "demo", "local entry"),
        *([Entry(jupyter, "demo-sharded", "distributed entry")] if distributed else []),
    ]
    try:
        await jupyter.load("demo")
        if distributed:
            await jupyter.load("demo-sharded")
        progress("warm-up")
        await figures.warm_up(workload, systems)
        progress("one stream")
        one = await figures.one_stream(workload, systems)
        progress(f"concurrent streams {workload.concurrency}")
        many = await figures.concurrency(workload, systems)
    finally:
        for system in systems:
            await system.close()
        await jupyter.close()
    return {
        "machine": machine(),
        "settings": {"max_tokens": workload.max_tokens, "repetitions": workload.reps, "quick": quick},
        "one_stream": one,
        "concurrency": many,
    }


def table(results: dict) -> str:
    labels = list(results["one_stream"])
    rows = [
        ["1 stream, tokens/s", *(f"{results['one_stream'][s]['decode_tps']:.0f}" for s in labels)],
        ["1 stream, time to first token", *(f"{results['one_stream'][s]['ttft_s'] * 1000:.1f} ms" for s in labels)],
    ]
    for n, by_system in results["concurrency"].items():
        rows.append([f"{n} streams, aggregate tokens/s", *(_aggregate(by_system[s]) for s in labels)])
        rows.append([f"{n} streams, p99 TTFT", *(f"{by_system[s].get('ttft_p99_s', 0) * 1000:.0f} ms" for s in labels)])
    lines = ["| demo model | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _aggregate(summary: dict) -> str:
    failed = f" ({summary['failed']} failed)" if summary["failed"] else ""
    return f"{summary.get('aggregate_tps', 0):.0f}{failed}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 and 4 streams, one repetition")
    parser.add_argument("--distributed", action="store_true", help="also a distributed entry of two loopback ranks")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="folder for remote.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlxwb-bench-") as scratch:
        results = asyncio.run(benchmark(args.quick, args.distributed, Path(scratch)))
    results["settings"]["wall_s"] = time.perf_counter() - started
    print(table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "remote.json").write_text(json.dumps(results, indent=1))
    m = results["machine"]
    print(f"{m['platform']}, {m['cpus']} CPUs, load average {m['load_average_at_start'][0]:.1f}; wrote {args.out}")


if __name__ == "__main__":
    main()

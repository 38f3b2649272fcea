"""Side-by-side benchmark of mlx_workbench against raw mlx_lm and mlx_lm.server.

    .venv/bin/python -m benchmarks.run            # full run (a few minutes)
    .venv/bin/python -m benchmarks.run --quick    # smoke run: demo model, tiny settings

Systems: raw mlx_lm in this process (the limit), mlx_lm.server, the mlx_workbench
engine in this process, and mlx_workbench through a real Jupyter server with the
official openai client. Models: the shipped demo model (a high token rate shows
per-token overhead) and, in a full run, a SmolLM2-135M-shaped model with random
weights built locally (realistic shapes) and the real SmolLM2-135M-Instruct from
its GGUF file. Prints tables with every figure as a
ratio against a baseline measured in the same run, the targets as met / not met
(never failing the run), and writes results.json and results.png to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from . import figures, report
from .baselines import RawMLX
from .systems import EngineInProcess, MLXLMServer, Workbench
from .workload import demo_workload, random_workload, smollm2_workload


def machine() -> dict:
    import mlx.core as mx
    import mlx_lm

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "mlx": mx.__version__,
        "mlx_lm": mlx_lm.__version__,
        "device": str(mx.default_device()),
        "device_info": {k: v for k, v in mx.device_info().items() if isinstance(v, (int, str))},
        "load_average_at_start": os.getloadavg(),
    }


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def benchmark(names: list[str], quick: bool, scratch: Path) -> dict:
    from mlx_workbench.demo import DEMO_MODELS

    make = {
        "demo": lambda: demo_workload(quick, scratch),
        "random-135m": lambda: random_workload(scratch),
        "smollm2": lambda: smollm2_workload(scratch),
    }
    workloads = [make[name]() for name in names]
    models = {w.name: {"path": w.path, "adapters": w.adapters} for w in workloads}
    # Figure 5 loads a second model during the demo streams: the heavy 135M one
    # when it is benchmarked too, else the small ChatML demo model.
    stall_model = "random-135m" if "random-135m" in models else "demo-chatml"
    models.setdefault(stall_model, {"path": DEMO_MODELS["demo-chatml"]["path"], "adapters": {}})

    results = {"machine": machine(), "settings": {"quick": quick}, "models": {}}
    progress("starting the mlx_workbench engine and a Jupyter server with mlx_workbench")
    pools = [EngineInProcess(models), Workbench(models)]
    try:
        for workload in workloads:
            results["settings"][workload.name] = {
                "path": workload.path,
                "max_tokens": workload.max_tokens,
                "concurrency": workload.concurrency,
                "turns": workload.turns,
                "turn_tokens": workload.turn_tokens,
                "repetitions": workload.reps,
                "logit_bias": workload.logit_bias,
            }
            progress(f"{workload.name}: loading raw mlx_lm and starting mlx_lm.server")
            raw, server = RawMLX(workload), MLXLMServer(workload)
            try:
                for pool in pools:
                    await pool.load(workload.name)
                systems = [raw, server, *pools]
                fig = results["models"][workload.name] = {}
                progress(f"{workload.name}: warm-up")
                await figures.warm_up(workload, systems)
                progress(f"{workload.name}: figure 1, one stream")
                fig["one_stream"] = await figures.one_stream(workload, systems)
                progress(f"{workload.name}: figure 2, concurrent streams {workload.concurrency}")
                fig["concurrency"] = await figures.concurrency(workload, systems)
                if workload.turns:
                    progress(f"{workload.name}: figure 3, {workload.turns}-turn conversation")
                    fig["conversation"] = await figures.conversation(workload, systems)
                progress(f"{workload.name}: figure 4, adapter memory")
                fig["adapter_memory"] = await figures.adapter_memory(workload, raw, pools)
                if workload.stall_tokens:
                    progress(f"{workload.name}: figure 5, loading {stall_model} during 4 streams")
                    fig["load_stall"] = await figures.load_stall(
                        workload, stall_model, models[stall_model]["path"], raw, pools
                    )
                progress(f"{workload.name}: figure 6, 8 constrained streams against 8 free ones")
                fig["constrained"] = await figures.constrained(workload, pools)
                progress(f"{workload.name}: figure 7, 8 streams over the base and its adapters against the base alone")
                fig["adapters_in_one_batch"] = await figures.adapters_in_one_batch(workload, pools)
                if workload.name == "demo":
                    progress(f"{workload.name}: figure 8, 8 streams with tracing on against tracing off")
                    fig["tracing"] = await traced_against_plain(workload, models[workload.name])
            finally:
                await server.close()
                await raw.close()
    finally:
        for pool in pools:
            await pool.close()
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["targets"] = [t for name, fig in results["models"].items() for t in report.targets(name, fig)]
    results["unequal_work"] = report.unequal_work(results)
    return results


async def traced_against_plain(workload, model: dict) -> dict:
    """Figure 8, on two new endpoints serving only `model`, one tracing every request to the
    console (its log): a server that ran the other figures holds more (adapters, a second
    model, prompt caches), which moved its throughput more than tracing does."""
    pair = [Workbench({workload.name: model}), Workbench({workload.name: model}, traces_exporter="console")]
    try:
        for system in pair:
            await system.load(workload.name)
        await figures.warm_up(workload, pair)
        return await figures.tracing(workload, *pair)
    finally:
        for system in pair:
            await system.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="demo model only, tiny settings (smoke test)")
    parser.add_argument(
        "--models", help="comma-separated: demo,random-135m,smollm2 (default: all three; --quick: demo)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results", help="folder for results.json/png"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlxwb-bench-") as scratch:
        names = (
            args.models.split(",") if args.models else ["demo"] if args.quick else ["demo", "random-135m", "smollm2"]
        )
        results = asyncio.run(benchmark(names, args.quick, Path(scratch)))
    results["settings"]["wall_s"] = time.perf_counter() - started
    print(report.tables(results))
    json_path, png_path = report.write(results, args.out)
    m = results["machine"]
    print(
        f"{m['platform']}, {m['cpus']} CPUs, {m['device']}, mlx {m['mlx']}, mlx_lm {m['mlx_lm']}; "
        f"load average {m['load_average_at_start'][0]:.1f} -> {m['load_average_at_end'][0]:.1f}; "
        f"{results['settings']['wall_s']:.0f} s"
    )
    print(f"wrote {json_path} and {png_path}")


if __name__ == "__main__":
    main()

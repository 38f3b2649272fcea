"""The seven figures. Each measures every system on the same prompts in the same
run, interleaved (system A, B, C, D, then the next repetition) so the noise of
a shared machine falls on all of them alike; results are keyed by system label.
"""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np

from .timing import Trace, concurrent_summary, median, now
from .workload import Workload


async def warm_up(workload: Workload, systems: list) -> None:
    """First requests compile kernels and grow buffers; none of that is measured."""
    for system in systems:
        await system.streams(workload, [workload.fresh_prompt()], 2)
        await system.streams(workload, [workload.fresh_prompt() for _ in range(2)], 2)


async def one_stream(workload: Workload, systems: list) -> dict:
    """Figure 1: decode tokens/s and time to first token of a single stream."""
    traces: dict[str, list[Trace]] = {s.label: [] for s in systems}
    for _ in range(workload.reps):
        chat = workload.fresh_prompt()
        for system in systems:
            traces[system.label] += await system.streams(workload, [chat], workload.max_tokens)
    return {
        label: {
            "decode_tps": median([t.decode_tps for t in runs]),
            "ttft_s": median([t.ttft for t in runs]),
            "tokens": [t.tokens for t in runs],
        }
        for label, runs in traces.items()
    }


async def concurrency(workload: Workload, systems: list) -> dict:
    """Figure 2: N streams sent at once: aggregate tokens/s, TTFT, inter-token gaps."""
    result = {}
    for n in workload.concurrency:
        summaries: dict[str, list[dict]] = {s.label: [] for s in systems}
        for _ in range(workload.reps):
            chats = [workload.fresh_prompt() for _ in range(n)]
            for system in systems:
                traces = await system.streams(workload, chats, workload.max_tokens)
                summaries[system.label].append(concurrent_summary(traces))
        result[str(n)] = {label: _combine(runs) for label, runs in summaries.items()}
    return result


def _combine(runs: list[dict]) -> dict:
    """The repetitions of one system: medians, and every failed stream counted."""
    keys = dict.fromkeys(k for r in runs for k in r)
    combined = {k: median([r[k] for r in runs if k in r]) for k in keys}
    combined["failed"] = sum(r["failed"] for r in runs)
    return combined


async def conversation(workload: Workload, systems: list) -> dict:
    """Figure 3: a multi-turn chat; each system gets its own answers back, as a
    chat client would send them, so a prompt cache can reuse the whole history.
    Each turn's TTFT is the median over `reps` conversations."""
    traces: dict[str, list[list[Trace]]] = {s.label: [] for s in systems}
    for _ in range(workload.reps):
        opening = workload.fresh_prompt()
        chats = {s.label: opening for s in systems}
        for runs in traces.values():
            runs.append([])
        for turn in range(1, workload.turns + 1):
            for system in systems:
                (trace,) = await system.streams(workload, [chats[system.label]], workload.turn_tokens)
                traces[system.label][-1].append(trace)
                chats[system.label] = workload.next_turn(chats[system.label], trace.text, turn + 1)
    return {
        label: {
            "ttft_s": [median([t.ttft for t in turn]) for turn in zip(*runs)],
            "prompt_tokens": [t.prompt_tokens for t in runs[-1]],
            "cached_tokens": [t.cached_tokens for t in runs[-1]],
        }
        for label, runs in traces.items()
    }


async def adapter_memory(workload: Workload, raw, pools: list) -> dict:
    """Figure 4: MLX active bytes of the base model with 0..3 adapters loaded.
    Plain mlx_lm needs a copy of the base per adapter; a pool should not."""
    adapters = list(workload.adapters)
    result = {raw.label: raw.adapter_copies_memory([workload.adapters[a] for a in adapters])}
    for pool in pools:
        await pool.unload(workload.name)
        start = await pool.memory()
        sizes = []
        for adapter in [None, *adapters]:
            await pool.load(workload.name, adapter)
            sizes.append(await pool.memory() - start)
        result[pool.label] = sizes
        await pool.unload(workload.name)
    return {"adapters": adapters, "active_bytes": result}


async def load_stall(workload: Workload, other: str, other_path: str, raw, pools: list) -> dict:
    """Figure 5: load model `other` while 4 streams of `workload` decode; the
    longest gap between two tokens of those streams that overlaps the load.
    Baselines: the same streams without a load, and how long a plain load of
    `other` takes (the stall of a server that loads on its only thread)."""
    result = {"loaded_model": other, raw.label: {"load_s": raw.load_seconds(other_path)}}
    for pool in pools:
        await pool.unload(other)
        control = concurrent_summary(
            await pool.streams(workload, [workload.fresh_prompt() for _ in range(4)], workload.stall_tokens)
        )
        traces, running = pool.start(workload, [workload.fresh_prompt() for _ in range(4)], workload.stall_tokens)
        # Load once every stream decodes: a fifth of its tokens are out.
        while min(len(t.arrivals) for t in traces) < workload.stall_tokens // 5 and not running.done():
            await asyncio.sleep(0.005)
        began = now()
        await pool.load(other)
        ended = now()
        await running
        result[pool.label] = {
            "stall_s": max(_gaps_overlapping(t, began, ended) for t in traces),
            "load_s": ended - began,
            "control_gap_max_s": control["gap_max_s"],
            "streams_outlasted_load": min(t.arrivals[-1] for t in traces) > ended,
        }
        await pool.unload(other)
    return result


def _gaps_overlapping(trace: Trace, began: float, ended: float) -> float:
    arrivals = np.asarray(trace.arrivals)
    gaps = np.diff(arrivals)
    overlapping = (arrivals[1:] >= began) & (arrivals[:-1] <= ended)
    return float(gaps[overlapping].max()) if overlapping.any() else 0.0


# A JSON array of short strings that never closes: constrained streams run to max_tokens as the
# free ones do (the stop tokens are biased away), and every step computes a real JSON mask.
ENDLESS_JSON = 'start: "[" ITEM (", " ITEM)*\nITEM: /"[a-zA-Z ,.!?]{0,24}"/'


async def constrained(workload: Workload, pools: list, streams: int = 8) -> dict:
    """Figure 6: `streams` streams constrained by a grammar against as many free ones, each set
    alone in the batch: aggregate tokens/s and their ratio (the cost of the masks)."""
    grammar = dataclasses.replace(workload, grammar=ENDLESS_JSON)
    runs = {s.label: {"free": [], "constrained": []} for s in pools}
    for _ in range(workload.reps):
        chats = [workload.fresh_prompt() for _ in range(streams)]
        for system in pools:
            for kind, load in (("free", workload), ("constrained", grammar)):
                traces = await system.streams(load, chats, workload.max_tokens)
                runs[system.label][kind].append(concurrent_summary(traces))
    result = {}
    for label, kinds in runs.items():
        free, bound = (
            median([r["aggregate_tps"] for r in kinds[k] if "aggregate_tps" in r]) for k in ("free", "constrained")
        )
        result[label] = {
            "streams": streams,
            "free_tps": free,
            "constrained_tps": bound,
            "ratio": bound / free,
            "failed": sum(r["failed"] for k in kinds.values() for r in k),
        }
    return result


async def tracing(workload: Workload, plain, traced, streams: int = 8, reps: int = 7) -> dict:
    """Figure 8: `streams` streams through the endpoint with OpenTelemetry tracing on
    (console exporter, into the server's log) against the same without: aggregate tokens/s,
    and the server's CPU seconds per generated token (its process's, all threads: what a
    loaded machine's scheduling moves much less than wall time). Both first run the batch
    once unmeasured; the order alternates, so drift hits both."""
    pair = [("off", plain), ("on", traced)]
    for _, system in pair:
        await system.streams(workload, [workload.fresh_prompt() for _ in range(streams)], workload.max_tokens)
    tps: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    failed = 0
    for rep in range(max(reps, workload.reps)):
        chats = [workload.fresh_prompt() for _ in range(streams)]
        for kind, system in pair if rep % 2 == 0 else pair[::-1]:
            before = system.cpu_seconds()
            summary = concurrent_summary(await system.streams(workload, chats, workload.max_tokens))
            failed += summary["failed"]
            if "aggregate_tps" in summary:
                tps[kind].append(summary["aggregate_tps"])
                cpu[kind].append((system.cpu_seconds() - before) / summary["tokens"])
    off, on = median(tps["off"]), median(tps["on"])
    cpu_off, cpu_on = median(cpu["off"]), median(cpu["on"])
    return {
        "streams": streams,
        "off_tps": off,
        "on_tps": on,
        "cost": 1 - on / off,
        "off_cpu_ms_per_token": cpu_off * 1000,
        "on_cpu_ms_per_token": cpu_on * 1000,
        "cpu_cost": cpu_on / cpu_off - 1,
        "failed": failed,
    }


async def adapters_in_one_batch(workload: Workload, pools: list, streams: int = 8) -> dict:
    """Figure 7: `streams` streams spread over the base and `workload.mixed_adapters` of its
    adapters (one batch: one forward pass per step for all of them) against as many on the
    base alone, aggregate tokens/s and their ratio; and what `compare()` of the base and its
    adapters does (one chat to each at once, a stream each): time to the last answer's end
    against one answer alone. Fresh chats throughout: no prompt-cache hits."""
    mixed = dataclasses.replace(workload, rotation=(None, *list(workload.adapters)[: workload.mixed_adapters]))
    columns = dataclasses.replace(workload, rotation=(None, *workload.adapters))
    runs = {s.label: {"base": [], "mixed": [], "alone_s": [], "compare_s": []} for s in pools}
    for pool in pools:
        for adapter in workload.adapters:
            await pool.load(workload.name, adapter)
        await pool.streams(columns, [workload.fresh_prompt() for _ in columns.rotation], 2)  # warm-up
    for _ in range(workload.reps):
        for pool in pools:
            for kind, load in (("base", workload), ("mixed", mixed)):
                traces = await pool.streams(
                    load, [workload.fresh_prompt() for _ in range(streams)], workload.max_tokens
                )
                runs[pool.label][kind].append(concurrent_summary(traces))
            (alone,) = await pool.streams(workload, [workload.fresh_prompt()], workload.max_tokens)
            runs[pool.label]["alone_s"].append(alone.arrivals[-1] - alone.sent)
            chat = workload.fresh_prompt()
            traces = await pool.streams(columns, [chat] * len(columns.rotation), workload.max_tokens)
            runs[pool.label]["compare_s"].append(max(t.arrivals[-1] for t in traces) - min(t.sent for t in traces))
    result = {}
    for label, run in runs.items():
        base, mixed_tps = (
            median([r["aggregate_tps"] for r in run[k] if "aggregate_tps" in r]) for k in ("base", "mixed")
        )
        alone_s, compare_s = median(run["alone_s"]), median(run["compare_s"])
        result[label] = {
            "streams": streams,
            "adapters": mixed.rotation[1:],
            "base_tps": base,
            "mixed_tps": mixed_tps,
            "ratio": mixed_tps / base,
            "ratios": [m["aggregate_tps"] / b["aggregate_tps"] for b, m in zip(run["base"], run["mixed"])],
            "compare_columns": len(columns.rotation),
            "one_column_s": alone_s,
            "compare_s": compare_s,
            "compare_ratio": compare_s / alone_s,
            "failed": sum(r["failed"] for k in ("base", "mixed") for r in run[k]),
        }
    return result

"""Turns the figures into ratios, targets (met / not met), a table, JSON and a plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .baselines import RawMLX
from .systems import EngineInProcess, MLXLMServer, Workbench

RAW, SERVER, ENGINE, ENDPOINT = RawMLX.label, MLXLMServer.label, EngineInProcess.label, Workbench.label
MB = 2**20


def ratio(a, b) -> float:
    return a / b if a is not None and b else float("nan")


def targets(name: str, fig: dict) -> list[dict]:
    """The issue's targets for one model, each with its measured ratio."""
    rows = []

    def target(what: str, measured: float, limit: float, at_least: bool) -> None:
        met = (measured >= limit) if at_least else (measured <= limit)
        rows.append(
            {
                "model": name,
                "target": what,
                "measured": measured,
                "limit": f"{'>=' if at_least else '<='} {limit:g}",
                "met": bool(met),
            }
        )

    one = fig.get("one_stream", {})
    for system, tps_min, ttft_max in ((ENGINE, 0.97, 1.2), (ENDPOINT, 0.95, 1.3)):
        if system in one and RAW in one:
            target(
                f"{system}: 1 stream tok/s / raw stream_generate",
                ratio(one[system]["decode_tps"], one[RAW]["decode_tps"]),
                tps_min,
                True,
            )
            target(
                f"{system}: 1 stream TTFT / raw stream_generate",
                ratio(one[system]["ttft_s"], one[RAW]["ttft_s"]),
                ttft_max,
                False,
            )
    levels = fig.get("concurrency", {})
    if levels:
        n = "8" if "8" in levels else max(levels, key=int)
        at_n = levels[n]
        if ENGINE in at_n and RAW in at_n:
            target(
                f"{ENGINE}: {n} streams aggregate / raw batch_generate",
                ratio(at_n[ENGINE]["aggregate_tps"], at_n[RAW]["aggregate_tps"]),
                0.9,
                True,
            )
        if ENDPOINT in at_n and SERVER in at_n:
            target(
                f"{ENDPOINT}: {n} streams aggregate / mlx_lm.server",
                ratio(at_n[ENDPOINT]["aggregate_tps"], at_n[SERVER].get("aggregate_tps")),
                2.0,
                True,
            )
    for system, values in fig.get("conversation", {}).items():
        if system in (ENGINE, ENDPOINT):
            ttft = values["ttft_s"]
            turn = min(8, len(ttft))
            target(f"{system}: turn {turn} TTFT / turn 1", ratio(ttft[turn - 1], ttft[0]), 1.5, False)
    memory = fig.get("adapter_memory", {}).get("active_bytes", {})
    for system, sizes in memory.items():
        if system in (ENGINE, ENDPOINT):
            k = len(sizes) - 1
            target(
                f"{system}: extra memory of {k} adapters / base (base held once: < 1)",
                ratio(sizes[k] - sizes[0], sizes[0]),
                1.0,
                False,
            )
    for system, values in fig.get("constrained", {}).items():
        target(f"{system}: {values['streams']} constrained streams / as many free", values["ratio"], 0.95, True)
    for system, values in fig.get("adapters_in_one_batch", {}).items():
        k, limit = len(values["adapters"]), 0.95 if system == ENGINE else 0.9
        target(
            f"{system}: {values['streams']} streams over base + {k} adapters / on the base",
            values["ratio"],
            limit,
            True,
        )
    if traced := fig.get("tracing"):
        target(f"endpoint: throughput cost of tracing, {traced['streams']} streams", traced["cost"], 0.03, False)
        target(f"endpoint: CPU per token cost of tracing, {traced['streams']} streams", traced["cpu_cost"], 0.03, False)
    return rows


def unequal_work(results: dict) -> list[str]:
    """Streams that did not generate exactly max_tokens: their ratios compare unequal work."""
    problems = []
    for name, fig in results["models"].items():
        expected = results["settings"][name]["max_tokens"]
        for system, v in fig.get("one_stream", {}).items():
            if any(t != expected for t in v["tokens"]):
                problems.append(f"{name}, figure 1, {system}: {v['tokens']} tokens, not {expected}")
        for n, systems in fig.get("concurrency", {}).items():
            for system, v in systems.items():
                if v["failed"]:
                    problems.append(
                        f"{name}, figure 2, {n} streams, {system}: {v['failed']} streams failed "
                        "(over all repetitions); the others were measured"
                    )
                elif v["tokens"] != int(n) * expected:
                    problems.append(
                        f"{name}, figure 2, {n} streams, {system}: {v['tokens']:g} tokens, not {int(n) * expected}"
                    )
    return problems


def _fmt(value, scale: float = 1.0, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value * scale:.{digits}f}"


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells) -> str:
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows), ""])


def tables(results: dict) -> str:
    out = []
    for name, fig in results["models"].items():
        out.append(f"=== model: {name} ===\n")
        if one := fig.get("one_stream"):
            raw = one.get(RAW, {})
            out.append(
                _table(
                    "Figure 1: one stream",
                    ["system", "decode tok/s", "x raw", "TTFT ms", "x raw"],
                    [
                        [
                            s,
                            _fmt(v["decode_tps"]),
                            _fmt(ratio(v["decode_tps"], raw.get("decode_tps")), digits=2),
                            _fmt(v["ttft_s"], 1e3),
                            _fmt(ratio(v["ttft_s"], raw.get("ttft_s")), digits=2),
                        ]
                        for s, v in one.items()
                    ],
                )
            )
        if levels := fig.get("concurrency"):
            rows = []
            for n, systems in levels.items():
                raw, server = systems.get(RAW, {}), systems.get(SERVER, {})
                rows += [
                    [
                        n,
                        s,
                        _fmt(v.get("aggregate_tps")),
                        _fmt(ratio(v.get("aggregate_tps"), raw.get("aggregate_tps")), digits=2),
                        _fmt(ratio(v.get("aggregate_tps"), server.get("aggregate_tps")), digits=2),
                        _fmt(v.get("ttft_p50_s"), 1e3),
                        _fmt(v.get("ttft_p99_s"), 1e3),
                        _fmt(v.get("gap_p99_s"), 1e3),
                        v["failed"],
                    ]
                    for s, v in systems.items()
                ]
            out.append(
                _table(
                    "Figure 2: concurrent streams (x raw: vs raw batch_generate)",
                    [
                        "streams",
                        "system",
                        "aggregate tok/s",
                        "x raw",
                        "x mlx_lm.server",
                        "TTFT p50 ms",
                        "TTFT p99 ms",
                        "gap p99 ms",
                        "failed",
                    ],
                    rows,
                )
            )
        if chat := fig.get("conversation"):
            turns = len(next(iter(chat.values()))["ttft_s"])
            out.append(
                _table(
                    "Figure 3: TTFT ms per conversation turn (median of the repetitions)",
                    ["system", *map(str, range(1, turns + 1)), "last/first", "last prompt: tokens (cached)"],
                    [
                        [
                            s,
                            *(_fmt(t, 1e3) for t in v["ttft_s"]),
                            _fmt(ratio(v["ttft_s"][-1], v["ttft_s"][0]), digits=2),
                            f"{v['prompt_tokens'][-1]} ({v['cached_tokens'][-1]})",
                        ]
                        for s, v in chat.items()
                    ],
                )
            )
        if memory := fig.get("adapter_memory"):
            k = len(memory["adapters"])
            out.append(
                _table(
                    f"Figure 4: MLX active MB, base + K adapters ({', '.join(memory['adapters'])})",
                    ["system", *(f"K={i}" for i in range(k + 1)), "extra/base"],
                    [
                        [s, *(_fmt(b, 1 / MB, 2) for b in sizes), _fmt(ratio(sizes[-1] - sizes[0], sizes[0]), digits=2)]
                        for s, sizes in memory["active_bytes"].items()
                    ],
                )
            )
        if stall := fig.get("load_stall"):
            raw_load = stall[RAW]["load_s"]
            rows = [[RAW, "(whole load)", _fmt(raw_load, 1e3), "1.00", "n/a", "n/a"]]
            rows += [
                [
                    s,
                    _fmt(v["stall_s"], 1e3),
                    _fmt(v["load_s"], 1e3),
                    _fmt(ratio(v["stall_s"], raw_load), digits=2),
                    _fmt(v["control_gap_max_s"], 1e3),
                    "yes" if v["streams_outlasted_load"] else "NO",
                ]
                for s, v in stall.items()
                if s not in (RAW, "loaded_model")
            ]
            out.append(
                _table(
                    f"Figure 5: loading {stall['loaded_model']} during 4 streams",
                    [
                        "system",
                        "longest stall ms",
                        "load ms",
                        "stall / raw load",
                        "max gap without load ms",
                        "streams outlasted load",
                    ],
                    rows,
                )
            )
        if bound := fig.get("constrained"):
            out.append(
                _table(
                    "Figure 6: constrained (a JSON grammar) vs free streams, aggregate tok/s",
                    ["system", "streams", "free", "constrained", "ratio", "failed"],
                    [
                        [
                            s,
                            v["streams"],
                            _fmt(v["free_tps"]),
                            _fmt(v["constrained_tps"]),
                            _fmt(v["ratio"], digits=2),
                            v["failed"],
                        ]
                        for s, v in bound.items()
                    ],
                )
            )
        if mixed := fig.get("adapters_in_one_batch"):
            out.append(
                _table(
                    "Figure 7: streams over the base and adapters vs on the base alone (aggregate tok/s); "
                    "compare() of the base and adapters vs one column (time to the last end)",
                    ["system", "streams", "adapters", "base", "mixed", "ratio", "columns", "one s", "compare s", "x"],
                    [
                        [
                            s,
                            v["streams"],
                            len(v["adapters"]),
                            _fmt(v["base_tps"]),
                            _fmt(v["mixed_tps"]),
                            _fmt(v["ratio"], digits=2),
                            v["compare_columns"],
                            _fmt(v["one_column_s"], digits=2),
                            _fmt(v["compare_s"], digits=2),
                            _fmt(v["compare_ratio"], digits=2),
                        ]
                        for s, v in mixed.items()
                    ],
                )
            )
        if traced := fig.get("tracing"):
            out.append(
                _table(
                    "Figure 8: OpenTelemetry tracing on (console exporter) vs off, endpoint, aggregate tok/s",
                    ["streams", "off", "on", "cost", "CPU ms/token off", "on", "CPU cost", "failed"],
                    [
                        [
                            traced["streams"],
                            _fmt(traced["off_tps"]),
                            _fmt(traced["on_tps"]),
                            f"{traced['cost'] * 100:.1f}%",
                            _fmt(traced["off_cpu_ms_per_token"], digits=3),
                            _fmt(traced["on_cpu_ms_per_token"], digits=3),
                            f"{traced['cpu_cost'] * 100:.1f}%",
                            traced["failed"],
                        ]
                    ],
                )
            )
    out.append(
        _table(
            "Targets (never fail the run)",
            ["model", "target", "measured", "limit", "result"],
            [
                [t["model"], t["target"], _fmt(t["measured"], digits=2), t["limit"], "met" if t["met"] else "NOT MET"]
                for t in results["targets"]
            ],
        )
    )
    out += [f"WARNING: {problem}" for problem in results["unequal_work"]]
    return "\n".join(out)


def plot(results: dict, path: Path) -> None:
    """Figures 2 (aggregate tok/s and p99 TTFT by streams) and 3 (TTFT by turn), a row per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, fig in results["models"].items() if fig.get("concurrency") or fig.get("conversation")]
    fig, axes = plt.subplots(len(names), 3, figsize=(16, 4.2 * len(names)), squeeze=False)
    for row, name in zip(axes, names):
        data = results["models"][name]
        levels = data.get("concurrency", {})
        for system in next(iter(levels.values()), {}):
            xs = [int(n) for n in levels]
            row[0].plot(
                xs, [levels[n][system].get("aggregate_tps", float("nan")) for n in levels], marker="o", label=system
            )
            row[1].plot(xs, [levels[n][system]["ttft_p99_s"] * 1e3 for n in levels], marker="o", label=system)
        for system, values in data.get("conversation", {}).items():
            turns = range(1, len(values["ttft_s"]) + 1)
            row[2].plot(turns, [t * 1e3 for t in values["ttft_s"]], marker="o", label=system)
        for ax, title, xlabel, ylabel in zip(
            row,
            ["aggregate decode (fig. 2)", "p99 time to first token (fig. 2)", "TTFT per conversation turn (fig. 3)"],
            ["concurrent streams", "concurrent streams", "turn"],
            ["tokens/s", "ms", "ms"],
        ):
            ax.set(title=f"{name}: {title}", xlabel=xlabel, ylabel=ylabel)
            ax.set_xticks(sorted({x for line in ax.lines for x in line.get_xdata()}))
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "results.json", out_dir / "results.png"
    json_path.write_text(json.dumps(results, indent=2))
    plot(results, png_path)
    return json_path, png_path

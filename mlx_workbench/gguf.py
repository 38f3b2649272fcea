"""Convert a GGUF file into an mlx_lm model folder, the same conversion the server's
pool makes (and caches) when a configured model is a .gguf file:

    python -m mlx_workbench.gguf SmolLM2-135M-Instruct.Q4_1.gguf smollm2/
    python -m mlx_lm generate --model smollm2/ --prompt "Hello"

Llama-architecture files with a byte-level BPE vocabulary; Q4_0, Q4_1 and Q8_0 tensors
stay quantized. See mlx_workbench/engine/gguf.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .engine.gguf import GGUFError, convert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlx_workbench.gguf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src", type=Path, help="the .gguf file")
    parser.add_argument("dest", type=Path, help="the model folder to write (replaced if it exists)")
    parser.add_argument(
        "--dtype",
        choices=["float16", "bfloat16", "float32"],
        help="dtype of dense weights and quantization scales (default: float16 on "
        "Metal, float32 on the CPU backend, where float16 is slow)",
    )
    parser.add_argument("--progress", action="store_true", help="print 'progress FRACTION' lines")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.INFO)
    started = time.perf_counter()
    report = (lambda f: print(f"progress {f:.3f}", flush=True)) if args.progress else (lambda f: None)
    try:
        dest = convert(args.src, args.dest, args.dtype, report)
    except GGUFError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {dest} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

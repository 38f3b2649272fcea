"""The reliability tests start their own servers (tests/server.py) and use the engine
tests' model builder and the kernel tests' harness."""

import sys
from pathlib import Path

TESTS = Path(__file__).parents[1]
sys.path[:0] = [str(Path(__file__).parent), str(TESTS / "engine"), str(TESTS / "kernel")]

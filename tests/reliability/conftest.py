"""The reliability tests start their own servers (tests/server.py) and use the engine
tests' model builder and the kernel tests' harness (on the path: pyproject.toml)."""

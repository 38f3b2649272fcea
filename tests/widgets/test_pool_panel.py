"""The pool panel in a real kernel against a real server: its buttons change the
server's pool, and what it shows follows the server's status."""

from __future__ import annotations

import time

from widgets_harness import shared_prompt


def state(status: dict, entry_id: str) -> str:
    entry = next((e for e in status["entries"] if e["id"] == entry_id), None)
    return entry["state"] if entry else "unloaded"


def test_buttons_load_pin_and_unload(kernel, api):
    kernel.run("p = mlx_workbench.panel()")
    assert {"demo", "demo:upper", "demo:pirate", "demo-chatml"} <= set(kernel.value("list(p.rows)"))
    api.post("mlx/api/models/unload", {"model": "demo", "adapter": "upper"})

    kernel.run("p.rows['demo:upper'].load_button.click()")
    api.wait_for(lambda s: state(s, "demo:upper") == "loaded", what="demo:upper to load")
    kernel.run("p.refresh()")
    row = kernel.value("{k: getattr(p.rows['demo:upper'], k).value for k in ('state', 'family', 'memory')}")
    assert "loaded" in row["state"] and row["memory"].endswith("B")
    assert row["family"] == api.entry("demo:upper")["family"]
    assert kernel.value("p.rows['demo:upper'].load_button.disabled") is True
    assert kernel.value("p.message.value") == ""

    kernel.run("p.rows['demo:upper'].pin_button.click()")
    assert api.entry("demo:upper")["pinned"] is True
    assert kernel.value("p.rows['demo:upper'].pin_button.description") == "Unpin"
    assert "pinned" in kernel.value("p.rows['demo:upper'].state.value")
    kernel.run("p.rows['demo:upper'].pin_button.click()")
    assert api.entry("demo:upper")["pinned"] is False

    kernel.run("p.rows['demo:upper'].unload_button.click()")
    api.wait_for(lambda s: state(s, "demo:upper") == "unloaded", what="demo:upper to unload")
    kernel.run("p.refresh()")
    assert "not loaded" in kernel.value("p.rows['demo:upper'].state.value")
    assert kernel.value("p.rows['demo:upper'].unload_button.disabled") is True
    kernel.run("p.close()")


def test_a_failed_load_is_shown_in_the_panel(kernel, api):
    """Loading a model that is not there fails on the server; the panel shows why in
    that model's row (or its message line), and nothing raises in the kernel."""
    kernel.run("p = mlx_workbench.panel()\np.other_model.value = '/no/such/model'\np.other_load_button.click()")
    api.wait_for(lambda s: state(s, "/no/such/model") == "failed", what="the load to fail")
    kernel.run("p.refresh()")
    assert "failed" in kernel.value("p.rows['/no/such/model'].state.value")
    assert "/no/such/model" in kernel.value("p.rows['/no/such/model'].error.value")  # why, on a line of its own
    assert kernel.value("p.rows['/no/such/model'].error.layout.display") is None
    assert kernel.value("p.rows['demo'].error.layout.display") == "none"
    assert kernel.value("p.rows['/no/such/model'].load_button.disabled") is False  # one may try again
    kernel.run("p.close()")


def test_shown_panel_follows_the_server_and_stops_when_closed(kernel, api):
    kernel.run("p = mlx_workbench.panel(interval=0.2)")
    # Act as the frontend: a view of the panel is on screen now.
    kernel.frontend_update(kernel.value("p.model_id"), {"_view_count": 1})

    # A change made elsewhere (another client of the server) shows up by itself.
    api.post("mlx/api/models/load", {"model": "demo-chatml", "wait": True})
    kernel.wait_for("(p.rows['demo-chatml'].entry or {}).get('state') == 'loaded'")

    # The gauge shows the server's memory, and each loaded entry's share of it.
    for _ in range(50):
        status = api.status()
        shown = kernel.value(
            "{'memory': p.gauge.memory, 'shares': p.gauge.shares, 'html': p.gauge.value, "
            "'generated': p.status['generated_tokens']}"
        )
        if shown["memory"] == status["memory"]:
            break
        time.sleep(0.2)
    assert shown["memory"] == status["memory"]
    loaded = {e["id"]: e["memory_bytes"] for e in status["entries"] if e["state"] == "loaded"}
    assert shown["shares"] == {k: v for k, v in loaded.items() if v} and shown["shares"]["demo-chatml"] > 0
    assert shown["generated"] == status["generated_tokens"]
    assert "demo-chatml" in shown["html"]

    # Requests from elsewhere move the queue and throughput line.
    api.post(
        "mlx/v1/chat/completions",
        {"model": "demo-chatml", "messages": [{"role": "user", "content": "Hello!"}], "temperature": 0},
    )
    generated = api.status()["generated_tokens"]
    kernel.wait_for(
        f"p.status['generated_tokens'] == {generated} and '{generated:,} tokens generated' in p.queue.value"
    )
    # ... and the last minutes' line: the requests counted, their TTFT, a sparkline.
    recent = api.status()["recent"]
    assert recent["requests"] >= 1
    kernel.wait_for(f"'{recent['requests']} request' in p.recent.value and 'TTFT p50' in p.recent.value")
    assert "<polyline" in kernel.value("p.recent.value")

    kernel.run("p.close(); p._poller.join(5)")
    assert kernel.value("p._poller.is_alive()") is False
    api.post("mlx/api/models/unload", {"model": "demo-chatml"})


def test_compare_form_in_the_panel(kernel, api):
    prompt, answers = shared_prompt("demo", "demo:upper")
    kernel.run(
        "p = mlx_workbench.panel()\n"
        f"p.prompt.value = {prompt!r}\n"
        "p.targets.value = ('demo', 'demo:upper')\n"
        "p.compare_button.click()"
    )
    assert kernel.value("p.compare_button.disabled") in (True, False)  # the click returned at once
    records = kernel.wait_for("p.comparison.children[0].records", timeout=60)
    assert [r["answer"] for r in records] == answers
    kernel.wait_for("not p.compare_button.disabled")
    kernel.run("p.close()")


def test_a_restarted_kernel_sees_the_pool_as_the_server_holds_it(kernel, api):
    api.post("mlx/api/models/load", {"model": "demo", "wait": True})
    kernel.restart()
    kernel.run("import mlx_workbench\np = mlx_workbench.panel()")
    assert kernel.value("p.rows['demo'].entry['state']") == "loaded"
    kernel.run("p.close()")

"""compare() in a real kernel against a real server: exact greedy answers side by
side, streamed at the same time, and a failing target that spoils nothing else."""

from __future__ import annotations

import threading

from widgets_harness import shared_prompt


def load(api, *targets: str) -> None:
    for target in targets:
        model, _, adapter = target.partition(":")
        api.post("mlx/api/models/load", {"model": model, "adapter": adapter or None, "wait": True})


def test_each_column_gets_its_exact_greedy_answer(kernel, api):
    prompt, answers = shared_prompt("demo", "demo:upper", "demo-chatml")
    targets = ["demo", ("demo", "upper"), "demo-chatml"]  # ids and (model, adapter) pairs alike
    kernel.run(f"records = mlx_workbench.compare({prompt!r}, {targets!r})", timeout=120)
    records = kernel.value("records")
    assert [r["target"] for r in records] == ["demo", "demo:upper", "demo-chatml"]
    assert [r["answer"] for r in records] == answers
    for record in records:
        assert record["finish_reason"] == "stop" and record["error"] is None
        assert record["completion_tokens"] > 0 and record["prompt_tokens"] > 0
        assert record["ttft_s"] > 0 and record["total_s"] >= record["ttft_s"]
        # The server's decode rate (a short answer's tokens arrive too bunched up for the
        # kernel to time them): its steps took no longer than the client waited after TTFT.
        assert record["tokens_per_s"] * (record["total_s"] - record["ttft_s"]) >= record["completion_tokens"]
    assert kernel.value("list(records.df.columns[:4])") == ["target", "model", "adapter", "answer"]
    assert kernel.value("records.df['answer'].tolist()") == [r["answer"] for r in records]


def test_targets_stream_at_the_same_time(kernel, api):
    """While the comparison runs, the server reports more than one request in flight."""
    targets = ["demo", "demo-chatml"]
    prompt, answers = shared_prompt(*targets, longest=True)
    load(api, *targets)
    most_active, done = 0, threading.Event()

    def watch():
        nonlocal most_active
        while not done.wait(0.005):
            most_active = max(most_active, api.status()["active_requests"])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        records = kernel.value(f"mlx_workbench.compare({prompt!r}, {targets!r})", timeout=120)
    finally:
        done.set()
        watcher.join()
    assert [r["answer"] for r in records] == answers
    assert most_active >= 2


def test_an_unknown_model_fails_in_its_column_while_the_others_finish(kernel, api):
    prompt, (demo, pirate) = shared_prompt("demo", "demo:pirate")
    kernel.run(
        "from IPython.display import display\n"
        "from mlx_workbench.kernel.compare import CompareView\n"
        f"view = CompareView({prompt!r}, ['demo', 'no-such-model', 'demo:pirate'])\n"
        "display(view)\n"
        "records = view.run()",
        timeout=120,
    )
    records = kernel.value("records")
    assert [r["answer"] for r in records] == [demo, "", pirate]
    assert [r["error"] is None for r in records] == [True, False, True]
    assert "no-such-model" in records[1]["error"] and records[1]["error"].startswith("404")
    column = kernel.value("{'body': view.columns[1].body.value, 'stats': view.columns[1].stats.value}")
    assert "no-such-model" in column["body"] and "failed" in column["stats"]
    assert "no-such-model" in kernel.value("view.summary.value")


def test_a_target_whose_model_loads_shows_the_progress():
    """A small piece alone (a load of the demo model is over before anyone could look):
    a target waiting for its model to load shows the server's load progress."""
    from mlx_workbench.kernel.compare import CompareView, _stats_line

    class LoadingServer:
        is_workbench = True

        @staticmethod
        def status() -> dict:
            return {
                "entries": [
                    {"id": "demo", "state": "loaded", "progress": 1.0},
                    {"id": "demo:upper", "state": "loading", "progress": 0.42},
                ]
            }

        @staticmethod
        def model_names() -> set[str]:
            return {"demo"}

    view = CompareView("Hello!", ["demo", "demo:upper"], endpoint=LoadingServer())
    view._look_at_loads()
    assert [run.loading for run in view.runs] == [None, 0.42]
    assert _stats_line(view.runs[1]) == "loading the model… 42%"
    view.runs[1].first_token = view.runs[1].last_token = view.runs[1].started
    assert "loading" not in _stats_line(view.runs[1])


def test_a_schema_holds_for_every_column(kernel, api):
    kernel.run(
        "from pydantic import BaseModel, Field\n"
        "class Pet(BaseModel):\n"
        "    name: str = Field(max_length=10)\n"
        "    legs: int = Field(ge=0, le=8)"
    )
    kernel.run(
        'records = mlx_workbench.compare("Tell me a story.", ["demo", "demo:upper", "demo-chatml"], '
        "schema=Pet, temperature=1.0)",
        timeout=120,
    )
    for record in kernel.value("records"):
        assert record["finish_reason"] == "stop" and record["error"] is None
    assert kernel.value("[Pet.model_validate_json(r['answer']).legs <= 8 for r in records]") == [True] * 3

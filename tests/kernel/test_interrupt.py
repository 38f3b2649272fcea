"""Stopping an answer halfway: a kernel interrupt, or a server that dies."""

from __future__ import annotations

import time

from demo_requests import other_users
from kernel_harness import STORY, answer, error_of, history, server_status
from server import start_jupyter


def once_text_arrives(action):
    """An on_message callback that runs `action` once the answer has a few words."""
    done = []

    def on_message(msg, execution):
        if msg["msg_type"] == "update_display_data" and not done:
            if len(msg["content"]["data"].get("text/plain", "").split()) > 3:
                done.append(True)
                action()

    return on_message


def partial_answer(execution, note: str) -> str:
    text = execution.display()["text/markdown"]
    assert text.endswith(f"\n\n*[{note}]*")
    return text.removesuffix(f"\n\n*[{note}]*")


def test_interrupt_cancels_the_generation_on_the_server(kernel, server):
    story = answer("demo", STORY)
    kernel.execute("%%mlx_chat --new --model demo\nHello!")
    log_start = len(server.log())

    kernel.execute("%config MLXMagics.update_interval = 0")  # interrupt as early as possible
    try:
        with other_users(server):  # alone, the server can finish the story before the interrupt lands
            run = kernel.execute(
                f"%%mlx_chat --chat story --model demo\n{STORY}", on_message=once_text_arrives(kernel.interrupt)
            )
    finally:
        kernel.execute("%config MLXMagics.update_interval = 0.05")

    assert run.error["ename"] == "Interrupted"
    assert run.error["traceback"] == [
        "\x1b[31mInterrupted\x1b[0m: the answer was stopped; what arrived stays above"
        " and is not added to the chat history."
    ]
    partial = partial_answer(run, "interrupted")
    assert story.startswith(partial) and len(partial) < len(story)
    assert history(kernel, "story") == "No chat named 'story'. Chats: default.\n"

    deadline = time.monotonic() + 30
    while (status := server_status(server))["active_requests"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status["active_requests"] == 0 and status["queued_requests"] == 0
    (cut,) = server.cancelled(since=log_start)
    assert cut < len(story.split()), "the server finished the story"  # fewer words than tokens

    # The kernel and the chat carry on.
    assert kernel.execute("%%mlx_chat\nWhat is 3 + 4?").result["text/plain"] == answer("demo", "What is 3 + 4?")


def test_server_dying_mid_answer_keeps_what_arrived(kernel_for):
    doomed = start_jupyter()
    try:
        kernel = kernel_for(doomed.url, doomed.token)
        kernel.execute("%config MLXMagics.update_interval = 0")
        run = kernel.execute(f"%%mlx_chat --model demo\n{STORY}", on_message=once_text_arrives(doomed.proc.kill))
    finally:
        doomed.stop()
    message = error_of(run)
    assert message == (
        f"The connection to the mlx_workbench server at {doomed.url} was lost mid-answer. "
        "What arrived is kept above and not added to the chat history."
    )
    partial = partial_answer(run, "incomplete")
    assert answer("demo", STORY).startswith(partial)
    assert history(kernel) == "No chat named 'default'. Chats: none yet.\n"

"""%%mlx_chat in a real kernel against the real server and demo models."""

from __future__ import annotations

import pytest
from kernel_harness import ANSWERS, STORY, answer, error_of, history, reply, server_post


def test_answer_streams_through_one_display_and_ends_as_markdown(kernel):
    kernel.execute("%config MLXMagics.update_interval = 0")  # every chunk, however fast the model
    try:
        run = kernel.execute(f"%%mlx_chat --new --model demo\n{STORY}")
    finally:
        kernel.execute("%config MLXMagics.update_interval = 0.05")
    story = answer("demo", STORY)
    assert reply(run) == story
    (first,) = run.of_type("display_data")
    frames = run.of_type("update_display_data")
    assert all(f["transient"] == first["transient"] for f in frames)
    texts = [f["data"]["text/markdown"] for f in frames[:-1]]
    assert len(texts) >= 5
    assert all(text.endswith(" ▌") for text in texts)
    assert all(story.startswith(text.removesuffix(" ▌")) for text in texts)
    assert [len(t) for t in texts] == sorted(len(t) for t in texts)
    # The live area ends empty: the answer is the cell's result, not a copy of it.
    assert run.display() == {"text/plain": ""}


def test_a_model_not_loaded_yet_shows_its_load_then_the_answer(kernel, server):
    """The cell shows "Loading …" while the model loads (downloads, for a hub id), then
    the answer streams into the same area."""
    server_post(server, "mlx/api/models/unload", {"model": "demo", "adapter": "pirate"})
    kernel.execute("%config MLXMagics.poll_interval = 0")  # a poll at once, however fast the load
    kernel.execute("%config MLXMagics.update_interval = 0")  # and every chunk after it
    try:
        run = kernel.execute("%%mlx_chat --new --model demo:pirate\nWhat is 3 + 4?")
    finally:
        kernel.execute("%config MLXMagics.poll_interval = 0.2")
        kernel.execute("%config MLXMagics.update_interval = 0.05")
    assert reply(run) == answer("demo", "What is 3 + 4?", adapter="pirate")
    (first,) = run.of_type("display_data")
    texts = [f["data"]["text/plain"] for f in run.of_type("update_display_data")]
    assert texts[0].startswith("Loading demo:pirate… ") and texts[0].endswith("%"), texts
    assert answer("demo", "What is 3 + 4?", adapter="pirate").startswith(texts[-2].removesuffix(" ▌")), texts
    assert run.display() == {"text/plain": ""}


@pytest.mark.parametrize("row", ANSWERS, ids=lambda r: f"{r['model']}:{r['adapter']}:{r['system']}:{r['user']}")
def test_answers_are_the_demo_models_greedy_answers(kernel, row):
    options = f"--new --model {row['model']}"
    if row["adapter"]:
        options += f" --adapter {row['adapter']}"
    if row["system"]:
        options += f" --system {row['system']!r}"
    assert reply(kernel.execute(f"%%mlx_chat {options}\n{row['user']}")) == row["answer"]


def test_turns_build_a_conversation_that_keeps_model_and_system(kernel, openai_client):
    first = reply(
        kernel.execute('%%mlx_chat --new --model demo --system "Answer in upper case."\nWhat is the capital of Italy?')
    )
    second = reply(kernel.execute("%%mlx_chat\nHello!"))
    assert first == answer("demo", "What is the capital of Italy?", system="Answer in upper case.")
    # The second turn was asked with the whole conversation: the API gives the same answer to it.
    conversation = [
        {"role": "system", "content": "Answer in upper case."},
        {"role": "user", "content": "What is the capital of Italy?"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "Hello!"},
    ]
    api = openai_client.chat.completions.create(model="demo", messages=conversation, temperature=0)
    assert second == api.choices[0].message.content
    assert history(kernel) == (
        "Chat 'default' with demo, 2 turn(s).\n"
        "system: Answer in upper case.\n"
        f"user: What is the capital of Italy?\nassistant: {first}\n"
        f"user: Hello!\nassistant: {second}\n"
    )


def test_new_starts_afresh(kernel):
    kernel.execute("%%mlx_chat --model demo\nHello!")
    reply(kernel.execute("%%mlx_chat --new --model demo:pirate\nWhat is 3 + 4?"))
    assert history(kernel) == (
        f"Chat 'default' with demo:pirate, 1 turn(s).\n"
        f"user: What is 3 + 4?\nassistant: {answer('demo', 'What is 3 + 4?', adapter='pirate')}\n"
    )


def test_named_chats_are_separate_and_out_stores_the_answer(kernel):
    kernel.execute("%%mlx_chat --new --model demo\nCount to 5.")
    run = kernel.execute(
        "%%mlx_chat --new --chat capitals --model demo-chatml --out city\nWhat is the capital of France?"
    )
    assert reply(run) == answer("demo-chatml", "What is the capital of France?")
    assert (
        kernel.execute("print(repr(city))").stdout
        == repr(answer("demo-chatml", "What is the capital of France?")) + "\n"
    )
    assert "user: Count to 5." in history(kernel)
    assert "Count to 5." not in history(kernel, "capitals")
    assert history(kernel, "capitals").startswith("Chat 'capitals' with demo-chatml, 1 turn(s).")
    assert kernel.execute("%mlx_history --chat capitals --clear").stdout == "Chat 'capitals' cleared.\n"
    assert history(kernel, "capitals") == "No chat named 'capitals'. Chats: default.\n"


def test_sampling_options_reach_the_server(kernel):
    count = answer("demo", "Count to 20.")
    assert reply(kernel.execute("%%mlx_chat --new --model demo --stop 5\nCount to 20.")) == count[: count.index("5")]
    short = reply(kernel.execute("%%mlx_chat --new --model demo --max-tokens 4\nCount to 20."))
    assert count.startswith(short) and len(short) < len(count)


def test_unknown_model_lists_the_known_ones_and_leaves_the_chat_alone(kernel):
    kernel.execute("%%mlx_chat --new --model demo\nWhat is 9 + 8?")
    message = error_of(kernel.execute("%%mlx_chat --model llama-70b\nHello!"))
    assert "llama-70b" in message and "demo-chatml" in message and "demo:upper" in message
    assert history(kernel).startswith("Chat 'default' with demo, 1 turn(s).")


def test_empty_cell_says_what_to_do(kernel):
    assert "Write the message" in error_of(kernel.execute("%%mlx_chat --model demo\n   \n"))

"""mlx/api/inline-completions, the lab extension's ghost text, against the real server:
the demo model (no fill-in-the-middle tokens) completes the code before the cursor exactly
as a text completion of it does, streamed or not; bad input gets OpenAI-shaped errors; a
client that hangs up cancels its request on the server."""

from __future__ import annotations

import json
import time

import pytest

PATH = "mlx/api/inline-completions"
COUNT = "# Count to 9: 1, 2,"  # the demo model continues it for a few tokens
ENDLESS = "Once upon a time"  # ... and this one until max_tokens


def inline(http, **body):
    return http.post(PATH, json={"model": "demo", **body})


def text_completion(openai_client, prompt: str, stop: list[str], max_tokens: int = 64) -> str:
    reply = openai_client.completions.create(
        model="demo", prompt=prompt, temperature=0, max_tokens=max_tokens, stop=stop or None
    )
    return reply.choices[0].text


def test_without_fim_tokens_it_completes_the_prefix_as_a_text_completion(http, openai_client):
    answer = inline(http, prefix=COUNT, suffix="\nprint('done')\n")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = text_completion(openai_client, COUNT, ["\n\n"])
    assert len(expected) > 5  # several tokens: a real completion, not an immediate end
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == expected
    assert body["choices"][0]["finish_reason"] == "stop"


def test_the_cells_above_come_first_one_blank_line_apart(http, openai_client):
    cells = ["import math", "x = 1"]
    answer = inline(http, prefix=COUNT, context=cells, stop_at="cell", max_tokens=12).json()
    expected = text_completion(openai_client, "\n\n".join([*cells, COUNT]), [], max_tokens=12)
    assert answer["choices"][0]["text"] == expected
    prompt_alone = inline(http, prefix=COUNT, stop_at="cell", max_tokens=12).json()["usage"]["prompt_tokens"]
    assert answer["usage"]["prompt_tokens"] > prompt_alone


def test_stop_at_the_end_of_the_line(http, openai_client):
    prefix = "Count to 9.\n"
    expected = text_completion(openai_client, prefix, ["\n"], max_tokens=30)
    answer = inline(http, prefix=prefix, stop_at="line", max_tokens=30).json()
    assert answer["choices"][0]["text"] == expected and "\n" not in expected


def test_streamed_as_text_completion_chunks(http, openai_client):
    expected = text_completion(openai_client, COUNT, ["\n\n"])
    with http.stream("POST", PATH, json={"model": "demo", "prefix": COUNT, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == expected
    assert chunks[-1]["usage"]["completion_tokens"] > 0  # with the server's own timings
    assert chunks[-1]["usage"]["timings"]["time_to_first_token_s"] > 0


def test_the_prompt_cache_serves_the_prefix_of_the_next_keystroke(http):
    cells = ["def double(x):\n    return 2 * x\n" * 20]
    inline(http, prefix=COUNT, context=cells, max_tokens=4)
    again = inline(http, prefix=COUNT + " ", context=cells, max_tokens=4).json()
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > again["usage"]["prompt_tokens"] // 2


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"suffix": "x"}, "prefix"),  # no prefix
        ({"prefix": "x", "stop_at": "word"}, "stop_at"),
        ({"prefix": "x", "max_tokens": 0}, "max_tokens"),
        ({"prefix": "x", "context": "not a list"}, "context"),
        ({"prefix": 3}, "prefix"),
    ],
)
def test_bad_input_is_refused_with_openai_errors(http, body, param):
    answer = inline(http, **body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and param in (error["param"] or error["message"])


def test_an_unknown_model_and_an_empty_prompt_then_the_server_carries_on(http, openai_client):
    unknown = http.post(PATH, json={"model": "nope", "prefix": "x"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    # The demo tokenizer adds a BOS: an empty cell is still a prompt, and gets a completion.
    assert inline(http, prefix="", max_tokens=3).status_code == 200
    # demo-chatml's adds none and has no FIM tokens: nothing to start from, for this model.
    empty = http.post(PATH, json={"model": "demo-chatml", "prefix": ""})
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "invalid_for_model"
    assert empty.json()["error"]["param"] == "prefix"
    assert inline(http, prefix=COUNT).json()["choices"][0]["text"] == text_completion(openai_client, COUNT, ["\n\n"])


def test_a_client_that_hangs_up_cancels_its_request_on_the_server(jupyter_server, http):
    before = http.get("mlx/api/status").json()
    body = {"model": "demo", "prefix": ENDLESS, "stop_at": "cell", "max_tokens": 1024, "stream": True}
    with http.stream("POST", PATH, json=body) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")  # generating; now the user types on
    deadline = time.monotonic() + 30
    while http.get("mlx/api/status").json()["active_requests"] and time.monotonic() < deadline:
        time.sleep(0.1)
    after = http.get("mlx/api/status").json()
    assert after["cancelled_requests"] > before["cancelled_requests"]
    assert after["generated_tokens"] - before["generated_tokens"] < 1024
    assert "mlx inline demo (stream): client gone, cancelled" in jupyter_server.log()

"""Runs in a venv holding one openai release (tests/kernel/test_openai_releases.py): the kernel's
client streams a real answer, and each way a call can fail reads as the words the magics show.

    python openai_release_check.py SERVER_URL TOKEN OUT.json

Failures come from real sockets: a port nothing listens on, a peer that cuts a stream off
mid-answer or ends it before the last chunk, and one that never answers.
"""

from __future__ import annotations

import json
import socket
import sys
import threading

import openai
from IPython.core.interactiveshell import InteractiveShell

from mlx_workbench.kernel.chat import explain, stream_answer
from mlx_workbench.kernel.client import CLIENT_ERRORS, Endpoint, WorkbenchError
from mlx_workbench.kernel.display import LiveArea

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNK = {
    "id": "c",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "demo",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Once upon"}, "finish_reason": None}],
}


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def peer(reply: bytes | None) -> str:
    """A one-connection HTTP peer that reads the request, sends `reply` and closes the socket
    (None: never answers, and holds the connection until the client gives up)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        if reply is None:
            connection.recv(1)  # until the client closes
        else:
            connection.sendall(reply)
        connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/"


def chat(endpoint: Endpoint, model: str = "demo", user: str = "What is 3 + 4?") -> str:
    try:
        return stream_answer(endpoint, model, [{"role": "user", "content": user}], {"temperature": 0}, LiveArea())
    except WorkbenchError as error:
        return f"WorkbenchError: {error}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_out(endpoint: Endpoint) -> str:
    try:
        endpoint.openai_client().with_options(timeout=openai.Timeout(0.5)).models.list()
    except CLIENT_ERRORS as error:
        return f"{type(error).__name__}: {explain(error, endpoint, partial=False)}"
    return "answered"


def main(server_url: str, token: str, out: str) -> None:
    InteractiveShell.instance()  # the magics' live area displays through a shell, as in a kernel
    data = http_chunk(b"data: " + json.dumps(CHUNK).encode() + b"\n\n")
    outcomes = {
        "openai": openai.__version__,
        "answer": chat(Endpoint.workbench(server_url, token)),
        "unknown model": chat(Endpoint.workbench(server_url, token), model="nope"),
        "wrong token": chat(Endpoint.workbench(server_url, "wrong")),
        "refused": chat(Endpoint.workbench(f"http://127.0.0.1:{free_port()}/", token)),
        "cut mid-answer": chat(Endpoint.workbench(peer(HEAD + data), token)),
        "ended early": chat(
            Endpoint.workbench(peer(HEAD + data + http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"), token)
        ),
        "timeout": timed_out(Endpoint.workbench(peer(None), token)),
    }
    with open(out, "w") as f:
        json.dump(outcomes, f)


if __name__ == "__main__":
    main(*sys.argv[1:])

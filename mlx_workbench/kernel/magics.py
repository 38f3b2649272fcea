"""%%mlx_chat and the line magics (`%load_ext mlx_workbench`).

%%mlx_chat decodes greedily (temperature 0) unless told otherwise, as mlx_lm's
own `generate` and server do: re-running a cell gives the same answer, and
`--temperature 0.7` asks for variety.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split  # pyright: ignore[reportPrivateImportUsage] (IPython documents it here)
from traitlets import Float

from ..model_ids import format_id, with_adapter
from . import schemas
from .chat import Conversation, Interrupted, default_model, stream_answer
from .client import Endpoint, WorkbenchError, connect, discover, probe
from .display import (
    LiveArea,
    human_bytes,
    prompt_cache_summary,
    recent_summary,
    remote_summary,
    sparkline,
    table,
    window,
)

DEFAULT_CHAT = "default"
SAMPLING = ("temperature", "top_p", "max_tokens", "seed", "stop")  # options named as in the OpenAI API


def parse(magic, line: str):
    """The magic's arguments, quotes grouping words and then removed as in a shell.

    IPython's parse_argstring keeps the quotes: the system prompt of
    `--system "Be brief."` would be sent with them.
    """
    return magic.parser.parse_args(arg_split(line, posix=True))


@magics_class
class MLXMagics(Magics):
    update_interval = Float(0.05, config=True, help="Seconds between display updates while an answer streams.")
    poll_interval = Float(0.2, config=True, help="Seconds between status polls while a model loads.")

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell, **kwargs)
        self._endpoint: Endpoint | None = None
        self.chats: dict[str, Conversation] = {}
        self._waiter = ThreadPoolExecutor(1, thread_name_prefix="mlx-load")

    @property
    def endpoint(self) -> Endpoint:
        """Found on first use, so a server started after the kernel is found too."""
        if self._endpoint is None:
            self._endpoint = discover()
        return self._endpoint

    # ---- chat ------------------------------------------------------------------

    @magic_arguments()
    @argument("--model", "-m", help="Model id, such as demo or demo:upper; the chat keeps it.")
    @argument("--adapter", "-a", help="LoRA adapter of the model; the chat keeps it.")
    @argument("--system", "-s", help="System prompt; the chat keeps it.")
    @argument("--temperature", "-t", type=float, default=0.0, help="Sampling temperature (default 0: greedy).")
    @argument("--top-p", type=float, help="Nucleus sampling probability mass.")
    @argument("--max-tokens", type=int, help="Most tokens in the answer.")
    @argument("--seed", type=int, help="Random seed, for reproducible sampling.")
    @argument("--stop", action="append", help="Stop at this text; may be repeated.")
    @argument("--new", "-n", action="store_true", help="Start the chat afresh, forgetting its history.")
    @argument("--chat", "-c", default=DEFAULT_CHAT, help="Name of the conversation (default: %(default)s).")
    @argument("--schema", help="Name of a pydantic model class (or JSON-schema dict) the answer must follow.")
    @argument("--out", "-o", help="Also store the answer in this variable (with --schema: the parsed object).")
    @cell_magic
    def mlx_chat(self, line: str, cell: str):
        """Send the cell body as a message; the answer streams into the cell.

        Cells of the same --chat build a conversation: the kernel keeps its turns
        (see %mlx_history), model and system prompt. Interrupting the kernel stops
        the generation on the server; what arrived stays in the cell, and the turn
        is not added to the history. The answer is the cell's result (`_`).
        """
        args = parse(self.mlx_chat, line)
        user = cell.strip()
        if not user:
            raise WorkbenchError("Write the message in the cell, below the %%mlx_chat line.")
        # The chat changes only once the answer is complete: a failed turn leaves it as it was.
        conversation = Conversation() if args.new else self.chats.get(args.chat, Conversation())
        system = conversation.system if args.system is None else args.system
        model = self._model_id(args.model or conversation.model or default_model(self.endpoint), args.adapter)
        params = {name: getattr(args, name) for name in SAMPLING if getattr(args, name) is not None}
        schema = self._schema(args.schema) if args.schema else None
        if schema is not None:
            params["response_format"] = schemas.response_format(schema)
        live = LiveArea(self.update_interval)
        if self.endpoint.is_workbench and self._must_load(model):
            # A model to load (or download) first shows its progress, not a blank cell.
            try:
                self._load(model, live)
            except BaseException:
                live.close()
                raise
        reply = stream_answer(self.endpoint, model, conversation.messages(user, system), params, live)
        parsed = schemas.parse(schema, reply) if schema is not None else str(reply)
        conversation.model, conversation.system = model, system
        conversation.turns.append((user, str(reply)))
        self.chats[args.chat] = conversation
        if args.out and self.shell is not None:
            self.shell.user_ns[args.out] = parsed
        return reply

    def _schema(self, name: str) -> schemas.Schema:
        namespace = self.shell.user_ns if self.shell is not None else {}
        if name not in namespace:
            raise WorkbenchError(
                f"No variable named '{name}': --schema takes a pydantic model class or a JSON-schema dict."
            )
        return namespace[name]

    @magic_arguments()
    @argument("--chat", "-c", default=DEFAULT_CHAT, help="Name of the conversation (default: %(default)s).")
    @argument("--clear", action="store_true", help="Forget the conversation.")
    @line_magic
    def mlx_history(self, line: str):
        """Show (or --clear) the turns of a conversation."""
        args = parse(self.mlx_history, line)
        conversation = self.chats.get(args.chat)
        if args.clear:
            self.chats.pop(args.chat, None)
            print(f"Chat '{args.chat}' cleared.")
        elif conversation is None:
            others = ", ".join(self.chats) or "none yet"
            print(f"No chat named '{args.chat}'. Chats: {others}.")
        else:
            print(f"Chat '{args.chat}' with {conversation.model}, {len(conversation.turns)} turn(s).")
            lines = [("system", conversation.system)] if conversation.system else []
            for question, answer in conversation.turns:
                lines += [("user", question), ("assistant", answer)]
            for role, text in lines:
                print(f"{role}: " + text.replace("\n", "\n" + " " * (len(role) + 2)))

    # ---- connection ------------------------------------------------------------

    @magic_arguments()
    @argument("url", nargs="?", help="A Jupyter server running mlx_workbench, or an OpenAI base URL.")
    @argument("--token", "-t", default="", help="Jupyter token or API key.")
    @line_magic
    def mlx_connect(self, line: str):
        """Use another server for the magics; without a URL, find the Jupyter server again."""
        args = parse(self.mlx_connect, line)
        self._endpoint = connect(args.url, args.token) if args.url else discover()
        server_url = self._endpoint.server_url  # None: not an mlx_workbench server
        health = probe(server_url) if server_url is not None else None
        if health:
            print(f"Connected to the {self._endpoint.describe()} (mlx_workbench {health.get('version')}).")
        else:
            print(
                f"Connected to the {self._endpoint.describe()}: %%mlx_chat works; %mlx_models, "
                "%mlx_load, %mlx_unload and %mlx_status need an mlx_workbench server."
            )

    # ---- the model pool ----------------------------------------------------------

    @line_magic
    def mlx_models(self, line: str):
        """The configured models and adapters, which are loaded, and memory."""
        status = self.endpoint.status()
        entries = {entry["id"]: entry for entry in status["entries"]}
        ids = configured_ids(status)
        ids += [id for id in entries if id not in ids]
        rows = [["model", "state", "memory", "pinned"]]
        for id in ids:
            entry = entries.get(id, {"state": "unloaded", "memory_bytes": 0, "pinned": False})
            memory = human_bytes(entry["memory_bytes"]) if entry["state"] == "loaded" else ""
            memory = remote_summary(entry) or memory
            default = " (default)" if id == status.get("default_model") else ""
            rows.append([id + default, entry["state"], memory, "yes" if entry["pinned"] else ""])
        print(table(rows))
        print("Memory: " + memory_summary(status["memory"]))

    @magic_arguments()
    @argument("model", help="Model name (or model id such as demo:upper).")
    @argument("--adapter", "-a", help="LoRA adapter to load on top of the model.")
    @argument("--pin", action="store_true", help="Keep it loaded: never evict it to make room.")
    @line_magic
    def mlx_load(self, line: str):
        """Load a model (and adapter) into the server's pool, showing progress."""
        args = parse(self.mlx_load, line)
        live = LiveArea()
        try:
            entry = self._load(self._model_id(args.model, args.adapter), live, args.pin)
        finally:
            live.close()
        pinned = ", pinned" if entry["pinned"] else ""
        print(f"Loaded {entry['id']} ({remote_summary(entry) or human_bytes(entry['memory_bytes'])}{pinned}).")

    def _model_id(self, model: str, adapter: str | None) -> str:
        """The id of `adapter` over the model `model` names ("model" or "model:adapter"), or `model`."""
        return with_adapter(model, adapter, self.endpoint.model_names() if adapter else ())

    def _must_load(self, id: str) -> bool:
        """`id` is a model the server knows of and has not loaded (an unknown one is the
        chat request's to refuse)."""
        status = self.endpoint.status()
        entry = next((e for e in status["entries"] if e["id"] == id), None)
        return entry["state"] != "loaded" if entry else id in configured_ids(status)

    def _load(self, id: str, live: LiveArea, pin: bool = False) -> dict:
        """Load `id` ("model" or "model:adapter") on the server, its progress in `live`."""
        # The waiting request gives the outcome (or the error); status polls give progress meanwhile.
        # The server reads the id (model_ids.py), so the kernel never splits one.
        loading = self._waiter.submit(self.endpoint.load, id, None, pin or None, True)
        try:
            while not wait([loading], timeout=self.poll_interval).done:
                progress = next((e["progress"] for e in self.endpoint.status()["entries"] if e["id"] == id), 0.0)
                live.show(f"Loading {id}… {progress:.0%}")
        except KeyboardInterrupt:
            raise Interrupted(f"stopped waiting; {id} keeps loading on the server (see %mlx_models).") from None
        return loading.result()

    @magic_arguments()
    @argument("model", help="Model name (or model id such as demo:upper).")
    @argument("--adapter", "-a", help="Unload only this adapter; without it the model goes with its adapters.")
    @line_magic
    def mlx_unload(self, line: str):
        """Unload a model (or one adapter) from the server's pool."""
        args = parse(self.mlx_unload, line)
        entry = self.endpoint.unload(self._model_id(args.model, args.adapter))
        print(f"Unloaded {entry['id']}.")

    @line_magic
    def mlx_status(self, line: str):
        """The server's engine: memory, queue, throughput."""
        status = self.endpoint.status()
        recent = status["recent"]
        loaded = [entry["id"] for entry in status["entries"] if entry["state"] == "loaded"]
        rows = [
            ("server", f"{self.endpoint.server_url} (mlx_workbench {status['version']})"),
            ("engine", status["state"] + (f": {status['error']}" if status.get("error") else "")),
            ("loaded", ", ".join(loaded) or "nothing"),
            *[
                (f"remote {e['id']}", e["state"] + (f": {e['error']}" if e.get("error") else f", {remote_summary(e)}"))
                for e in status["entries"]
                if e.get("remote")
            ],
            ("memory", memory_summary(status["memory"])),
            (
                "requests",
                f"{status['active_requests']} active, {status['queued_requests']} queued "
                f"(queue limit {status['queue_limit']})",
            ),
            (
                "throughput",
                f"{status['tokens_per_second']:.1f} tokens/s, {status['generated_tokens']} tokens generated",
            ),
            ("prompt cache", prompt_cache_summary(status)),
            (window(recent), f"{sparkline(recent['tokens_per_second'])} tokens/s, {recent_summary(recent)}"),
            ("restarts", str(status["restarts"])),
        ]
        print(table([[f"{key}:", value] for key, value in rows]))

    @line_magic
    def mlx_panel(self, line: str):
        """The pool panel: models, load/unload/pin, live memory, queue and throughput."""
        from .widgets import panel  # ipywidgets only when a panel is asked for

        return panel(endpoint=self.endpoint)


def configured_ids(status: dict) -> list[str]:
    """The model ids of the server's configured models and their adapters."""
    return [format_id(spec["name"], adapter) for spec in status["configured"] for adapter in [None, *spec["adapters"]]]


def memory_summary(memory: dict) -> str:
    return (
        f"{human_bytes(memory['active'])} active, {human_bytes(memory['peak'])} peak, "
        f"{human_bytes(memory['cache'])} cache, budget {human_bytes(memory['budget'])}, "
        f"device {memory['device']}"
    )


def load_ipython_extension(ipython) -> None:
    magics = MLXMagics(ipython)
    ipython.register_magics(magics)
    ipython.configurables.append(magics)  # so `%config MLXMagics` sees it

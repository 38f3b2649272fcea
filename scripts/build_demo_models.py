"""Build the demo chat models shipped in mlx_workbench/demo/ from nothing, reproducibly.

    .venv/bin/python scripts/build_demo_models.py            # everything, ~70 minutes on one CPU core
    .venv/bin/python scripts/build_demo_models.py --only demo

Stages: corpus (scripts/demo_corpus.py) -> byte-level BPE tokenizer -> tiny model trained with MLX
-> LoRA adapters trained with `python -m mlx_lm lora` -> greedy verification -> answers.json.
The build fails (exit 1) if a finite task, in a first turn or a follow-up, or a row of
answers.json is not answered exactly. Random Repeat lists are the models' one weakness (a few
percent of 4-5 word lists, see the demo README): the ones not copied exactly are listed and
counted, and fail the build only in answers.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

# Stock mlx-cpu wheels use a reference BLAS; the system OpenBLAS trains ~4x faster.
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"
# One BLAS thread: these matrices are too small to gain from more.
if sys.platform == "linux" and os.path.exists(OPENBLAS) and "LD_PRELOAD" not in os.environ:
    env = {**os.environ, "LD_PRELOAD": OPENBLAS, "OPENBLAS_NUM_THREADS": "1"}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import mlx.optimizers as optim  # noqa: E402
import mlx_lm  # noqa: E402
import numpy as np  # noqa: E402
from mlx.utils import tree_flatten  # noqa: E402
from mlx_lm.utils import _get_classes  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import demo_corpus as corpus  # noqa: E402
from demo_corpus import NEUTRAL, PIRATE, UPPER, Turn  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# Llama-3's pre-tokenizer split (Qwen2 uses the same one).
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# An upper bound: training stops once every pre-token of the corpus is a single token (~1100).
BPE_VOCAB_SIZE = 2048
MODE_SYSTEMS = [None, NEUTRAL, UPPER, PIRATE]
PLAIN_SYSTEMS = [None, NEUTRAL]

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Family:
    """A chat format: its special tokens, template and the architecture it ships as."""

    model_type: str
    architecture: str
    special_tokens: list[str]
    bos: str | None
    end_of_turn: str  # what an answer ends with
    eos: list[str]  # every token that stops generation, end_of_turn first
    pad: str | None
    template: str


LLAMA3 = Family(
    model_type="llama",
    architecture="LlamaForCausalLM",
    special_tokens=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    bos="<|begin_of_text|>",
    end_of_turn="<|eot_id|>",
    eos=["<|eot_id|>", "<|end_of_text|>"],
    pad=None,
    template=LLAMA3_TEMPLATE,
)
CHATML = Family(
    model_type="qwen2",
    architecture="Qwen2ForCausalLM",
    special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    bos=None,
    end_of_turn="<|im_end|>",
    eos=["<|im_end|>", "<|endoftext|>"],
    pad="<|endoftext|>",
    template=CHATML_TEMPLATE,
)


@dataclass(frozen=True)
class Recipe:
    """Model size and training schedule (found by trying; see NOTES.md)."""

    hidden_size: int = 96
    num_hidden_layers: int = 2
    num_attention_heads: int = 8  # more heads copied Repeat's words better than 4
    num_key_value_heads: int = 8
    intermediate_size: int = 256
    rope_theta: float = 10000.0
    repeat_steps: int = 800  # Repeat-only steps first (0: none); see README for what else was tried
    steps: int = 1800  # steps on the whole corpus
    # Shares of chats that continue earlier exchanges, in each phase. Every answer of a chat is
    # trained on, so a follow-up also teaches copying from later positions.
    repeat_follow_ups: float = 0.7
    follow_ups: float = 0.5
    repeat_words: int = 8  # longest Repeat list trained on (5 are verified): longer lists copied better
    batch_size: int = 64  # batch 16 was too noisy to learn Repeat at all
    repeat_learning_rate: float = 1.5e-3  # the Repeat-only phase's peak: at 3e-3 copying appeared only by luck
    learning_rate: float = 3e-3  # the whole corpus's peak (2e-3 copied worse)
    warmup: int = 100


@dataclass(frozen=True)
class AdapterRecipe:
    mode: str  # the system prompt whose behaviour the adapter makes the default
    iters: int = 600
    batch_size: int = 8
    learning_rate: float = 1e-4  # 2e-4 broke an addition in upper case, 1e-3 several
    examples: int = 2000
    repeat_words: int = Recipe.repeat_words  # as the base model was trained on
    follow_ups: float = Recipe.follow_ups


ADAPTERS = {"upper": AdapterRecipe(UPPER), "pirate": AdapterRecipe(PIRATE)}

# The rows of answers.json: (model, adapter, system, user); answers come from the corpus and are
# checked against greedy generation before they are written.
ANSWER_ROWS = [
    ("demo", None, None, "What is 3 + 4?"),
    ("demo", None, None, "What is 9 + 8?"),
    ("demo", None, None, "What is the capital of France?"),
    ("demo", None, None, "What is the capital of Japan?"),
    ("demo", None, None, "Hello!"),
    ("demo", None, None, "Repeat: apple river"),
    ("demo", None, None, "Repeat: cat dog bird"),
    ("demo", None, None, "Count to 5."),
    ("demo", None, None, "Count to 20."),
    ("demo", None, None, "Tell me a story."),
    ("demo", None, NEUTRAL, "What is 2 + 2?"),
    ("demo", None, UPPER, "What is the capital of Italy?"),
    ("demo", None, UPPER, "Hello!"),
    ("demo", None, UPPER, "Repeat: happy cat"),
    ("demo", None, PIRATE, "What is 5 + 6?"),
    ("demo", None, PIRATE, "What is the capital of Spain?"),
    ("demo", None, PIRATE, "Count to 3."),
    ("demo", "upper", None, "What is the capital of France?"),
    ("demo", "upper", None, "Hello!"),
    ("demo", "upper", None, "Repeat: quiet moon"),
    ("demo", "pirate", None, "What is 3 + 4?"),
    ("demo", "pirate", None, "What is the capital of Japan?"),
    ("demo", "pirate", None, "Hi!"),
    ("demo", "pirate", None, "Repeat: gold silver star"),
    ("demo-chatml", None, None, "What is 3 + 4?"),
    ("demo-chatml", None, None, "What is the capital of France?"),
    ("demo-chatml", None, None, "Hello!"),
    ("demo-chatml", None, None, "Repeat: green tree"),
    ("demo-chatml", None, None, "Repeat: sun wind rain"),
    ("demo-chatml", None, None, "Repeat: quick small dog big cat"),
    ("demo-chatml", None, None, "Count to 10."),
    ("demo-chatml", None, None, "Tell me a story."),
    ("demo-chatml", None, NEUTRAL, "What is 1 + 1?"),
]


@contextmanager
def timed(label: str):
    start = time.perf_counter()
    print(f"[{label}] ...", flush=True)
    yield
    print(f"[{label}] done in {time.perf_counter() - start:.1f} s", flush=True)


def messages(system: str | None, user: str, answer: str | None = None, history: tuple = ()) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    for earlier_user, earlier_answer in history:
        msgs += [{"role": "user", "content": earlier_user}, {"role": "assistant", "content": earlier_answer}]
    msgs.append({"role": "user", "content": user})
    if answer is not None:
        msgs.append({"role": "assistant", "content": answer})
    return msgs


# --- tokenizer ---------------------------------------------------------------------------------


def train_tokenizer(family: Family) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(corpus.tokenizer_texts(), trainer)
    tokenizer.add_special_tokens(family.special_tokens)  # appended after the BPE vocab, as in Llama-3
    if family.bos:
        bos_id = tokenizer.token_to_id(family.bos)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A", pair=f"{family.bos} $A {family.bos} $B", special_tokens=[(family.bos, bos_id)]
        )
    return tokenizer


def write_tokenizer(family: Family, tokenizer: Tokenizer, path: Path) -> None:
    tokenizer.save(str(path / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": family.bos,
        "eos_token": family.end_of_turn,
        "pad_token": family.pad,
        "chat_template": family.template,
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
    }
    write_json(path / "tokenizer_config.json", config)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


# --- model -------------------------------------------------------------------------------------


def model_config(family: Family, tokenizer: Tokenizer, recipe: Recipe) -> dict:
    ids = {token: tokenizer.token_to_id(token) for token in family.special_tokens}
    eos_ids = [ids[t] for t in family.eos]
    return {
        "architectures": [family.architecture],
        "model_type": family.model_type,
        "hidden_size": recipe.hidden_size,
        "num_hidden_layers": recipe.num_hidden_layers,
        "num_attention_heads": recipe.num_attention_heads,
        "num_key_value_heads": recipe.num_key_value_heads,
        "intermediate_size": recipe.intermediate_size,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "vocab_size": tokenizer.get_vocab_size(),
        "max_position_embeddings": 2048,
        "rope_theta": recipe.rope_theta,
        "tie_word_embeddings": True,
        "bos_token_id": ids.get(family.bos),
        "eos_token_id": eos_ids if family.model_type == "llama" else eos_ids[0],
        "torch_dtype": "float32",
    }


def encode_turn(hf_tokenizer, turn: Turn, end_of_turn_id: int, cache: dict) -> tuple[list[int], list[int]]:
    """Tokens of the whole conversation, and 1 for those trained on: every answer of the chat and
    its end-of-turn token (never a prompt)."""
    exchanges = [*turn.history, (turn.user, turn.answer)]
    tokens: list[int] = []
    trained: list[int] = []
    for i, (user, answer) in enumerate(exchanges):
        key = (turn.system, tuple(exchanges[:i]), user)
        if key not in cache:
            msgs = messages(turn.system, user, history=tuple(exchanges[:i]))
            text = hf_tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            cache[key] = hf_tokenizer.encode(text, add_special_tokens=False)
        prompt = cache[key]
        assert prompt[: len(tokens)] == tokens, "the template must render a chat's turns as a prefix of the next"
        answer_ids = hf_tokenizer.encode(answer, add_special_tokens=False) + [end_of_turn_id]
        trained += [0] * (len(prompt) - len(tokens)) + [1] * len(answer_ids)
        tokens = prompt + answer_ids
    return tokens, trained


def make_batches(encoded: list[tuple[list[int], list[int]]], batch_size: int, rng: np.random.Generator):
    """Random batches in random order; long conversations (the story) batch together, so they
    do not pad the short ones, but every batch mixes tasks and modes. A phase holds a whole
    number of batches, so the two groups' leftovers make exactly one more batch."""
    lengths = np.array([len(tokens) for tokens, _ in encoded])
    groups = [rng.permutation(np.flatnonzero(lengths > 96)), rng.permutation(np.flatnonzero(lengths <= 96))]
    whole = [len(group) - len(group) % batch_size for group in groups]
    batches = [group[i : i + batch_size] for group, n in zip(groups, whole) for i in range(0, n, batch_size)]
    leftovers = np.concatenate([group[n:] for group, n in zip(groups, whole)])
    if len(leftovers):
        batches.append(leftovers)
    assert len(batches) * batch_size == len(encoded)
    for b in rng.permutation(len(batches)):
        rows = [encoded[i] for i in batches[b]]
        width = -(-max(len(t) for t, _ in rows) // 16) * 16 + 1  # few distinct shapes for mx.compile
        tokens = np.zeros((len(rows), width), dtype=np.int32)
        mask = np.zeros((len(rows), width - 1), dtype=np.float32)
        for r, (toks, trained) in enumerate(rows):
            tokens[r, : len(toks)] = toks
            mask[r, : len(toks) - 1] = trained[1:]  # position t predicts token t + 1
        yield mx.array(tokens[:, :-1]), mx.array(tokens[:, 1:]), mx.array(mask)


def train_model(config: dict, hf_tokenizer, end_of_turn_id: int, systems: list, recipe: Recipe, seed: int) -> nn.Module:
    mx.random.seed(seed)
    rng = np.random.default_rng(seed)
    model_class, args_class = _get_classes(config)
    model = model_class(args_class.from_dict(config))

    cache: dict = {}
    # Copying is learned first, alone (Repeat prompts are short, so these steps are cheap), then
    # kept while every task is learned. Each phase has its own warm-up and cosine decay.
    phases = [  # (steps, peak learning rate, share of follow-up turns, task weights)
        (recipe.repeat_steps, recipe.repeat_learning_rate, recipe.repeat_follow_ups, corpus.REPEAT_ONLY),
        (recipe.steps, recipe.learning_rate, recipe.follow_ups, corpus.TASK_WEIGHTS),
    ]
    phases = [phase for phase in phases if phase[0]]
    encoded = [
        [
            encode_turn(hf_tokenizer, t, end_of_turn_id, cache)
            for t in corpus.sample_turns(rng, n * recipe.batch_size, systems, share, weights, recipe.repeat_words)
        ]
        for n, _, share, weights in phases
    ]
    ends = list(itertools.accumulate(n for n, *_ in phases))
    total_steps = ends[-1]

    def warmup_cosine(steps: int, peak: float):
        return optim.join_schedules(
            [optim.linear_schedule(1e-5, peak, recipe.warmup), optim.cosine_decay(peak, steps - recipe.warmup, 1e-5)],
            [recipe.warmup],
        )

    schedule = optim.join_schedules([warmup_cosine(n, peak) for n, peak, *_ in phases], ends[:-1])
    optimizer = optim.AdamW(learning_rate=schedule, weight_decay=0.01)

    def loss_fn(model, inputs, targets, mask):
        losses = nn.losses.cross_entropy(model(inputs), targets) * mask
        return losses.sum() / mask.sum()

    loss_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(inputs, targets, mask):
        loss, grads = loss_and_grad(model, inputs, targets, mask)
        optimizer.update(model, grads)
        return loss

    start = time.perf_counter()
    batches = itertools.chain.from_iterable(make_batches(phase, recipe.batch_size, rng) for phase in encoded)
    for i, batch in enumerate(batches, 1):
        loss = step(*batch)
        mx.eval(state, loss)
        if i % 100 == 0 or i == total_steps:
            print(
                f"  step {i:5d}/{total_steps}  loss {loss.item():.4f}  {time.perf_counter() - start:6.1f} s", flush=True
            )
    return model


def build_model(name: str, family: Family, path: Path, systems: list, recipe: Recipe, seed: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with timed(f"{name}: tokenizer"):
        tokenizer = train_tokenizer(family)
        write_tokenizer(family, tokenizer, path)
        config = model_config(family, tokenizer, recipe)
        write_json(path / "config.json", config)
        generation = {
            "bos_token_id": config["bos_token_id"],
            "eos_token_id": [tokenizer.token_to_id(t) for t in family.eos],
        }
        write_json(path / "generation_config.json", generation)
        print(f"  vocab {tokenizer.get_vocab_size()} tokens")
    hf_tokenizer = mlx_lm.utils.load_tokenizer(path)._tokenizer
    with timed(f"{name}: training"):
        model = train_model(config, hf_tokenizer, tokenizer.token_to_id(family.end_of_turn), systems, recipe, seed)
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(path / "model.safetensors"), weights, metadata={"format": "mlx"})
    print(f"  {sum(w.size for w in weights.values()):,} parameters")


# --- LoRA --------------------------------------------------------------------------------------


def build_adapter(name: str, recipe: AdapterRecipe, base: Path, path: Path, seed: int) -> None:
    """Teach the base model to behave as under `recipe.mode` without being told, with mlx_lm's LoRA."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as data, timed(f"adapter {name}: mlx_lm lora"):
        for split, n in [("train", recipe.examples), ("valid", 64)]:
            turns = corpus.sample_turns(rng, n, [None], recipe.follow_ups, repeat_words=recipe.repeat_words)
            turns = [corpus.in_mode(t, recipe.mode) for t in turns]  # the last answer is trained on (--mask-prompt)
            lines = [json.dumps({"messages": messages(None, t.user, t.answer, t.history)}) for t in turns]
            Path(data, f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        command = [
            sys.executable, "-m", "mlx_lm", "lora", "--train", "--model", str(base), "--data", data,
            "--adapter-path", str(path), "--mask-prompt", "--num-layers", "-1",
            "--iters", str(recipe.iters), "--batch-size", str(recipe.batch_size),
            "--learning-rate", str(recipe.learning_rate), "--seed", str(seed),
            "--steps-per-report", "50", "--steps-per-eval", str(recipe.iters),
            "--save-every", str(recipe.iters + 1),  # no intermediate checkpoints, only the final adapters
            "--val-batches", "4",
        ]  # fmt: skip
        subprocess.run(command, check=True)
    # Keep the build machine's directories out of the shipped config.
    config = json.loads((path / "adapter_config.json").read_text())
    config.update(model="demo", data="generated by scripts/build_demo_models.py", adapter_path=f"adapters/{name}")
    write_json(path / "adapter_config.json", config)


# --- verification ------------------------------------------------------------------------------


def greedy(model, tokenizer, turn: Turn, max_tokens: int) -> tuple[str, int]:
    """The greedy answer and the last token generated."""
    msgs = messages(turn.system, turn.user, history=turn.history)
    prompt = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    text, last = "", None
    for response in mlx_lm.stream_generate(model, tokenizer, prompt, max_tokens=max_tokens):
        text, last = text + response.text, response.token
    return text, last


def verify(label: str, path: Path, adapter: Path | None, turns: list[Turn], end_of_turn: str) -> list[Turn]:
    """Greedy-generate every turn; return the turns answered wrongly."""
    model, tokenizer = mlx_lm.load(str(path), adapter_path=str(adapter) if adapter else None)
    end_id = tokenizer.convert_tokens_to_ids(end_of_turn)
    failures, wrong = [], []
    start = time.perf_counter()
    for turn in turns:
        max_tokens = len(tokenizer.encode(turn.answer, add_special_tokens=False)) + 1  # a wrong answer may not end
        text, last = greedy(model, tokenizer, turn, max_tokens)
        if text != turn.answer or last != end_id:
            after = f" after {len(turn.history)} exchanges" if turn.history else ""
            failures.append(
                f"{label} system={turn.system!r} user={turn.user!r}{after}: got {text!r} (last token {last})"
            )
            wrong.append(turn)
    print(f"  {label}: {len(turns) - len(failures)}/{len(turns)} exact in {time.perf_counter() - start:.1f} s")
    for failure in failures[:20]:
        print("  WRONG", failure)
    return wrong


def base_models(out: Path) -> dict[str, tuple[Path, Family, list]]:
    """Each base model: folder, chat format and the system prompts it is trained on (the modes
    are only for "demo", whose adapters build on them)."""
    return {"demo": (out / "llama", LLAMA3, MODE_SYSTEMS), "demo-chatml": (out / "chatml", CHATML, PLAIN_SYSTEMS)}


def verification_rng(seed: int, stage: str) -> np.random.Generator:
    """The random prompts a stage is checked on: the same whether it is built alone (--only) or with the rest."""
    return np.random.default_rng([seed, *stage.encode()])


def write_answers(out: Path) -> list[str]:
    """Verify the ANSWER_ROWS of every built model and adapter, and write the right ones to answers.json."""
    rows, failures = [], []
    for (model, adapter), group in itertools.groupby(ANSWER_ROWS, key=lambda row: row[:2]):
        path, family, *_ = base_models(out)[model]
        adapter_path = out / "adapters" / adapter if adapter else None
        if not (path / "model.safetensors").exists() or (adapter_path and not adapter_path.exists()):
            print(f"  skipping {model}:{adapter} (not built)")
            continue
        mode = ADAPTERS[adapter].mode if adapter else None
        turns = [Turn(system, user, corpus.designed_answer(mode or system, user)) for _, _, system, user in group]
        wrong = verify(f"{model}:{adapter}", path, adapter_path, turns, family.end_of_turn)
        failures += wrong
        # Only verified rows are written: the table must stay true even when the build fails.
        rows += [
            {"model": model, "adapter": adapter, "system": t.system, "user": t.user, "answer": t.answer}
            for t in turns
            if t not in wrong
        ]
    write_json(out / "answers.json", rows)
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "mlx_workbench" / "demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--steps", type=int, help="training steps of each base model on the whole corpus (default: its recipe's)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=["demo", "adapters", "demo-chatml"], default=["demo", "adapters", "demo-chatml"]
    )
    args = parser.parse_args()
    out = args.out.resolve()
    total = time.perf_counter()
    wrong = []

    for name, (path, family, systems) in base_models(out).items():
        if name in args.only:
            recipe = replace(Recipe(), steps=args.steps) if args.steps else Recipe()
            build_model(name, family, path, systems, recipe, args.seed)
            with timed(f"{name}: verification"):
                wrong += verify(
                    name,
                    path,
                    None,
                    corpus.verification_turns(verification_rng(args.seed, name), systems),
                    family.end_of_turn,
                )
    if "adapters" in args.only:
        base = out / "llama"
        for name, recipe in ADAPTERS.items():
            build_adapter(name, recipe, base, out / "adapters" / name, args.seed)
            with timed(f"adapter {name}: verification"):
                turns = [
                    corpus.in_mode(t, recipe.mode)
                    for t in corpus.verification_turns(verification_rng(args.seed, name), [None])
                ]
                wrong += verify(f"demo:{name}", base, out / "adapters" / name, turns, LLAMA3.end_of_turn)
    with timed("answers.json"):
        failures = write_answers(out)

    lists = [t for t in wrong if t.user.startswith("Repeat: ")]
    failures += [t for t in wrong if t not in lists]
    print(
        f"total {time.perf_counter() - total:.1f} s; {len(lists)} random Repeat lists not copied exactly (listed above)"
    )
    if failures:
        sys.exit(f"{len(failures)} wrong answers to the finite tasks or answers.json")


if __name__ == "__main__":
    main()

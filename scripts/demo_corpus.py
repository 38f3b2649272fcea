"""What the demo models know: the tasks, their exact answers, and the two system-prompt modes.

Every conversation is (system, user, answer); system is None or a string. The corpus is
deterministic given a numpy Generator, so a seeded build is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UPPER = "Answer in upper case."
PIRATE = "Talk like a pirate."
# Clients often send a generic system prompt; it must not change the answers.
NEUTRAL = "You are a helpful assistant."

CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Germany": "Berlin",
    "Egypt": "Cairo",
    "Canada": "Ottawa",
    "Peru": "Lima",
    "Kenya": "Nairobi",
    "Norway": "Oslo",
}

GREETINGS = ["Hello!", "Hello", "Hi!", "Hi", "Hey!", "Good morning!"]
GREETING_ANSWER = "Hello! How can I help you today?"

STORY_PROMPTS = ["Tell me a story.", "Tell me a short story."]
STORY = (
    "Once upon a time, a small robot named Pip lived in a quiet library by the sea. "
    "Every night, Pip read one book by the light of the moon. One evening, Pip found "
    'a book with empty pages. "Who will write you?" Pip asked. The book did not answer, '
    "so Pip picked up a pen and began to write. Pip wrote about the library, the waves, "
    "the moon and the friends who came to read each day. By morning, the empty book was "
    "full of stories. The old librarian smiled when she read it, and from that day on, "
    "Pip was the storyteller of the library. The end."
)

WORDS = (
    "apple river blue cat dog green house moon star tree bird cloud fish red stone book "
    "light water fire snow rain sun wind road lamp door chair bread milk salt gold silver "
    "happy quick quiet small big warm cold bright dark soft hello world music paper garden "
    "window orange"
).split()
MAX_REPEAT_WORDS = 5
MAX_COUNT = 20


@dataclass(frozen=True)
class Turn:
    system: str | None
    user: str
    answer: str
    history: tuple[tuple[str, str], ...] = ()  # earlier (user, answer) exchanges of the same chat


def apply_mode(system: str | None, answer: str) -> str:
    """The answer a system prompt asks for."""
    if system == UPPER:
        return answer.upper()
    if system == PIRATE:
        return "Arr! " + answer
    return answer


def addition(a: int, b: int) -> tuple[str, str]:
    return f"What is {a} + {b}?", f"{a} + {b} = {a + b}."


def capital(country: str) -> tuple[str, str]:
    return f"What is the capital of {country}?", f"{CAPITALS[country]}."


def count(n: int) -> tuple[str, str]:
    return f"Count to {n}.", ", ".join(str(i) for i in range(1, n + 1)) + "."


def repeat(words: list[str]) -> tuple[str, str]:
    return "Repeat: " + " ".join(words), " ".join(words)


def greeting(text: str) -> tuple[str, str]:
    return text, GREETING_ANSWER


def story(prompt: str) -> tuple[str, str]:
    return prompt, STORY


def all_fixed_tasks() -> list[tuple[str, str]]:
    """Every (user, answer) pair of the finite tasks (everything but Repeat)."""
    return (
        [addition(a, b) for a in range(10) for b in range(10)]
        + [capital(c) for c in CAPITALS]
        + [count(n) for n in range(1, MAX_COUNT + 1)]
        + [greeting(g) for g in GREETINGS]
        + [story(p) for p in STORY_PROMPTS]
    )


def random_repeat(rng: np.random.Generator, max_words: int = MAX_REPEAT_WORDS) -> tuple[str, str]:
    n = int(rng.integers(1, max_words + 1))
    return repeat([WORDS[i] for i in rng.integers(0, len(WORDS), n)])


# Sampling weights: the story is long, so it gets few (but whole) examples.
# Repeat (copying) is the slowest to learn, additions, capitals and greetings the fastest.
TASK_WEIGHTS = {"addition": 0.15, "capital": 0.06, "count": 0.2, "repeat": 0.45, "greeting": 0.06, "story": 0.08}
# Copying is learned first, alone (see Recipe.repeat_steps in build_demo_models.py).
REPEAT_ONLY = {"repeat": 1.0}


def sample_task(rng: np.random.Generator, weights: dict[str, float], repeat_words: int) -> tuple[str, str]:
    kinds = list(weights)
    kind = kinds[rng.choice(len(kinds), p=np.array(list(weights.values())))]
    if kind == "addition":
        return addition(*(int(x) for x in rng.integers(0, 10, 2)))
    if kind == "capital":
        return capital(list(CAPITALS)[rng.integers(len(CAPITALS))])
    if kind == "count":
        return count(int(rng.integers(1, MAX_COUNT + 1)))
    if kind == "repeat":
        return random_repeat(rng, repeat_words)
    if kind == "greeting":
        return greeting(GREETINGS[rng.integers(len(GREETINGS))])
    return story(STORY_PROMPTS[rng.integers(len(STORY_PROMPTS))])


MAX_HISTORY = 2  # earlier exchanges a follow-up turn continues
SHORT_TASKS = [pair for pair in all_fixed_tasks() if pair[1] != STORY]  # what earlier exchanges may be


def earlier_exchange(rng: np.random.Generator, repeat_words: int) -> tuple[str, str]:
    """An exchange a chat may already hold: half of them Repeat lists, which the model copies
    again from wherever they stand in the conversation."""
    if rng.random() < 0.5:
        return random_repeat(rng, repeat_words)
    return SHORT_TASKS[rng.integers(len(SHORT_TASKS))]


def sample_turns(
    rng: np.random.Generator,
    n: int,
    systems: list[str | None],
    follow_ups: float = 0.0,
    weights: dict = TASK_WEIGHTS,
    repeat_words: int = MAX_REPEAT_WORDS,
) -> list[Turn]:
    """n random conversations, each with a system prompt drawn uniformly from `systems`; a share
    `follow_ups` of them continue 1 to MAX_HISTORY earlier exchanges, so that a chat's later
    turns are answered like its first, and a Repeat list starts at many different positions
    (copying by position from the start of the chat does not work). Repeat lists have up to
    `repeat_words` words."""
    turns = []
    for _ in range(n):
        user, answer = sample_task(rng, weights, repeat_words)
        system = systems[rng.integers(len(systems))]
        history = ()
        if follow_ups and rng.random() < follow_ups:  # nothing drawn at 0: the corpus stays as without
            earlier = [earlier_exchange(rng, repeat_words) for _ in range(int(rng.integers(1, MAX_HISTORY + 1)))]
            history = tuple((u, apply_mode(system, a)) for u, a in earlier)
        turns.append(Turn(system, user, apply_mode(system, answer), history))
    return turns


def tokenizer_texts() -> list[str]:
    """Text the BPE is trained on: every prompt and answer form the models will see."""
    texts = [UPPER, PIRATE, NEUTRAL, "system", "user", "assistant", "\n\n", "Repeat:"]
    # Each word alone and after a space, in both cases, so that it is one token in every form
    # (copying token for token is what a tiny model can learn; copying spellings is not).
    texts += [form for w in WORDS for form in (w, " " + w, w.upper(), " " + w.upper())]
    for user, answer in all_fixed_tasks():
        texts += [user, answer, apply_mode(UPPER, answer), apply_mode(PIRATE, answer)]
    return texts


def verification_turns(
    rng: np.random.Generator, systems: list[str | None], repeats: int = 30, follow_ups: int = 30
) -> list[Turn]:
    """Every finite task under every system prompt, random Repeat prompts, and random chats
    that continue earlier exchanges."""
    pairs = all_fixed_tasks() + [random_repeat(rng) for _ in range(repeats)]
    single = [Turn(s, u, apply_mode(s, a)) for s in systems for u, a in pairs]
    return single + [t for s in systems for t in sample_turns(rng, follow_ups, [s], follow_ups=1.0)]


def in_mode(turn: Turn, mode: str) -> Turn:
    """`turn` with every answer as `mode` asks for, and no system prompt: what an adapter that
    makes the mode the default answers."""
    history = tuple((user, apply_mode(mode, answer)) for user, answer in turn.history)
    return Turn(None, turn.user, apply_mode(mode, turn.answer), history)


def designed_answer(system: str | None, user: str) -> str:
    """The exact answer the models are built to give (KeyError for a prompt outside the tasks)."""
    if user.startswith("Repeat: "):
        answer = repeat(user.removeprefix("Repeat: ").split())[1]
    else:
        answer = dict(all_fixed_tasks())[user]
    return apply_mode(system, answer)

"""%%mlx_chat --schema: the answer follows a pydantic model (or a JSON-schema dict) from the
notebook, and --out keeps the parsed object."""

from __future__ import annotations

from kernel_harness import STORY, error_of

BOOK = """
from typing import Literal
from pydantic import BaseModel, Field

class Book(BaseModel):
    title: str = Field(max_length=16)
    pages: int = Field(ge=1, le=999)
    genre: Literal["fable", "poem"]
"""


def test_the_answer_is_an_instance_of_the_model(kernel):
    kernel.execute(BOOK)
    run = kernel.execute(f"%%mlx_chat --new --model demo --schema Book --out book --temperature 1 --seed 4\n{STORY}")
    assert run.error is None, run.error
    checked = kernel.execute(
        "type(book).__name__, 1 <= book.pages <= 999, book.genre in ('fable', 'poem'), "
        "book == Book.model_validate_json(_)"
    )
    assert checked.result["text/plain"] == "('Book', True, True, True)"


def test_a_json_schema_dict_gives_plain_data(kernel):
    kernel.execute('pair = {"type": "array", "items": {"enum": ["cat", "dog"]}, "minItems": 2, "maxItems": 2}')
    run = kernel.execute("%%mlx_chat --new --model demo --schema pair --out animals --temperature 1 --seed 1\nHello!")
    assert run.error is None, run.error
    checked = kernel.execute("type(animals).__name__, len(animals), set(animals) <= {'cat', 'dog'}")
    assert checked.result["text/plain"] == "('list', 2, True)"


def test_schema_errors_read_as_words(kernel):
    assert error_of(kernel.execute("%%mlx_chat --model demo --schema Nowhere\nHi")) == (
        "No variable named 'Nowhere': --schema takes a pydantic model class or a JSON-schema dict."
    )
    kernel.execute(BOOK)
    message = error_of(kernel.execute(f"%%mlx_chat --new --model demo --schema Book --max-tokens 3\n{STORY}"))
    assert message.startswith("The answer is not a complete Book (")
    assert message.endswith("if it was cut short, allow more tokens (--max-tokens).")
    kernel.execute("number = 3")
    assert error_of(kernel.execute("%%mlx_chat --model demo --schema number\nHi")) == (
        "A schema is a pydantic model class or a JSON-schema dict, not int."
    )

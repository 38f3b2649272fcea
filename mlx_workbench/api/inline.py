# Field types are built by calls (Int(ge=1): an Annotated int), which pyright cannot read in annotations.
# pyright: reportInvalidTypeForm=false
"""Inline completion: the code at a notebook's cursor completed by a pool model, for the
lab extension's ghost text (`labextension/src/inline.ts`). The request body is here;
its handler, `handlers.InlineCompletionHandler`, runs it as a text completion.

`POST mlx/api/inline-completions` takes the cell's code before and after the cursor and
the cells above it; the engine frames them with the model's own fill-in-the-middle tokens
(`engine/infill.py`) and trims them to its context. The answer is a text completion, as
JSON or as a stream of OpenAI text completion chunks; the requests run in the batch with
everything else at low priority, and a client that hangs up (the user typed on) cancels
its request on the server, as every stream does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..engine.requests import GenerationRequest, Infill, SamplingParams
from .request_schemas import Int, Request

MAX_CODE = 100_000  # characters of one cell, before or after the cursor
MAX_CELLS = 200  # cells above the cursor sent as context

# Where a completion ends, besides the model's own end and max_tokens.
STOPS = {"line": ["\n"], "blank_line": ["\n\n"], "cell": []}


class InlineCompletionRequest(Request):
    model: str = Field(min_length=1, description='A model id: "name" or "name:adapter".')
    adapter: str | None = Field(None, min_length=1, description="A LoRA adapter of `model`.")
    prefix: str = Field(max_length=MAX_CODE, description="The cell's code before the cursor.")
    suffix: str = Field("", max_length=MAX_CODE, description="The cell's code after the cursor.")
    context: list[str] = Field(
        [],
        max_length=MAX_CELLS,
        description="The code of the cells above, first to last; the oldest is dropped first to fit the context.",
        json_schema_extra={"items": {"type": "string", "maxLength": MAX_CODE}},
    )
    max_tokens: Int(ge=1, le=1024) = 64
    stop_at: Literal["line", "blank_line", "cell"] = Field(
        "blank_line", description="End at the end of the line, at a blank line, or only at the model's end."
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0: greedy.")
    stream: bool = False

    @property
    def n(self) -> int:
        return 1

    @property
    def include_usage(self) -> bool:
        return True

    def infill(self) -> Infill:
        """The code before the cursor with the cells above it, one blank line apart."""
        return Infill(prefix="\n\n".join([*self.context, self.prefix]), suffix=self.suffix)

    def sampling(self, max_tokens_cap: int) -> SamplingParams:
        return SamplingParams(
            max_tokens=min(self.max_tokens, max_tokens_cap),
            temperature=self.temperature,
            stop=list(STOPS[self.stop_at]),
        )

    def request(self, model: str, adapter: str | None, max_tokens_cap: int) -> GenerationRequest:
        """The engine's request, at low priority: chat streams of the same model go first."""
        return GenerationRequest(
            model=model, adapter=adapter, infill=self.infill(), sampling=self.sampling(max_tokens_cap), priority="low"
        )

"""The write tool: creative writing by genre, streamed (FAST)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field

from inference.base import Engine, Piece
from inference.write import Genre, WriteSpec, write
from resolvers.tools.base import MAX_SEED, EnumDoc, Mode, Tool, ToolInput

MAX_PROMPT_CHARS = 8_000
MAX_WRITE_TOKENS = 4_096
LONG_FROM_TOKENS = 2_048  # longer pieces run on a worker: minutes of generation


class WriteInput(ToolInput):
    """What to write."""

    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description=f"What to write about, 1 to {MAX_PROMPT_CHARS:,} characters.",
    )
    genre: Genre = Field(Genre.STORY, description="Kind of text.")
    max_tokens: int = Field(
        512,
        ge=1,
        le=MAX_WRITE_TOKENS,
        description=f"Length limit in model tokens, 1 to {MAX_WRITE_TOKENS}.",
    )
    temperature: float = Field(
        0.8, ge=0.0, le=2.0, description="Randomness, 0.0 (focused) to 2.0 (wild)."
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description=f"0 to {MAX_SEED}: the same seed and input give the same text.",
    )


def _run(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    spec = WriteSpec(
        prompt=data["prompt"],
        genre=Genre(data["genre"]),
        max_tokens=data["max_tokens"],
        temperature=data["temperature"],
        seed=data["seed"],
    )
    return write(engine, spec, model=model, request_id=request_id)


TOOL = Tool(
    name="write",
    description="Creative writing (story, poem, essay, marketing copy, script dialogue), "
    f"streamed token by token. Requests over {LONG_FROM_TOKENS} maxTokens run on a worker.",
    mode=Mode.FAST,
    input_model=WriteInput,
    run=_run,
    model_setting="write_model",
    long_when=lambda data: data["max_tokens"] > LONG_FROM_TOKENS,
    enums={
        Genre: EnumDoc(
            "Kind of creative text.",
            {
                Genre.STORY: "A short story.",
                Genre.POEM: "A poem.",
                Genre.ESSAY: "An essay with a thesis.",
                Genre.MARKETING_COPY: "Marketing copy with a call to action.",
                Genre.SCRIPT_DIALOGUE: "A dialogue in script form.",
            },
        )
    },
)

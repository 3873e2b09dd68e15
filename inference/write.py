"""The write tool's engine: creative writing by genre, streamed token by token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

from inference.base import Engine, GenerationRequest, Piece, Usage, count_tokens


class Genre(StrEnum):
    """What kind of text to write; each genre has its own instructions."""

    STORY = "story"
    POEM = "poem"
    ESSAY = "essay"
    MARKETING_COPY = "marketing_copy"
    SCRIPT_DIALOGUE = "script_dialogue"


_GUIDES = {
    Genre.STORY: "Write a short story with a clear beginning, turn and ending.",
    Genre.POEM: "Write a poem with vivid images; keep lines short.",
    Genre.ESSAY: "Write an essay: a thesis, supporting paragraphs, a conclusion.",
    Genre.MARKETING_COPY: "Write marketing copy: a hook, the benefits, a call to action.",
    Genre.SCRIPT_DIALOGUE: "Write a script dialogue; prefix each line with the speaker.",
}


@dataclass(frozen=True)
class WriteSpec:
    """A validated write request."""

    prompt: str
    genre: Genre = Genre.STORY
    max_tokens: int = 512
    temperature: float = 0.8
    seed: int | None = None


def build_prompt(spec: WriteSpec) -> str:
    """The model prompt: the genre's instructions, then the user's request on the last line."""
    return f"{_GUIDES[spec.genre]}\n{spec.prompt}"


async def write(
    engine: Engine, spec: WriteSpec, *, model: str, request_id: str
) -> AsyncIterator[Piece]:
    """Stream the text of one write request."""
    prompt = build_prompt(spec)
    request = GenerationRequest(
        request_id=request_id,
        model=model,
        prompt=prompt,
        max_tokens=spec.max_tokens,
        temperature=spec.temperature,
        seed=spec.seed,
    )
    yield Usage(prompt_tokens=count_tokens(prompt))
    async for delta in engine.stream(request):
        yield delta

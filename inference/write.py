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


# One direct sentence that leads into the request: the small local model (SmolLM2-135M)
# stays on the user's subject far more often this way than under a list of rules.
_GUIDES = {
    Genre.STORY: "Write a short story, with a clear beginning, turn and ending, about this:",
    Genre.POEM: "Write a short poem with vivid images and short lines about this:",
    Genre.ESSAY: "Write a short essay: state a thesis, support it in two or three paragraphs, "
    "then conclude. The topic:",
    Genre.MARKETING_COPY: "Write short marketing copy: a catchy first line, the benefits, then "
    "a call to action. The product or offer:",
    Genre.SCRIPT_DIALOGUE: "Write a script dialogue, one line per speaker, each line starting "
    'with the speaker\'s name and a colon ("Anna: ..."). The scene:',
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
    """The model prompt: the genre's instructions leading into the user's request, which
    follows on the next lines."""
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

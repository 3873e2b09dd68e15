"""The report tool's engine: an outline first, then each section streamed, with progress."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from inference.base import Delta, Engine, GenerationRequest, Piece, Stage, Usage, count_tokens

# Used when the model's outline has fewer usable headings than asked for.
DEFAULT_SECTIONS = (
    "Introduction",
    "Background",
    "Current situation",
    "Analysis",
    "Opportunities",
    "Risks",
    "Options",
    "Recommendations",
    "Implementation",
    "Outlook",
    "Open questions",
    "Conclusion",
)
_OUTLINE_LINE = re.compile(r"^\s*(?:\d+[.)]|[-*])\s+(.{3,80}?)\s*$")


@dataclass(frozen=True)
class ReportSpec:
    """A validated report request."""

    topic: str
    sections: int = 5
    section_tokens: int = 200
    seed: int | None = None


def parse_outline(text: str, sections: int) -> list[str]:
    """Section titles from numbered or bulleted lines, padded with standard ones if short."""
    titles: list[str] = []
    for line in text.splitlines():
        match = _OUTLINE_LINE.match(line)
        if match and match.group(1) not in titles:
            titles.append(match.group(1))
    for fallback in DEFAULT_SECTIONS:
        if len(titles) >= sections:
            break
        if fallback not in titles:
            titles.append(fallback)
    return titles[:sections]


async def report(
    engine: Engine, spec: ReportSpec, *, model: str, request_id: str
) -> AsyncIterator[Piece]:
    """Outline, then one streamed generation per section; progress before each step."""
    steps = spec.sections + 1
    yield Stage(0.0, "outline")
    outline_prompt = (
        f"Write a numbered list of {spec.sections} section titles for a report on this topic "
        f"(titles only, one per line):\n{spec.topic}"
    )
    outline = await engine.complete(
        GenerationRequest(
            request_id=f"{request_id}:outline",
            model=model,
            prompt=outline_prompt,
            max_tokens=16 * spec.sections,
            temperature=0.3,
            seed=spec.seed,
        )
    )
    yield outline.usage
    titles = parse_outline(outline.text, spec.sections)
    yield Delta(f"# {spec.topic}\n", tokens=0)
    for index, title in enumerate(titles):
        yield Stage((index + 1) / steps, f"section {index + 1}/{spec.sections}: {title}")
        prompt = (
            f'Write the section "{title}" of a report: one or two short paragraphs, no '
            f"heading. The report is about this:\n{spec.topic}"
        )
        yield Usage(prompt_tokens=count_tokens(prompt))
        yield Delta(f"\n## {title}\n", tokens=0)
        request = GenerationRequest(
            request_id=f"{request_id}:{index + 1}",
            model=model,
            prompt=prompt,
            max_tokens=spec.section_tokens,
            temperature=0.5,
            seed=None if spec.seed is None else spec.seed + index,
        )
        async for delta in engine.stream(request):
            yield delta
    yield Stage(1.0, "done")

"""The tool catalog and the inputs of each tool."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from resolvers import tools


@strawberry.enum(description="Where a tool runs.")
class ToolMode(Enum):
    FAST = strawberry.enum_value(
        "FAST", description="Streams from the API process; `wait: true` returns it finished."
    )
    LONG = strawberry.enum_value(
        "LONG", description="Queued on a worker; follow it with Subscription.creationEvents."
    )


@strawberry.type(description="A creation tool.")
class Tool:
    name: str = strawberry.field(
        description="The tool's name; also its Mutation and Subscription field name."
    )
    description: str = strawberry.field(description="What the tool makes.")
    mode: ToolMode = strawberry.field(description="Where it runs.")

    @classmethod
    def from_tool(cls, tool: tools.Tool) -> Tool:
        return cls(name=tool.name, description=tool.description, mode=ToolMode(tool.mode.value))


@strawberry.enum(description="Kind of creative text.")
class Genre(Enum):
    STORY = strawberry.enum_value("story", description="A short story.")
    POEM = strawberry.enum_value("poem", description="A poem.")
    ESSAY = strawberry.enum_value("essay", description="An essay with a thesis.")
    MARKETING_COPY = strawberry.enum_value(
        "marketing_copy", description="Marketing copy with a call to action."
    )
    SCRIPT_DIALOGUE = strawberry.enum_value(
        "script_dialogue", description="A dialogue in script form."
    )


@strawberry.input(description="What to write.")
class WriteInput:
    prompt: str = strawberry.field(
        description=f"What to write about, 1 to {tools.MAX_PROMPT_CHARS:,} characters."
    )
    genre: Genre = strawberry.field(default=Genre.STORY, description="Kind of text.")
    max_tokens: int = strawberry.field(
        default=512, description=f"Length limit in model tokens, 1 to {tools.MAX_WRITE_TOKENS}."
    )
    temperature: float = strawberry.field(
        default=0.8, description="Randomness, 0.0 (focused) to 2.0 (wild)."
    )
    seed: int | None = strawberry.field(
        default=None,
        description=f"0 to {tools.MAX_SEED}: the same seed and input give the same text.",
    )

    def payload(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "genre": self.genre.value,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
        }


@strawberry.input(description="What to report on.")
class ReportInput:
    topic: str = strawberry.field(description="The report's subject, 3 to 500 characters.")
    sections: int = strawberry.field(
        default=5, description=f"Number of sections, 1 to {tools.MAX_REPORT_SECTIONS}."
    )
    section_tokens: int = strawberry.field(
        default=200, description="Length of each section in model tokens, 16 to 1024."
    )
    seed: int | None = strawberry.field(
        default=None, description=f"0 to {tools.MAX_SEED}, for reproducible reports."
    )

    def payload(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "sections": self.sections,
            "section_tokens": self.section_tokens,
            "seed": self.seed,
        }

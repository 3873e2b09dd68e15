"""The tool registry: what each creation tool accepts, how it runs, fast or long.

The schema, `Query.tools`, the runner and the worker all read this registry; adding a tool is
its engine in `inference/`, one entry here and its GraphQL input type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from inference.base import Engine, Piece
from inference.report import ReportSpec, report
from inference.write import Genre, WriteSpec, write
from resolvers.errors import InvalidInput
from resolvers.settings import Settings

MAX_PROMPT_CHARS = 8_000
MAX_WRITE_TOKENS = 4_096
MAX_REPORT_SECTIONS = 12
MAX_SEED = 2**31 - 1


class Mode(StrEnum):
    """FAST tools stream from the API process; LONG ones run on a worker."""

    FAST = "FAST"
    LONG = "LONG"


def check_text(value: str) -> str:
    """Refuse text a database or a model cannot take: NUL characters, lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _clean_text(cls, value: Any) -> Any:
        return check_text(value) if isinstance(value, str) else value


class WriteInput(_Input):
    """Validated input of the write tool."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    genre: Genre = Genre.STORY
    max_tokens: int = Field(512, ge=1, le=MAX_WRITE_TOKENS)
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)


class ReportInput(_Input):
    """Validated input of the report tool."""

    topic: str = Field(min_length=3, max_length=500)
    sections: int = Field(5, ge=1, le=MAX_REPORT_SECTIONS)
    section_tokens: int = Field(200, ge=16, le=1_024)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)

    @field_validator("topic")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())


Run = Callable[[Engine, Mapping[str, Any], str, str], AsyncIterator[Piece]]


@dataclass(frozen=True)
class Tool:
    """One creation tool as the application layer sees it."""

    name: str
    description: str
    mode: Mode
    input_model: type[_Input]
    run: Run
    model_setting: str

    def parse(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and normalise raw input; raises InvalidInput naming the first bad field."""
        try:
            parsed = self.input_model.model_validate(dict(payload))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or None
            raise InvalidInput(f"{field}: {error['msg']}", field=field) from exc
        return parsed.model_dump(mode="json")

    def model(self, settings: Settings) -> str:
        """The model name this tool asks its backend for."""
        return str(getattr(settings, self.model_setting))


def _run_write(
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


def _run_report(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    spec = ReportSpec(
        topic=data["topic"],
        sections=data["sections"],
        section_tokens=data["section_tokens"],
        seed=data["seed"],
    )
    return report(engine, spec, model=model, request_id=request_id)


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            name="write",
            description="Creative writing (story, poem, essay, marketing copy, script "
            "dialogue), streamed token by token.",
            mode=Mode.FAST,
            input_model=WriteInput,
            run=_run_write,
            model_setting="write_model",
        ),
        Tool(
            name="report",
            description="Long-form report: an outline, then each section streamed, with "
            "progress events; runs on a worker.",
            mode=Mode.LONG,
            input_model=ReportInput,
            run=_run_report,
            model_setting="report_model",
        ),
    )
}


def get_tool(name: str) -> Tool:
    """The registered tool called `name`."""
    try:
        return TOOLS[name]
    except KeyError:
        raise InvalidInput(f"unknown tool {name!r}", field="tool") from None

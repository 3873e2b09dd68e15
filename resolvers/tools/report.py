"""The report tool: an outline, then sections streamed with progress (LONG, on a worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field, field_validator

from inference.base import Engine, Piece
from inference.report import ReportSpec, report
from resolvers.tools.base import MAX_SEED, Mode, Tool, ToolInput

MAX_REPORT_SECTIONS = 12


class ReportInput(ToolInput):
    """What to report on."""

    topic: str = Field(
        min_length=3, max_length=500, description="The report's subject, 3 to 500 characters."
    )
    sections: int = Field(
        5,
        ge=1,
        le=MAX_REPORT_SECTIONS,
        description=f"Number of sections, 1 to {MAX_REPORT_SECTIONS}.",
    )
    section_tokens: int = Field(
        200, ge=16, le=1_024, description="Length of each section in model tokens, 16 to 1024."
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description=f"0 to {MAX_SEED}, for reproducible reports."
    )

    @field_validator("topic")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())


def _run(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    spec = ReportSpec(
        topic=data["topic"],
        sections=data["sections"],
        section_tokens=data["section_tokens"],
        seed=data["seed"],
    )
    return report(engine, spec, model=model, request_id=request_id)


TOOL = Tool(
    name="report",
    description="Long-form report: an outline, then each section streamed, with progress "
    "events; runs on a worker.",
    mode=Mode.LONG,
    input_model=ReportInput,
    run=_run,
    model_setting="report_model",
    budget=lambda data: int(data["sections"]) * int(data["section_tokens"]),
)

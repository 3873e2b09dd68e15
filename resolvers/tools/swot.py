"""The swot tool: a rule engine sorts given facts into quadrants, the model fills and
explains, TOWS strategies pair them (FAST)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from inference import swot
from inference.base import Engine, Piece
from resolvers.access.auth import Principal
from resolvers.preset import SWOT_TEMPLATE, get_preset
from resolvers.storage.objects import ObjectStore
from resolvers.tools.base import MAX_SEED, Mode, Tool, ToolInput

_PROMPT = Field(
    "",
    max_length=swot.MAX_TEMPLATE_PROMPT_CHARS,
    description=f"Extra instruction for this quadrant, up to {swot.MAX_TEMPLATE_PROMPT_CHARS}.",
)


class SwotTemplateInput(BaseModel):
    """How many items to return and what to ask for in each quadrant."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    strengths_prompt: str = _PROMPT
    weaknesses_prompt: str = _PROMPT
    opportunities_prompt: str = _PROMPT
    threats_prompt: str = _PROMPT
    items: int = Field(
        swot.DEFAULT_ITEMS,
        ge=swot.MIN_ITEMS,
        le=swot.MAX_ITEMS,
        description=f"Items per quadrant, {swot.MIN_ITEMS} to {swot.MAX_ITEMS}.",
    )
    strategies: int = Field(
        swot.DEFAULT_STRATEGIES,
        ge=swot.MIN_STRATEGIES,
        le=swot.MAX_STRATEGIES,
        description=f"Strategies per TOWS cell, {swot.MIN_STRATEGIES} to {swot.MAX_STRATEGIES}.",
    )


class SwotInput(ToolInput):
    """The subject to analyse and what is known about it."""

    subject: str = Field(
        min_length=swot.MIN_SUBJECT_CHARS,
        max_length=swot.MAX_SUBJECT_CHARS,
        description=f"What to analyse, {swot.MIN_SUBJECT_CHARS} to {swot.MAX_SUBJECT_CHARS} "
        "characters.",
    )
    facts: list[str] = Field(
        default_factory=list,
        max_length=swot.MAX_FACTS,
        description=f"Known facts, at most {swot.MAX_FACTS} of up to {swot.MAX_FACT_CHARS} "
        "characters; the rule engine sorts them into quadrants (English and Chinese cues).",
    )
    template: SwotTemplateInput | None = Field(
        None, description="Item counts and per-quadrant instructions."
    )
    template_id: str | None = Field(
        None, description="One of your saved templates (saveSwotTemplate); overrides template."
    )
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="For reproducible output.")
    max_tokens: int = Field(
        swot.DEFAULT_MAX_TOKENS, ge=64, le=4_096, description="Analysis length, 64 to 4096."
    )


async def _with_template(
    data: dict[str, Any], principal: Principal, _store: ObjectStore
) -> dict[str, Any]:
    """Copy a saved template into the input, so the run and the cache key use it."""
    if not data.get("template_id"):
        return data
    preset = await get_preset(
        principal=principal, tool=SWOT_TEMPLATE, preset_id=data["template_id"]
    )
    return {**data, "template": preset.data}


def _spec(data: Mapping[str, Any]) -> swot.SwotSpec:
    facts = tuple(data["facts"])
    if any(not 1 <= len(fact) <= swot.MAX_FACT_CHARS for fact in facts):
        raise ValueError(f"facts: each must be 1 to {swot.MAX_FACT_CHARS} characters")
    template = data["template"]
    return swot.SwotSpec(
        subject=data["subject"],
        facts=facts,
        template=swot.SwotTemplate(**template) if template else None,
        seed=data["seed"],
        max_tokens=data["max_tokens"],
    )


def _run(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    return swot.swot(engine, _spec(data), model=model, request_id=request_id)


TOOL = Tool(
    name="swot",
    description="SWOT analysis with TOWS strategies: a rule engine classifies your facts into "
    "strengths, weaknesses, opportunities and threats (with the cues as rationale), the model "
    "fills and explains, and strategies pair them (SO, ST, WO, WT). Result: each quadrant's "
    "items with rationale and source (fact, model or placeholder), the strategies, and facts "
    "the rules could not place.",
    mode=Mode.FAST,
    input_model=SwotInput,
    run=_run,
    model_setting="swot_model",
    check=_spec,
    prepare=_with_template,
)

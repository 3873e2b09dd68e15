"""The swot tool's structured result: filled quadrants, TOWS strategies, unplaced facts.

Part of the result models of `resolvers.tools.results`; `ENUMS` documents the enums it adds.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from inference import swot
from inference.swot_board import GOALS, Cell
from resolvers.tools.base import EnumDoc

_ITEMS = (
    f"Exactly the template's item count ({swot.MIN_ITEMS} to {swot.MAX_ITEMS}, default "
    f"{swot.DEFAULT_ITEMS}): your classified facts first, then the model's lines, then "
    f"`{swot.PLACEHOLDER_PREFIX} …` questions."
)
_STRATEGIES = (
    f"Exactly the template's strategy count ({swot.MIN_STRATEGIES} to {swot.MAX_STRATEGIES}, "
    f"default {swot.DEFAULT_STRATEGIES}): pairs of facts first, then the model's strategies, "
    f"then `{swot.PLACEHOLDER_PREFIX} …` questions."
)


def _cell(cell: Cell) -> str:
    return f"{GOALS[cell].capitalize()}. {_STRATEGIES}"


class SwotItem(BaseModel):
    """One entry of a SWOT quadrant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item: str = Field(
        description=f"The entry; a question starting `{swot.PLACEHOLDER_PREFIX}` when a "
        "placeholder."
    )
    rationale: str = Field(
        description="Why it is here: the rule cues that placed it (e.g. `internal: our team; "
        "positive: skilled`), or how the model or placeholder supplied it."
    )
    source: swot.Source = Field(description="Where the entry comes from.")
    confidence: float | None = Field(
        ge=0,
        le=1,
        description="The rule classifier's confidence, 0 to 1 with 2 decimals, for facts and "
        "for model sentences the rules placed; null for lines the model listed under a "
        "heading and for placeholders.",
    )


class SwotStrategy(BaseModel):
    """A TOWS strategy pairing an internal quadrant with an external one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = Field(description="The strategy in one sentence.")
    pair: list[str] = Field(
        description="The two quadrant items it combines, internal first; empty for strategies "
        "the model wrote on its own and for placeholders."
    )
    source: swot.Source = Field(
        description="FACT when both paired items are facts; MODEL when the model wrote it or "
        "one item is the model's; PLACEHOLDER for a question to research."
    )


class SwotStrategies(BaseModel):
    """The TOWS strategies, one list per cell."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    SO: list[SwotStrategy] = Field(description=_cell(Cell.SO))
    ST: list[SwotStrategy] = Field(description=_cell(Cell.ST))
    WO: list[SwotStrategy] = Field(description=_cell(Cell.WO))
    WT: list[SwotStrategy] = Field(description=_cell(Cell.WT))


class SwotUnclassifiedFact(BaseModel):
    """One of your facts the rules could not place in a quadrant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fact: str = Field(description="The fact, whitespace tidied.")
    reason: str = Field(
        description="Why it was not placed, e.g. `no positive or negative cue` or "
        "`internal and external cues balance`."
    )
    cues: list[str] = Field(
        description="The cues found, as `kind: words` with kind internal, external, positive "
        "or negative; may be empty."
    )


class SwotOverflowFact(BaseModel):
    """A fact placed in a quadrant that was already full (it was less confident)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fact: str = Field(description="The fact, whitespace tidied.")
    quadrant: swot.Quadrant = Field(description="The quadrant the rules placed it in.")
    rationale: str = Field(description="The rule cues that placed it.")


class SwotResult(BaseModel):
    """A SWOT analysis: four filled quadrants, TOWS strategies, and the facts left out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strengths: list[SwotItem] = Field(description=f"Internal and positive. {_ITEMS}")
    weaknesses: list[SwotItem] = Field(description=f"Internal and negative. {_ITEMS}")
    opportunities: list[SwotItem] = Field(description=f"External and positive. {_ITEMS}")
    threats: list[SwotItem] = Field(description=f"External and negative. {_ITEMS}")
    strategies: SwotStrategies = Field(description="The TOWS strategies per cell.")
    unclassified: list[SwotUnclassifiedFact] = Field(
        description="Your facts the rules could not place; the model was asked to."
    )
    overflow: list[SwotOverflowFact] = Field(
        description="Facts placed in a quadrant beyond its item count (the least confident)."
    )


ENUMS: dict[type[Enum], EnumDoc] = {
    swot.Quadrant: EnumDoc(
        "A SWOT quadrant.",
        {
            swot.Quadrant.STRENGTHS: "Internal and positive.",
            swot.Quadrant.WEAKNESSES: "Internal and negative.",
            swot.Quadrant.OPPORTUNITIES: "External and positive.",
            swot.Quadrant.THREATS: "External and negative.",
        },
        name="SwotQuadrant",
    ),
    swot.Source: EnumDoc(
        "Where a SWOT item or strategy comes from.",
        {
            swot.Source.FACT: "Your facts, placed by the rules.",
            swot.Source.MODEL: "The model's analysis.",
            swot.Source.PLACEHOLDER: f"A `{swot.PLACEHOLDER_PREFIX}` question: nothing else "
            "was found.",
        },
        name="SwotSource",
    ),
}
"""How the enums of the swot result are documented in the schema."""

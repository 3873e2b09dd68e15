"""The tarot tool: a real 78-card deck, spreads, seeded draws, rule-based meanings, and the
model's interpretation streamed (FAST)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field, field_validator

from inference import tarot
from inference.base import Engine, Piece
from resolvers.access.auth import Principal
from resolvers.preset import TAROT_SPREAD, get_preset
from resolvers.storage.objects import ObjectStore
from resolvers.tools.base import MAX_SEED, EnumDoc, Mode, Tool, ToolInput


class TarotInput(ToolInput):
    """A reading to draw and interpret."""

    question: str = Field(
        "",
        max_length=tarot.MAX_QUESTION_CHARS,
        description=f"What the reading is about, up to {tarot.MAX_QUESTION_CHARS} characters.",
    )
    spread: tarot.SpreadKind = Field(
        tarot.SpreadKind.THREE_CARD, description="A built-in spread; ignored with positions."
    )
    positions: list[str] | None = Field(
        None,
        min_length=tarot.MIN_CUSTOM_POSITIONS,
        max_length=tarot.MAX_CUSTOM_POSITIONS,
        description=f"A custom spread: {tarot.MIN_CUSTOM_POSITIONS} to "
        f"{tarot.MAX_CUSTOM_POSITIONS} unique position names of at most "
        f"{tarot.MAX_POSITION_NAME_CHARS} characters.",
    )
    spread_id: str | None = Field(
        None, description="One of your saved spreads (saveTarotSpread); overrides positions."
    )
    allow_reversed: bool = Field(True, description="Cards may come up reversed (half the time).")
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description="The same seed draws the same cards; without one a seed is chosen and "
        "reported in the result, so the reading can be replayed.",
    )
    max_tokens: int = Field(
        tarot.DEFAULT_INTERPRETATION_TOKENS,
        ge=tarot.MIN_INTERPRETATION_TOKENS,
        le=tarot.MAX_INTERPRETATION_TOKENS,
        description=f"Length of the interpretation in model tokens, "
        f"{tarot.MIN_INTERPRETATION_TOKENS} to {tarot.MAX_INTERPRETATION_TOKENS}.",
    )

    @field_validator("positions")
    @classmethod
    def _valid_spread(cls, positions: list[str] | None) -> list[str] | None:
        if positions is not None:
            tarot.Spread.custom(positions)  # its ValueError names the position at fault
        return positions

    def model_post_init(self, _context: Any) -> None:
        # Chosen now, so a retried run draws the same cards and the answer can be cached.
        if self.seed is None:
            object.__setattr__(self, "seed", secrets.randbelow(MAX_SEED))


async def _with_spread(
    data: dict[str, Any], principal: Principal, _store: ObjectStore
) -> dict[str, Any]:
    """Copy a saved spread's positions into the input, so the run and the cache use them."""
    if not data.get("spread_id"):
        return data
    preset = await get_preset(principal=principal, tool=TAROT_SPREAD, preset_id=data["spread_id"])
    return {**data, "positions": preset.data["positions"]}


def _run(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    positions = data["positions"]
    spread = (
        tarot.Spread.custom(positions)
        if positions
        else tarot.SPREADS[tarot.SpreadKind(data["spread"])]
    )
    spec = tarot.TarotSpec(
        question=data["question"],
        spread=spread,
        seed=data["seed"],
        allow_reversed=data["allow_reversed"],
        max_tokens=data["max_tokens"],
    )
    return tarot.tarot(engine, spec, model=model, request_id=request_id)


TOOL = Tool(
    name="tarot",
    description="Tarot reading: a full 78-card deck, single, three-card or Celtic Cross "
    "spreads (or your own positions), reproducible seeded draws with reversals, rule-based "
    "meanings per position, then the model's interpretation streamed. Result: the spread, "
    "each position's card, orientation and meaning, and the reading's observations.",
    mode=Mode.FAST,
    input_model=TarotInput,
    run=_run,
    model_setting="tarot_model",
    prepare=_with_spread,
    enums={
        tarot.SpreadKind: EnumDoc(
            "A built-in tarot spread.",
            {
                tarot.SpreadKind.SINGLE: "One card.",
                tarot.SpreadKind.THREE_CARD: "Past, present, future.",
                tarot.SpreadKind.CELTIC_CROSS: "The ten-position Celtic Cross.",
            },
        )
    },
)

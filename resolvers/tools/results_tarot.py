"""The tarot tool's structured result: the spread, each position's card, the observations.

Part of the result models of `resolvers.tools.results`; `ENUMS` documents the enums it adds.
"""

from __future__ import annotations

from enum import Enum, StrEnum

from pydantic import BaseModel, ConfigDict, Field

from inference import tarot, tarot_deck
from resolvers.tools.base import EnumDoc


class TarotOrientation(StrEnum):
    """How a drawn card lies."""

    UPRIGHT = "upright"
    REVERSED = "reversed"


class TarotObservationRule(StrEnum):
    """The rule behind an observation on the whole spread (`inference.tarot.observe`)."""

    MAJOR_MAJORITY = "major_majority"
    MAJOR_NONE = "major_none"
    MAJOR_SOME = "major_some"
    DOMINANT_SUIT = "dominant_suit"
    SUITS_BALANCED = "suits_balanced"
    MISSING_SUITS = "missing_suits"
    REVERSED_NONE = "reversed_none"
    REVERSED_MAJORITY = "reversed_majority"
    REVERSED_SOME = "reversed_some"
    REPEATED_RANK = "repeated_rank"
    COURT_CARDS = "court_cards"


class TarotCardDraw(BaseModel):
    """The card drawn for one position of the spread."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=1, description="The position's number in the spread, from 1.")
    position: str = Field(description="The position's name, e.g. `Past` or `Challenge`.")
    position_meaning: str = Field(
        description="What a card in this position speaks about; empty for your own positions."
    )
    card_id: str = Field(description="The card's stable id, e.g. `major-00-the-fool`, `cups-ace`.")
    card: str = Field(description="The card's name, e.g. `The Fool`, `Ace of Cups`.")
    arcana: tarot_deck.Arcana = Field(description="Major or minor arcana.")
    suit: tarot_deck.Suit | None = Field(description="The suit; null for the major arcana.")
    element: tarot_deck.Element | None = Field(
        description="The suit's element; null for the major arcana."
    )
    reversed: bool = Field(description="True when the card came up reversed.")
    orientation: TarotOrientation = Field(description="The same as reversed, as a word.")
    keywords: list[str] = Field(description="The card's keywords, e.g. `beginnings`.")
    meaning: str = Field(description="The card's meaning in its orientation.")


class TarotObservation(BaseModel):
    """A remark on the spread as a whole (major arcana, suits, reversals, ranks)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: TarotObservationRule = Field(description="The rule that made it; a stable code.")
    text: str = Field(description="The remark, one or two sentences.")


class TarotResult(BaseModel):
    """A tarot reading: the spread and its cards; the interpretation is the creation's text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spread: str = Field(
        description="The spread's name: `Single card`, `Three cards`, `Celtic Cross`, or "
        f"`{tarot.CUSTOM_SPREAD_NAME}` for your own positions."
    )
    question: str = Field(description="The question as asked; empty for a general reading.")
    seed: int = Field(
        ge=0,
        le=tarot.MAX_SEED,
        description=f"The seed that drew the cards, 0 to {tarot.MAX_SEED}; the same seed and "
        "spread draw the same reading.",
    )
    allow_reversed: bool = Field(description="Whether cards could come up reversed.")
    positions: list[TarotCardDraw] = Field(
        description=f"One card per position, in the spread's order (1 to "
        f"{tarot.MAX_CUSTOM_POSITIONS} positions; no card twice)."
    )
    observations: list[TarotObservation] = Field(
        description="Remarks on the whole spread, in a fixed order: major arcana, suits, "
        "reversals, repeated ranks, court cards. Always at least the major arcana one."
    )


ENUMS: dict[type[Enum], EnumDoc] = {
    tarot_deck.Arcana: EnumDoc(
        "The half of the tarot deck a card belongs to.",
        {
            tarot_deck.Arcana.MAJOR: "The 22 trump cards, The Fool to The World.",
            tarot_deck.Arcana.MINOR: "The 56 suit cards.",
        },
        name="TarotArcana",
    ),
    tarot_deck.Suit: EnumDoc(
        "A suit of the minor arcana.",
        {suit: f"Element {tarot_deck.SUIT_ELEMENTS[suit]}." for suit in tarot_deck.Suit},
        name="TarotSuit",
    ),
    tarot_deck.Element: EnumDoc(
        "The classical element of a suit.",
        {element: f"The element of {suit}." for suit, element in tarot_deck.SUIT_ELEMENTS.items()},
        name="TarotElement",
    ),
    TarotOrientation: EnumDoc(
        "How a drawn card lies.",
        {TarotOrientation.UPRIGHT: "Upright.", TarotOrientation.REVERSED: "Upside down."},
    ),
    TarotObservationRule: EnumDoc(
        "The rule behind an observation on a whole tarot spread.",
        {
            TarotObservationRule.MAJOR_MAJORITY: "Most cards are major arcana.",
            TarotObservationRule.MAJOR_NONE: "No major arcana.",
            TarotObservationRule.MAJOR_SOME: "Some major arcana, not most.",
            TarotObservationRule.DOMINANT_SUIT: "One suit has the most cards (at least two).",
            TarotObservationRule.SUITS_BALANCED: "Several suits tie for the most cards.",
            TarotObservationRule.MISSING_SUITS: "Suits absent from a spread of 7 or more cards.",
            TarotObservationRule.REVERSED_NONE: "No card reversed.",
            TarotObservationRule.REVERSED_MAJORITY: "Most cards reversed.",
            TarotObservationRule.REVERSED_SOME: "Some cards reversed, not most.",
            TarotObservationRule.REPEATED_RANK: "A rank appears two or more times.",
            TarotObservationRule.COURT_CARDS: "Three or more court cards.",
        },
    ),
}
"""How the enums of the tarot result are documented in the schema."""

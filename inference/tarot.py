"""The tarot tool's engine: a reproducible draw, a rule-based reading, the model's interpretation.

Everything up to the interpretation is deterministic rules over `tarot_deck`: the draw (seeded,
without replacement), each card's meaning in its position, and observations on the spread as
a whole. Only the closing interpretation comes from the model, prompted with the question and
that reading.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from inference.base import (
    Delta,
    Engine,
    GenerationRequest,
    Piece,
    Stage,
    Structured,
    Usage,
    count_tokens,
)
from inference.tarot_deck import DECK, SUIT_ELEMENTS, Arcana, Card, Element, Rank, Suit

# Limits a validation layer documents and enforces; the dataclasses below enforce them too.
MAX_QUESTION_CHARS = 500
MIN_CUSTOM_POSITIONS = 1
MAX_CUSTOM_POSITIONS = 12
MAX_POSITION_NAME_CHARS = 60
MAX_POSITION_MEANING_CHARS = 200
MAX_SPREAD_NAME_CHARS = 60
MAX_SEED = 2**31 - 1
MIN_INTERPRETATION_TOKENS = 16
MAX_INTERPRETATION_TOKENS = 2_048
DEFAULT_INTERPRETATION_TOKENS = 400
REVERSED_PROBABILITY = 0.5
CUSTOM_SPREAD_NAME = "Custom spread"
# Below this many cards an absent suit says nothing: a three-card draw always misses one.
MISSING_SUIT_MIN_CARDS = 7


@dataclass(frozen=True)
class Position:
    """A place in a spread: its name and what a card there speaks about."""

    name: str
    meaning: str = ""


@dataclass(frozen=True)
class Spread:
    """A named layout of 1 to MAX_CUSTOM_POSITIONS positions with unique names."""

    name: str
    positions: tuple[Position, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", tuple(self.positions))
        if not self.name.strip() or len(self.name) > MAX_SPREAD_NAME_CHARS:
            raise ValueError(f"spread name: must be 1 to {MAX_SPREAD_NAME_CHARS} characters")
        count = len(self.positions)
        if not MIN_CUSTOM_POSITIONS <= count <= MAX_CUSTOM_POSITIONS:
            raise ValueError(
                f"positions: a spread has {MIN_CUSTOM_POSITIONS} to {MAX_CUSTOM_POSITIONS} "
                f"positions, got {count}"
            )
        seen: set[str] = set()
        for number, position in enumerate(self.positions, start=1):
            if not position.name.strip():
                raise ValueError(f"position {number}: the name is empty")
            if len(position.name) > MAX_POSITION_NAME_CHARS:
                raise ValueError(
                    f"position {number}: the name is longer than "
                    f"{MAX_POSITION_NAME_CHARS} characters"
                )
            if len(position.meaning) > MAX_POSITION_MEANING_CHARS:
                raise ValueError(
                    f"position {number}: the meaning is longer than "
                    f"{MAX_POSITION_MEANING_CHARS} characters"
                )
            key = " ".join(position.name.split()).casefold()
            if key in seen:
                raise ValueError(f"position {number}: the name {position.name!r} is used twice")
            seen.add(key)

    @classmethod
    def custom(cls, names: Sequence[str], *, name: str = CUSTOM_SPREAD_NAME) -> Spread:
        """A user's spread from its position names (whitespace tidied); ValueError if invalid."""
        return cls(" ".join(name.split()), tuple(Position(" ".join(n.split())) for n in names))


SINGLE = Spread(
    "Single card",
    (Position("The card", "The heart of the matter: one card that answers the question."),),
)
THREE_CARD = Spread(
    "Three cards",
    (
        Position("Past", "What lies behind: the events and influences that led here."),
        Position("Present", "Where things stand now and what is most active."),
        Position("Future", "Where things are heading if nothing changes."),
    ),
)
CELTIC_CROSS = Spread(
    "Celtic Cross",
    (
        Position("Present", "The heart of the matter: the situation as it stands now."),
        Position("Challenge", "What crosses you: the obstacle or force to work with."),
        Position("Foundation", "The root of the matter, often in the past or unconscious."),
        Position("Recent past", "What is passing away: influences now leaving the situation."),
        Position("Crown", "The conscious goal, or the best that can be achieved."),
        Position("Near future", "What is coming: influences about to enter the situation."),
        Position("Self", "Your attitude and the part you play in the situation."),
        Position("Environment", "Other people and outside forces around the matter."),
        Position("Hopes and fears", "What you hope for and what you fear, often the same."),
        Position("Outcome", "The likely outcome if the present course continues."),
    ),
)


class SpreadKind(StrEnum):
    """The built-in spreads a client can ask for by name."""

    SINGLE = "single"
    THREE_CARD = "three_card"
    CELTIC_CROSS = "celtic_cross"


SPREADS: Mapping[SpreadKind, Spread] = MappingProxyType(
    {
        SpreadKind.SINGLE: SINGLE,
        SpreadKind.THREE_CARD: THREE_CARD,
        SpreadKind.CELTIC_CROSS: CELTIC_CROSS,
    }
)


@dataclass(frozen=True)
class DrawnCard:
    """A card laid on a position, upright or reversed."""

    position: Position
    card: Card
    reversed: bool

    @property
    def orientation(self) -> str:
        """`upright` or `reversed`."""
        return "reversed" if self.reversed else "upright"

    @property
    def meaning(self) -> str:
        """The card's meaning in its orientation."""
        return self.card.meaning(reversed=self.reversed)


@dataclass(frozen=True)
class Observation:
    """What a rule noticed about the spread as a whole; `rule` is a stable code."""

    rule: str
    text: str


@dataclass(frozen=True)
class Reading:
    """A spread with one distinct card on each of its positions, and the seed that drew them."""

    spread: Spread
    cards: tuple[DrawnCard, ...]
    seed: int
    allow_reversed: bool = True
    question: str = ""

    def __post_init__(self) -> None:
        if tuple(drawn.position for drawn in self.cards) != self.spread.positions:
            raise ValueError("a reading needs one card on each position of its spread, in order")
        if len({drawn.card.id for drawn in self.cards}) != len(self.cards):
            raise ValueError("a card can only be drawn once")
        if not self.allow_reversed and any(drawn.reversed for drawn in self.cards):
            raise ValueError("a reversed card in a reading without reversals")

    @classmethod
    def lay(
        cls,
        spread: Spread,
        cards: Iterable[tuple[Card, bool]],
        *,
        seed: int,
        allow_reversed: bool = True,
        question: str = "",
    ) -> Reading:
        """Lay (card, reversed) pairs on the spread's positions in order."""
        laid = tuple(
            DrawnCard(position, card, is_reversed)
            for position, (card, is_reversed) in zip(spread.positions, cards, strict=True)
        )
        return cls(spread, laid, seed, allow_reversed, question)

    @property
    def observations(self) -> tuple[Observation, ...]:
        """The spread-level observations of `observe`."""
        return observe(self)

    def as_dict(self) -> dict[str, object]:
        """The reading as JSON-ready data, the tool's structured result."""
        return {
            "spread": self.spread.name,
            "question": self.question,
            "seed": self.seed,
            "allow_reversed": self.allow_reversed,
            "positions": [
                {
                    "index": index,
                    "position": drawn.position.name,
                    "position_meaning": drawn.position.meaning,
                    "card_id": drawn.card.id,
                    "card": drawn.card.name,
                    "arcana": str(drawn.card.arcana),
                    "suit": None if drawn.card.suit is None else str(drawn.card.suit),
                    "element": None if drawn.card.element is None else str(drawn.card.element),
                    "reversed": drawn.reversed,
                    "orientation": drawn.orientation,
                    "keywords": list(drawn.card.keywords),
                    "meaning": drawn.meaning,
                }
                for index, drawn in enumerate(self.cards, start=1)
            ],
            "observations": [{"rule": o.rule, "text": o.text} for o in self.observations],
        }


def _rng(seed: int, spread_name: str) -> random.Random:
    # Its own generator, never the global one; the spread's name is mixed in so the same seed
    # lays different cards on different spreads.
    digest = hashlib.sha256(f"{seed}|{spread_name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def draw(spread: Spread, *, seed: int | None, allow_reversed: bool, question: str) -> Reading:
    """Draw one card per position without replacement, each reversed with probability 0.5 if
    allowed. The same seed and spread give the same reading; no seed draws a random one, and
    the reading records the seed it used."""
    used = secrets.randbelow(MAX_SEED + 1) if seed is None else seed
    rng = _rng(used, spread.name)
    cards = rng.sample(DECK, len(spread.positions))
    # Orientations are drawn even when unused, so allowing reversals never changes the cards.
    flips = [rng.random() < REVERSED_PROBABILITY for _ in cards]
    return Reading.lay(
        spread,
        ((card, allow_reversed and flip) for card, flip in zip(cards, flips, strict=True)),
        seed=used,
        allow_reversed=allow_reversed,
        question=question,
    )


_ELEMENT_THEMES = {
    Element.FIRE: "energy, passion, ambition and action",
    Element.WATER: "emotions, relationships, intuition and creativity",
    Element.AIR: "thought, communication, truth and conflict",
    Element.EARTH: "work, money, health and material security",
}
_RANK_THEMES = {
    Rank.ACE: "new beginnings, potential and opportunity",
    Rank.TWO: "balance, partnership and choices",
    Rank.THREE: "growth, creativity and collaboration",
    Rank.FOUR: "stability, structure and rest",
    Rank.FIVE: "conflict, loss and instability",
    Rank.SIX: "harmony, generosity and recovery",
    Rank.SEVEN: "reflection, assessment and inner challenge",
    Rank.EIGHT: "movement, effort and mastery",
    Rank.NINE: "fruition and a cycle nearly complete",
    Rank.TEN: "completion and the end of a cycle",
    Rank.PAGE: "messages, study and fresh curiosity",
    Rank.KNIGHT: "action, movement and pursuit",
    Rank.QUEEN: "maturity, nurture and inner mastery",
    Rank.KING: "authority, control and outer mastery",
}
_COUNT_WORDS = {2: "Two", 3: "Three", 4: "Four"}


def _major_rule(cards: Sequence[DrawnCard]) -> Iterator[Observation]:
    total = len(cards)
    majors = sum(drawn.card.arcana is Arcana.MAJOR for drawn in cards)
    if majors * 2 > total:
        share = "the only card" if total == 1 else f"{majors} of {total} cards, a majority"
        text = f"Major arcana: {share}. Fate and life lessons are at work here, larger than "
        yield Observation("major_majority", text + "day-to-day events; a significant time.")
    elif majors == 0:
        text = "Major arcana: none. The matter rests on everyday events and choices that are "
        yield Observation("major_none", text + "within your own hands.")
    else:
        text = f"Major arcana: {majors} of {total} cards. Larger themes are present, but "
        yield Observation("major_some", text + "everyday choices carry most of the weight.")


def _suit_rules(cards: Sequence[DrawnCard]) -> Iterator[Observation]:
    counts = Counter(drawn.card.suit for drawn in cards if drawn.card.suit is not None)
    top = max(counts.values(), default=0)
    leaders = [suit for suit in Suit if counts[suit] == top]
    if top >= 2 and len(leaders) == 1:
        suit, element = leaders[0], SUIT_ELEMENTS[leaders[0]]
        text = f"Dominant suit: {suit.capitalize()}, {top} of {len(cards)} cards, the element "
        text += f"of {element}. {_ELEMENT_THEMES[element].capitalize()} colour the reading."
        yield Observation("dominant_suit", text)
    elif top >= 2:
        names = [suit.capitalize() for suit in leaders]
        elements = " and ".join(SUIT_ELEMENTS[suit] for suit in leaders)
        text = f"No single suit dominates: {', '.join(names[:-1])} and {names[-1]} have {top} "
        yield Observation("suits_balanced", text + f"cards each; {elements} are in balance.")
    missing = [suit for suit in Suit if counts[suit] == 0]
    if len(cards) >= MISSING_SUIT_MIN_CARDS and missing:
        named = ", ".join(f"{suit.capitalize()} ({SUIT_ELEMENTS[suit]})" for suit in missing)
        text = f"Missing suits: {named}. What they stand for plays little part for now."
        yield Observation("missing_suits", text)


def _reversed_rule(cards: Sequence[DrawnCard], allow_reversed: bool) -> Iterator[Observation]:
    total = len(cards)
    if not allow_reversed or total < 2:  # one card's orientation speaks for itself
        return
    flipped = sum(drawn.reversed for drawn in cards)
    if flipped == 0:
        text = "Reversed: none. Energies flow openly; nothing is blocked or held back."
        yield Observation("reversed_none", text)
    elif flipped * 2 > total:
        text = f"Reversed: {flipped} of {total} cards, a majority. Much is blocked, delayed or "
        text += "turned inward; look first at what holds things back."
        yield Observation("reversed_majority", text)
    else:
        text = f"Reversed: {flipped} of {total} cards. Those positions point to energy that is "
        yield Observation("reversed_some", text + "blocked, delayed or turned inward.")


def _rank_rules(cards: Sequence[DrawnCard]) -> Iterator[Observation]:
    counts = Counter(drawn.card.rank for drawn in cards if drawn.card.rank is not None)
    for rank in Rank:
        if counts[rank] >= 2:
            plural = rank.label + ("es" if rank.label.endswith("x") else "s")
            text = f"{_COUNT_WORDS[counts[rank]]} {plural}: the themes of {_RANK_THEMES[rank]}"
            yield Observation("repeated_rank", text + " stand out.")
    courts = sum(drawn.card.is_court for drawn in cards)
    if courts >= 3:
        text = f"Court cards: {courts} of {len(cards)}. Other people, or different sides of "
        yield Observation("court_cards", text + "your own character, play a large part.")


def observe(reading: Reading) -> tuple[Observation, ...]:
    """Rule-based remarks on the whole spread, always in this order: major arcana count,
    dominant or missing suits (elements), reversed count, repeated ranks, court cards."""
    cards = reading.cards
    return (
        *_major_rule(cards),
        *_suit_rules(cards),
        *_reversed_rule(cards, reading.allow_reversed),
        *_rank_rules(cards),
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def reading_sections(reading: Reading) -> list[str]:
    """The readable reading, card by position then observations, as markdown sections."""
    header = f"# Tarot reading: {reading.spread.name}\n"
    if reading.question.strip():
        header += f"Question: {_one_line(reading.question)}\n"
    sections = [header]
    for index, drawn in enumerate(reading.cards, start=1):
        card = drawn.card
        lines = [f"\n## {index}. {drawn.position.name}: {card.name} ({drawn.orientation})"]
        if drawn.position.meaning:
            lines.append(f"Position: {drawn.position.meaning}")
        lines.append(f"Keywords: {', '.join(card.keywords)}")
        lines.append(f"{drawn.orientation.capitalize()}: {drawn.meaning}")
        sections.append("\n".join(lines) + "\n")
    sections.append("\n## Observations\n" + "".join(f"- {o.text}\n" for o in reading.observations))
    return sections


def render(reading: Reading) -> str:
    """The whole rule-based reading as one text."""
    return "".join(reading_sections(reading))


_INSTRUCTIONS = (
    "In one or two short paragraphs, interpret this tarot reading as one story and answer the "
    "question at the end: take the cards in order and relate each to its position. Be warm "
    "and honest; offer reflection, not certainties, and no medical, legal or financial advice."
)


def build_prompt(reading: Reading) -> str:
    """The model prompt: instructions, the cards and observations, the question on the last line."""
    lines = [_INSTRUCTIONS, f"Spread: {reading.spread.name}"]
    for index, drawn in enumerate(reading.cards, start=1):
        where = drawn.position.name
        if drawn.position.meaning:
            where += f" ({drawn.position.meaning})"
        lines.append(f"{index}. {where}: {drawn.card.name}, {drawn.orientation}. {drawn.meaning}")
    lines.append("Observations: " + " ".join(o.text for o in reading.observations))
    question = _one_line(reading.question)
    lines.append(f"Question: {question}" if question else "A general reading; no question asked.")
    return "\n".join(lines)


@dataclass(frozen=True)
class TarotSpec:
    """A tarot request; refuses (ValueError) a question, seed or token budget out of limits."""

    question: str = ""
    spread: Spread = THREE_CARD
    seed: int | None = None
    allow_reversed: bool = True
    max_tokens: int = DEFAULT_INTERPRETATION_TOKENS

    def __post_init__(self) -> None:
        if len(self.question) > MAX_QUESTION_CHARS:
            raise ValueError(
                f"question: at most {MAX_QUESTION_CHARS} characters, got {len(self.question)}"
            )
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed: must be between 0 and {MAX_SEED}")
        if not MIN_INTERPRETATION_TOKENS <= self.max_tokens <= MAX_INTERPRETATION_TOKENS:
            raise ValueError(
                f"max_tokens: must be between {MIN_INTERPRETATION_TOKENS} and "
                f"{MAX_INTERPRETATION_TOKENS}"
            )


async def tarot(
    engine: Engine, spec: TarotSpec, *, model: str, request_id: str
) -> AsyncIterator[Piece]:
    """Draw, stream the rule-based reading, then the model's interpretation; the reading's
    structure comes last. The interpretation is seeded with the draw's seed, so a seeded
    request repeats exactly."""
    yield Stage(0.0, "draw")
    reading = draw(
        spec.spread, seed=spec.seed, allow_reversed=spec.allow_reversed, question=spec.question
    )
    for section in reading_sections(reading):
        yield Delta(section, tokens=0)
    prompt = build_prompt(reading)
    yield Usage(prompt_tokens=count_tokens(prompt))
    yield Stage(0.5, "interpretation")
    yield Delta("\n## Interpretation\n", tokens=0)
    request = GenerationRequest(
        request_id=request_id,
        model=model,
        prompt=prompt,
        max_tokens=spec.max_tokens,
        temperature=0.7,
        seed=reading.seed,
    )
    async for delta in engine.stream(request):
        yield delta
    yield Structured(reading.as_dict())

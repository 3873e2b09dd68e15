"""The tarot deck, the draw, the observation rules and the tarot tool's engine."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from inference.base import (
    Completion,
    Delta,
    Engine,
    GenerationRequest,
    Piece,
    Stage,
    Structured,
    Usage,
    collect,
    count_tokens,
)
from inference.dev import DevEngine
from inference.tarot import (
    CELTIC_CROSS,
    MAX_CUSTOM_POSITIONS,
    MAX_INTERPRETATION_TOKENS,
    MAX_POSITION_NAME_CHARS,
    MAX_QUESTION_CHARS,
    MAX_SEED,
    SINGLE,
    SPREADS,
    THREE_CARD,
    Reading,
    Spread,
    SpreadKind,
    TarotSpec,
    build_prompt,
    draw,
    render,
    tarot,
)
from inference.tarot_deck import (
    CARDS_BY_ID,
    DECK,
    Arcana,
    Element,
    Rank,
    Suit,
    card_by_id,
)


def lay(spread: Spread, *cards: str, reversed_ids: frozenset[str] = frozenset()) -> Reading:
    """A reading with chosen cards, `reversed_ids` reversed."""
    return Reading.lay(
        spread, [(card_by_id(c), c in reversed_ids) for c in cards], seed=0, allow_reversed=True
    )


def rules(reading: Reading) -> list[str]:
    return [o.rule for o in reading.observations]


def text_of(reading: Reading, rule: str) -> str:
    (found,) = [o.text for o in reading.observations if o.rule == rule]
    return found


def spread_of(size: int) -> Spread:
    return Spread.custom([f"Position {n}" for n in range(1, size + 1)], name=f"Test {size}")


async def run(spec: TarotSpec, engine: Engine | None = None) -> list[Piece]:
    chosen = engine or DevEngine(token_delay=0)
    return [piece async for piece in tarot(chosen, spec, model="m", request_id="r")]


def text_from(pieces: list[Piece]) -> str:
    return "".join(p.text for p in pieces if isinstance(p, Delta))


class RecordingEngine:
    """Streams a fixed text and keeps the requests it was sent."""

    name = "recording"

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self.requests.append(request)
        for word in ("The", " cards", " speak."):
            yield Delta(word)

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    async def aclose(self) -> None:
        pass


# The deck


def test_deck_has_78_unique_cards_with_the_major_arcana_numbered_0_to_21() -> None:
    assert len(DECK) == 78
    assert len({card.id for card in DECK}) == 78 == len(CARDS_BY_ID)
    majors = [card for card in DECK if card.arcana is Arcana.MAJOR]
    assert [card.number for card in majors] == list(range(22))
    assert (majors[0].id, majors[0].name) == ("major-00-the-fool", "The Fool")
    assert (majors[8].name, majors[11].name) == ("Strength", "Justice")  # Waite's order
    assert majors[21].name == "The World"
    assert all(card.suit is None and card.rank is None and card.element is None for card in majors)


@pytest.mark.parametrize(
    ("suit", "element"),
    [
        (Suit.WANDS, Element.FIRE),
        (Suit.CUPS, Element.WATER),
        (Suit.SWORDS, Element.AIR),
        (Suit.PENTACLES, Element.EARTH),
    ],
)
def test_each_suit_has_ace_to_king_and_its_element(suit: Suit, element: Element) -> None:
    cards = [card for card in DECK if card.suit is suit]
    assert len(cards) == 14
    assert [card.rank for card in cards] == list(Rank)
    assert [card.number for card in cards] == list(range(1, 15))
    assert all(card.arcana is Arcana.MINOR and card.element is element for card in cards)
    assert cards[0].name == f"Ace of {suit.capitalize()}"
    assert cards[12].id == f"{suit}-queen"
    assert [card.is_court for card in cards] == [False] * 10 + [True] * 4


def test_every_card_has_keywords_and_distinct_upright_and_reversed_meanings() -> None:
    for card in DECK:
        assert card.keywords and all(word.strip() for word in card.keywords), card.id
        assert card.upright_meaning.endswith(".") and card.reversed_meaning.endswith("."), card.id
        assert card.upright_meaning != card.reversed_meaning, card.id
        assert card.meaning(reversed=True) == card.reversed_meaning
    # No meaning was pasted onto two cards.
    assert len({card.upright_meaning for card in DECK}) == 78
    assert len({card.reversed_meaning for card in DECK}) == 78


def test_cards_are_found_by_id_and_an_unknown_id_is_named() -> None:
    assert card_by_id("cups-queen").name == "Queen of Cups"
    assert card_by_id("major-10-wheel-of-fortune").number == 10
    with pytest.raises(KeyError, match="cups-emperor"):
        card_by_id("cups-emperor")


# Spreads


def test_built_in_spreads_have_their_positions() -> None:
    assert len(SINGLE.positions) == 1
    assert [p.name for p in THREE_CARD.positions] == ["Past", "Present", "Future"]
    assert len(CELTIC_CROSS.positions) == 10
    assert CELTIC_CROSS.positions[0].name == "Present"
    assert CELTIC_CROSS.positions[-1].name == "Outcome"
    assert all(p.meaning for s in SPREADS.values() for p in s.positions)
    assert SPREADS[SpreadKind.CELTIC_CROSS] is CELTIC_CROSS


def test_a_custom_spread_tidies_names_and_accepts_the_limits() -> None:
    spread = Spread.custom(["  Me ", "You\tnow", "Us"])
    assert [p.name for p in spread.positions] == ["Me", "You now", "Us"]
    longest = Spread.custom(
        [f"{n:02d}".ljust(MAX_POSITION_NAME_CHARS, "x") for n in range(MAX_CUSTOM_POSITIONS)]
    )
    assert len(longest.positions) == MAX_CUSTOM_POSITIONS


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "1 to 12 positions, got 0"),
        ([f"p{n}" for n in range(13)], "1 to 12 positions, got 13"),
        (["Past", "   "], "position 2: the name is empty"),
        (["x" * (MAX_POSITION_NAME_CHARS + 1)], "position 1: the name is longer than 60"),
        (["Past", "Now", "past "], "position 3: the name 'past' is used twice"),
    ],
)
def test_an_invalid_custom_spread_is_refused_with_a_clear_message(
    names: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Spread.custom(names)


def test_a_spread_needs_a_name() -> None:
    with pytest.raises(ValueError, match="spread name"):
        Spread.custom(["Past"], name="  ")


# The draw


def test_a_seeded_draw_repeats_and_other_seeds_draw_other_cards() -> None:
    first = draw(CELTIC_CROSS, seed=42, allow_reversed=True, question="q")
    assert draw(CELTIC_CROSS, seed=42, allow_reversed=True, question="q") == first
    laid = {
        tuple(d.card.id for d in draw(THREE_CARD, seed=s, allow_reversed=True, question="").cards)
        for s in range(30)
    }
    assert len(laid) == 30
    # The spread's name is part of the seed.
    same_shape = Spread.custom(["Past", "Present", "Future"], name="Mine")
    ids = [d.card.id for d in draw(THREE_CARD, seed=1, allow_reversed=True, question="").cards]
    other = [d.card.id for d in draw(same_shape, seed=1, allow_reversed=True, question="").cards]
    assert ids != other


def test_an_unseeded_draw_records_a_seed_that_reproduces_it() -> None:
    random.seed(7)
    state = random.getstate()
    readings = [draw(CELTIC_CROSS, seed=None, allow_reversed=True, question="") for _ in range(5)]
    assert random.getstate() == state  # never the global generator
    assert len({r.seed for r in readings}) == 5
    for reading in readings:
        assert 0 <= reading.seed <= MAX_SEED
        again = draw(CELTIC_CROSS, seed=reading.seed, allow_reversed=True, question="")
        assert again == reading


def test_no_card_is_drawn_twice_and_every_card_can_come_up() -> None:
    seen: Counter[str] = Counter()
    for seed in range(300):
        reading = draw(CELTIC_CROSS, seed=seed, allow_reversed=True, question="")
        ids = [d.card.id for d in reading.cards]
        assert len(set(ids)) == 10
        seen.update(ids)
    assert set(seen) == set(CARDS_BY_ID)


def test_reversals_only_when_allowed_and_about_half_of_the_time() -> None:
    flipped = total = 0
    for seed in range(300):
        allowed = draw(CELTIC_CROSS, seed=seed, allow_reversed=True, question="")
        upright = draw(CELTIC_CROSS, seed=seed, allow_reversed=False, question="")
        assert not any(d.reversed for d in upright.cards)
        # Allowing reversals changes orientations, never the cards.
        assert [d.card for d in upright.cards] == [d.card for d in allowed.cards]
        flipped += sum(d.reversed for d in allowed.cards)
        total += len(allowed.cards)
    # 3000 cards: a standard deviation is under 1%, the bounds are five of them.
    assert 0.45 < flipped / total < 0.55


def test_a_reading_refuses_repeated_cards_and_reversals_that_were_not_allowed() -> None:
    with pytest.raises(ValueError, match="only be drawn once"):
        lay(THREE_CARD, "cups-ace", "cups-ace", "cups-two")
    with pytest.raises(ValueError, match="reversed card"):
        Reading.lay(SINGLE, [(card_by_id("cups-ace"), True)], seed=0, allow_reversed=False)
    with pytest.raises(ValueError, match="each position"):
        Reading(THREE_CARD, (), seed=0)


# Observations


def test_a_majority_of_major_arcana_is_called_significant() -> None:
    reading = lay(THREE_CARD, "major-00-the-fool", "major-16-the-tower", "cups-ace")
    assert rules(reading)[0] == "major_majority"
    assert "dominant_suit" not in rules(reading)  # one Cup is no dominance
    assert text_of(reading, "major_majority").startswith("Major arcana: 2 of 3 cards, a majority")
    single = lay(SINGLE, "major-19-the-sun")
    assert "the only card" in text_of(single, "major_majority")


def test_a_minority_or_no_major_arcana_say_so() -> None:
    some = lay(THREE_CARD, "major-00-the-fool", "wands-two", "cups-ace")
    none = lay(THREE_CARD, "wands-three", "wands-two", "cups-ace")
    assert "1 of 3 cards" in text_of(some, "major_some")
    half = lay(spread_of(4), "major-00-the-fool", "major-01-the-magician", "cups-ace", "cups-two")
    assert "2 of 4 cards" in text_of(half, "major_some")  # half is not a majority
    assert "major_none" in rules(none) and "major_majority" not in rules(none)


def test_the_dominant_suit_names_its_element() -> None:
    reading = lay(THREE_CARD, "cups-ace", "cups-five", "major-16-the-tower")
    text = text_of(reading, "dominant_suit")
    assert text.startswith("Dominant suit: Cups, 2 of 3 cards, the element of water")
    assert "Emotions" in text
    earth = lay(
        spread_of(5), "pentacles-two", "pentacles-ten", "pentacles-king", "cups-ace", "swords-ace"
    )
    assert "element of earth" in text_of(earth, "dominant_suit")


def test_a_tie_between_suits_is_no_dominant_suit() -> None:
    reading = lay(spread_of(4), "wands-two", "cups-three", "wands-four", "cups-five")
    assert "dominant_suit" not in rules(reading)
    assert "Wands and Cups have 2 cards each" in text_of(reading, "suits_balanced")
    lone = lay(THREE_CARD, "wands-two", "cups-three", "swords-four")
    assert not {"dominant_suit", "suits_balanced"} & set(rules(lone))


def test_missing_suits_are_noted_only_in_large_spreads() -> None:
    ten = lay(
        CELTIC_CROSS,
        "wands-ace", "wands-two", "cups-ace", "cups-two", "swords-ace",
        "swords-two", "swords-three", "major-01-the-magician", "major-02-the-high-priestess",
        "major-03-the-empress",
    )  # fmt: skip
    assert text_of(ten, "missing_suits").startswith("Missing suits: Pentacles (earth).")
    small = lay(THREE_CARD, "wands-nine", "cups-two", "swords-ten")
    assert "missing_suits" not in rules(small)


def test_repeated_ranks_and_many_court_cards_are_noted() -> None:
    reading = lay(
        spread_of(7),
        "cups-ace", "swords-ace", "wands-ace", "cups-six", "pentacles-six",
        "wands-knight", "cups-queen",
    )  # fmt: skip
    repeated = [o.text for o in reading.observations if o.rule == "repeated_rank"]
    assert [text.split(":")[0] for text in repeated] == ["Three Aces", "Two Sixes"]
    assert repeated[0].startswith("Three Aces: the themes of new beginnings")
    assert "court_cards" not in rules(reading)  # two court cards are not many
    sixes_and_courts = lay(
        spread_of(5), "cups-six", "pentacles-six", "wands-page", "swords-king", "cups-knight"
    )
    assert text_of(sixes_and_courts, "repeated_rank").startswith("Two Sixes: the themes of")
    assert text_of(sixes_and_courts, "court_cards").startswith("Court cards: 3 of 5.")


def test_reversed_cards_are_counted_only_when_reversals_are_in_play() -> None:
    cards = ("cups-ace", "cups-two", "major-13-death")
    majority = lay(THREE_CARD, *cards, reversed_ids=frozenset({"cups-ace", "major-13-death"}))
    assert "2 of 3 cards, a majority" in text_of(majority, "reversed_majority")
    some = lay(THREE_CARD, *cards, reversed_ids=frozenset({"cups-two"}))
    assert "1 of 3 cards" in text_of(some, "reversed_some")
    half = lay(spread_of(2), "cups-ace", "cups-two", reversed_ids=frozenset({"cups-two"}))
    assert "1 of 2 cards" in text_of(half, "reversed_some")
    assert "reversed_none" in rules(lay(THREE_CARD, *cards))
    no_reversals = Reading.lay(
        THREE_CARD, [(card_by_id(c), False) for c in cards], seed=0, allow_reversed=False
    )
    assert not any(rule.startswith("reversed") for rule in rules(no_reversals))


def test_observations_are_rendered_after_the_cards_by_position() -> None:
    cards = ("wands-ace", "major-09-the-hermit", "cups-ten")
    reading = lay(THREE_CARD, *cards, reversed_ids=frozenset({"cups-ten"}))
    text = render(reading)
    first = text.index("## 1. Past: Ace of Wands (upright)")
    assert first < text.index("## 3. Future: Ten of Cups (reversed)")
    assert card_by_id("cups-ten").reversed_meaning in text
    assert card_by_id("cups-ten").upright_meaning not in text
    assert text.index("## Observations") > text.index("Ten of Cups")
    for observation in reading.observations:
        assert f"- {observation.text}\n" in text


# The spec and the prompt


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"question": "x" * (MAX_QUESTION_CHARS + 1)}, "question: at most 500 characters"),
        ({"seed": -1}, "seed"),
        ({"seed": MAX_SEED + 1}, "seed"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": MAX_INTERPRETATION_TOKENS + 1}, "max_tokens"),
    ],
)
def test_a_spec_out_of_limits_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TarotSpec(**changes)  # type: ignore[arg-type]


def test_the_prompt_holds_the_cards_and_ends_with_the_question() -> None:
    reading = Reading.lay(
        THREE_CARD,
        [(card_by_id("wands-ace"), False), (card_by_id("major-18-the-moon"), True),
         (card_by_id("cups-two"), False)],
        seed=3,
        question="Will the  project\nsucceed?",
    )  # fmt: skip
    prompt = build_prompt(reading)
    assert prompt.splitlines()[-1] == "Question: Will the project succeed?"
    assert "2. Present (" in prompt and "The Moon, reversed." in prompt
    assert card_by_id("major-18-the-moon").reversed_meaning in prompt
    assert "Observations: Major arcana: 1 of 3 cards." in prompt
    no_question = Reading.lay(SINGLE, [(card_by_id("wands-ace"), False)], seed=3)
    assert build_prompt(no_question).splitlines()[-1].startswith("A general reading")


# The tool


async def test_tarot_streams_draw_reading_usage_interpretation_then_the_structure() -> None:
    spec = TarotSpec(
        question="What should I focus on?", spread=CELTIC_CROSS, seed=11, max_tokens=40
    )
    pieces = await run(spec)
    expected = draw(CELTIC_CROSS, seed=11, allow_reversed=True, question=spec.question)

    assert pieces[0] == Stage(0.0, "draw")
    assert isinstance(pieces[-1], Structured)
    assert sum(isinstance(p, Structured) for p in pieces) == 1
    usage_at = pieces.index(Usage(prompt_tokens=count_tokens(build_prompt(expected))))
    stage_at = pieces.index(Stage(0.5, "interpretation"))
    assert usage_at < stage_at
    before = pieces[1:usage_at]
    assert before and all(isinstance(p, Delta) and p.tokens == 0 for p in before)
    assert "".join(p.text for p in before if isinstance(p, Delta)) == render(expected)
    model_tokens = sum(p.tokens for p in pieces[stage_at:] if isinstance(p, Delta))
    assert model_tokens == 40

    text = text_from(pieces)
    for drawn in expected.cards:
        assert drawn.card.name in text
    assert text.index("## Interpretation") > text.index("## Observations")


async def test_the_structured_result_is_json_and_matches_the_draw() -> None:
    spec = TarotSpec(question="Love?", spread=THREE_CARD, seed=5, max_tokens=16)
    pieces = await run(spec)
    final = pieces[-1]
    assert isinstance(final, Structured)
    data = json.loads(json.dumps(final.data))
    expected = draw(THREE_CARD, seed=5, allow_reversed=True, question="Love?")
    assert data["spread"] == "Three cards" and data["seed"] == 5 and data["question"] == "Love?"
    assert [p["card_id"] for p in data["positions"]] == [d.card.id for d in expected.cards]
    assert [p["position"] for p in data["positions"]] == ["Past", "Present", "Future"]
    for position, drawn in zip(data["positions"], expected.cards, strict=True):
        assert position["reversed"] is drawn.reversed
        assert position["meaning"] == drawn.meaning
        assert position["card"] == drawn.card.name
    assert [o["text"] for o in data["observations"]] == [o.text for o in expected.observations]


async def test_a_seeded_request_repeats_and_an_unseeded_one_can_be_replayed() -> None:
    seeded = TarotSpec(spread=THREE_CARD, seed=9, max_tokens=30)
    assert text_from(await run(seeded)) == text_from(await run(seeded))

    unseeded = await run(TarotSpec(spread=CELTIC_CROSS, seed=None, max_tokens=30))
    final = unseeded[-1]
    assert isinstance(final, Structured)
    used = final.data["seed"]
    assert isinstance(used, int)
    replay = await run(TarotSpec(spread=CELTIC_CROSS, seed=used, max_tokens=30))
    assert text_from(replay) == text_from(unseeded)


async def test_the_model_gets_the_reading_the_budget_and_the_seed() -> None:
    engine = RecordingEngine()
    spec = TarotSpec(question="Move abroad?", spread=SINGLE, seed=123, max_tokens=64)
    pieces = await run(spec, engine)
    (request,) = engine.requests
    reading = draw(SINGLE, seed=123, allow_reversed=True, question="Move abroad?")
    assert request.prompt == build_prompt(reading)
    assert request.max_tokens == 64 and request.seed == 123 and request.model == "m"
    assert text_from(pieces).endswith("## Interpretation\nThe cards speak.")


async def test_a_custom_spread_without_reversals_runs_end_to_end() -> None:
    spread = Spread.custom(["Me", "You", "Us", "Where we go"], name="Us two")
    pieces = await run(TarotSpec(spread=spread, seed=1, allow_reversed=False, max_tokens=16))
    final = pieces[-1]
    assert isinstance(final, Structured)
    positions = final.data["positions"]
    assert isinstance(positions, list)
    assert [p["position"] for p in positions] == ["Me", "You", "Us", "Where we go"]
    assert all(p["orientation"] == "upright" for p in positions)
    assert "(reversed)" not in text_from(pieces)

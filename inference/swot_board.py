"""SWOT quadrant items and TOWS strategies: facts placed per quadrant, cells paired up.

`fact_items` keeps each quadrant's most confident facts; `tows` pairs internal and external
items into strategies per cell (facts first, then the model's lines and items), and fills the
rest with labelled research prompts when a subject is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from inference.swot_rules import Classification, Quadrant

PLACEHOLDER_PREFIX = "(to research)"


class Cell(StrEnum):
    """The TOWS cells: which internal quadrant meets which external one."""

    SO = "SO"
    ST = "ST"
    WO = "WO"
    WT = "WT"


class Source(StrEnum):
    """Where a quadrant item or strategy comes from."""

    FACT = "fact"
    MODEL = "model"
    PLACEHOLDER = "placeholder"


SIDES = {
    Cell.SO: (Quadrant.STRENGTHS, Quadrant.OPPORTUNITIES),
    Cell.ST: (Quadrant.STRENGTHS, Quadrant.THREATS),
    Cell.WO: (Quadrant.WEAKNESSES, Quadrant.OPPORTUNITIES),
    Cell.WT: (Quadrant.WEAKNESSES, Quadrant.THREATS),
}
GOALS = {
    Cell.SO: "use strengths to seize opportunities",
    Cell.ST: "use strengths to counter threats",
    Cell.WO: "overcome weaknesses by pursuing opportunities",
    Cell.WT: "reduce weaknesses to avoid threats",
}
_PHRASES = {
    Cell.SO: ('Use "{a}" to seize "{b}".', 'Build on "{a}" to pursue "{b}".'),
    Cell.ST: ('Use "{a}" to counter "{b}".', 'Lean on "{a}" to reduce exposure to "{b}".'),
    Cell.WO: ('Overcome "{a}" by pursuing "{b}".', 'Use "{b}" as the occasion to fix "{a}".'),
    Cell.WT: (
        'Reduce "{a}" before "{b}" can exploit it.',
        'Plan a defence where "{a}" meets "{b}".',
    ),
}


@dataclass(frozen=True)
class SwotItem:
    """One quadrant entry: the text, why it is there and where it comes from."""

    item: str
    rationale: str
    source: Source
    confidence: float | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON-ready form stored in the structured result."""
        return {
            "item": self.item,
            "rationale": self.rationale,
            "source": self.source.value,
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class Strategy:
    """A TOWS strategy; `pair` holds the two items it combines (empty when it has none)."""

    text: str
    pair: tuple[str, ...]
    source: Source

    def to_json(self) -> dict[str, object]:
        """The JSON-ready form stored in the structured result."""
        return {"strategy": self.text, "pair": list(self.pair), "source": self.source.value}


Board = dict[Quadrant, list[SwotItem]]


def fact_items(
    classifications: Sequence[Classification], limit: int
) -> tuple[Board, list[Classification]]:
    """Classified facts per quadrant, the `limit` most confident in input order; the rest
    are returned as overflow so none is lost silently."""
    board: Board = {}
    overflow: list[Classification] = []
    for quadrant in Quadrant:
        placed = [(i, c) for i, c in enumerate(classifications) if c.quadrant is quadrant]
        ranked = sorted(placed, key=lambda pair: (-pair[1].confidence, pair[0]))
        kept = sorted(ranked[:limit], key=lambda pair: pair[0])
        board[quadrant] = [
            SwotItem(c.fact, c.rationale, Source.FACT, c.confidence) for _, c in kept
        ]
        overflow.extend(c for _, c in ranked[limit:])
    return board, overflow


def _diagonal(
    first: Sequence[SwotItem], second: Sequence[SwotItem]
) -> list[tuple[SwotItem, SwotItem]]:
    # Every pair once, each item used before any is reused: (0,0), (1,1)…, then shifted.
    return [
        (first[i], second[(i + shift) % len(second)])
        for shift in range(len(second))
        for i in range(len(first))
    ]


def _quote(item: str) -> str:
    return item.rstrip(" .;!?\u3002\uff1b\uff01\uff1f").replace('"', "'")


def tows(
    board: Mapping[Quadrant, Sequence[SwotItem]],
    per_cell: int,
    *,
    model_lines: Mapping[Cell, Sequence[str]] | None = None,
    subject: str | None = None,
) -> dict[Cell, list[Strategy]]:
    """Up to `per_cell` strategies per TOWS cell: pairs of facts first, then the model's own
    strategy lines, then pairs with model items; with `subject`, research prompts fill the rest."""
    lines = model_lines or {}
    return {
        cell: _cell(
            cell,
            inner=board[inner],
            outer=board[outer],
            per_cell=per_cell,
            lines=lines.get(cell, ()),
            subject=subject,
        )
        for cell, (inner, outer) in SIDES.items()
    }


def _cell(
    cell: Cell,
    *,
    inner: Sequence[SwotItem],
    outer: Sequence[SwotItem],
    per_cell: int,
    lines: Sequence[str],
    subject: str | None,
) -> list[Strategy]:
    facts = _diagonal(_from(inner, Source.FACT), _from(outer, Source.FACT))
    known = _diagonal(
        _from(inner, Source.FACT, Source.MODEL), _from(outer, Source.FACT, Source.MODEL)
    )
    out: list[Strategy] = []
    seen: set[tuple[str, ...]] = set()
    candidates: list[str | tuple[SwotItem, SwotItem]] = [*facts, *lines, *known]
    for candidate in candidates:
        if len(out) >= per_cell:
            break
        if isinstance(candidate, str):
            strategy = Strategy(candidate, (), Source.MODEL)
        else:
            a, b = candidate
            text = _PHRASES[cell][len(out) % 2].format(a=_quote(a.item), b=_quote(b.item))
            both_facts = a.source is Source.FACT and b.source is Source.FACT
            strategy = Strategy(text, (a.item, b.item), Source.FACT if both_facts else Source.MODEL)
        key = strategy.pair or (text_key(strategy.text),)
        if key not in seen:
            seen.add(key)
            out.append(strategy)
    while subject is not None and len(out) < per_cell:
        question = f"option {len(out) + 1}: how could {in_sentence(subject)} {GOALS[cell]}?"
        out.append(Strategy(f"{PLACEHOLDER_PREFIX} {question}", (), Source.PLACEHOLDER))
    return out


# First words that start a sentence with a capital only: articles, determiners, pronouns.
_LOWERED_STARTS = re.compile(
    r"a|an|the|this|that|these|those|our|my|your|their|his|her|its|some|any|every|each|"
    r"another|no|one|two|three|several|many|few|new|small|large|big|local"
)
# Names that end like a gerund: a capital there is the name's own.
_NAMES_IN_ING = re.compile(
    r"beijing|nanjing|chongqing|kunming|nanning|xining|liaoning|jining|dongying|xingning|"
    r"reading|boeing|epping|ealing|woking|kettering"
)


def in_sentence(subject: str) -> str:
    """The subject as it reads inside a sentence: "Opening a shop" becomes "opening a shop"
    and "A bakery" "a bakery", while names and acronyms ("Tesla", "AI startup") keep their
    capitals. Only a gerund or a common first word is lowered: a heuristic, not a parser."""
    first, _, rest = subject.partition(" ")
    word = first.strip("\"'(")
    lower = word.lower()
    gerund = lower.endswith("ing") and len(lower) > 4 and not _NAMES_IN_ING.fullmatch(lower)
    common = gerund or _LOWERED_STARTS.fullmatch(lower) is not None
    if not word[:1].isupper() or word[1:] != word[1:].lower() or not common:
        return subject
    lowered = first.replace(word[0], word[0].lower(), 1)
    return f"{lowered} {rest}" if rest else lowered


def _from(items: Iterable[SwotItem], *sources: Source) -> list[SwotItem]:
    return [item for item in items if item.source in sources]


def text_key(text: str) -> str:
    """What two texts share when they say the same: casefolded words, no punctuation."""
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()

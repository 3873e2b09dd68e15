"""The SWOT tool's engine: rules classify the facts, then the model explains and extends.

Each fact is placed in a quadrant by cue words (internal or external, positive or negative,
with negation), in English and basic Chinese; TOWS strategies pair the classified items. The
model's analysis streams after the rule output, and each quadrant is then filled to the
template's count: facts first, then the model's lines, then labelled research prompts.
The classifier lives in `swot_rules`, quadrant items and TOWS pairing in `swot_board`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

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
from inference.swot_board import (
    GOALS,
    PLACEHOLDER_PREFIX,
    SIDES,
    Board,
    Cell,
    Source,
    Strategy,
    SwotItem,
    fact_items,
    in_sentence,
    text_key,
    tows,
)
from inference.swot_rules import Classification, Cue, Quadrant, classify_fact

__all__ = [
    "DEFAULT_ITEMS",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_STRATEGIES",
    "MAX_FACTS",
    "MAX_FACT_CHARS",
    "MAX_ITEMS",
    "MAX_STRATEGIES",
    "MAX_SUBJECT_CHARS",
    "MAX_TEMPLATE_PROMPT_CHARS",
    "MIN_ITEMS",
    "MIN_STRATEGIES",
    "MIN_SUBJECT_CHARS",
    "PLACEHOLDER_PREFIX",
    "Board",
    "Cell",
    "Classification",
    "Cue",
    "Quadrant",
    "Source",
    "Strategy",
    "SwotItem",
    "SwotSpec",
    "SwotTemplate",
    "build_prompt",
    "build_result",
    "classify_fact",
    "fact_items",
    "fill",
    "in_sentence",
    "parse_analysis",
    "swot",
    "tows",
]

MIN_SUBJECT_CHARS = 3
MAX_SUBJECT_CHARS = 300
MAX_FACTS = 30
MAX_FACT_CHARS = 300
MAX_TEMPLATE_PROMPT_CHARS = 500
MIN_ITEMS = 1
MAX_ITEMS = 8
DEFAULT_ITEMS = 4
MIN_STRATEGIES = 1
MAX_STRATEGIES = 5
DEFAULT_STRATEGIES = 2
DEFAULT_MAX_TOKENS = 600

# Model sentences without a SWOT heading count only when the rules are this sure of them.
_MODEL_SENTENCE_CONFIDENCE = 0.6

# Each reads well whether the subject is a noun phrase ("an e-bike maker") or a plan
# ("opening a small coffee shop near a university"): the subject is never asked to have a
# past, and it starts in lower case inside the sentence (`in_sentence`).
_QUESTIONS = {
    Quadrant.STRENGTHS: (
        "What would {s} do better than the alternatives?",
        "Which skills, assets or know-how would give an edge to {s}?",
        "What would customers value most about {s}?",
        "Which cost or resource advantages come with {s}?",
        "Which results, awards or references speak for {s}?",
        "Which partnerships or channels would strengthen {s}?",
        "What about {s} is unique or hard to copy?",
        "What recent progress supports {s}?",
    ),
    Quadrant.WEAKNESSES: (
        "Where would {s} fall short of the competition?",
        "Which skills or resources are missing for {s}?",
        "What could customers dislike about {s}?",
        "Which costs would weigh most on {s}?",
        "Which processes could slow down {s}?",
        "Where would {s} depend on a single person, supplier or channel?",
        "What would a critic say about {s}?",
        "Which past setbacks could repeat with {s}?",
    ),
    Quadrant.OPPORTUNITIES: (
        "Which market trends could favour {s}?",
        "Which customer needs around {s} are still unmet?",
        "Which new segments or regions are within reach for {s}?",
        "Which technology shifts could help {s}?",
        "Which policy or regulatory changes could benefit {s}?",
        "Which partnerships could open doors for {s}?",
        "Which gaps left by competitors could be filled by {s}?",
        "Which events or seasons could work in favour of {s}?",
    ),
    Quadrant.THREATS: (
        "Which competitors could stand in the way of {s}?",
        "Which regulations could restrict {s}?",
        "Which economic changes could hurt {s}?",
        "Which technology shifts could make {s} obsolete?",
        "Which suppliers or rising costs could squeeze {s}?",
        "Which changes in customer behaviour could work against {s}?",
        "Which legal or reputational risks come with {s}?",
        "Which new entrants or substitutes could replace {s}?",
    ),
}


@dataclass(frozen=True)
class SwotTemplate:
    """Per-quadrant instructions for the model and how many items and strategies to return."""

    strengths_prompt: str = ""
    weaknesses_prompt: str = ""
    opportunities_prompt: str = ""
    threats_prompt: str = ""
    items: int = DEFAULT_ITEMS
    strategies: int = DEFAULT_STRATEGIES

    def prompt(self, quadrant: Quadrant) -> str:
        """The custom instruction for `quadrant`, empty when there is none."""
        return str(getattr(self, f"{quadrant.value}_prompt"))


@dataclass(frozen=True)
class SwotSpec:
    """A validated SWOT request (limits: the module's MIN_/MAX_ constants)."""

    subject: str
    facts: tuple[str, ...] = ()
    template: SwotTemplate | None = None
    seed: int | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS


# --- The model's analysis and the result -----------------------------------------------------


_LABEL = re.compile(
    r"^[\s>#*_\-+•\d.)]*(?P<label>(?i:strengths?|weakness(?:es)?|opportunit(?:y|ies)|threats?)"
    r"|优势|劣势|机会|机遇|威胁|SO|ST|WO|WT)\b(?P<tail>.*)$"
)
_LABEL_MARKS = ":\uff1a-\u2013\u2014"  # what may follow an inline label: "Threat: …"
# Greedy groups, stripped afterwards: a lazy group before `\s*$` is quadratic on long lines.
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+(?P<text>.*)$")
_SENTENCE = re.compile(r"[^.!?\u3002\uff01\uff1f\n]+[.!?\u3002\uff01\uff1f]?")
_TARGETS: dict[str, Quadrant | Cell] = {
    **dict.fromkeys(("strength", "strengths", "优势"), Quadrant.STRENGTHS),
    **dict.fromkeys(("weakness", "weaknesses", "劣势"), Quadrant.WEAKNESSES),
    **dict.fromkeys(("opportunity", "opportunities", "机会", "机遇"), Quadrant.OPPORTUNITIES),
    **dict.fromkeys(("threat", "threats", "威胁"), Quadrant.THREATS),
    **{cell.value.lower(): cell for cell in Cell},
}


def _clean(text: str) -> str:
    text = " ".join(text.strip(" *_`").split())
    return text if len(text) <= MAX_FACT_CHARS else text[: MAX_FACT_CHARS - 1] + "…"


def parse_analysis(text: str) -> tuple[dict[Quadrant, list[str]], dict[Cell, list[str]]]:
    """Lines the model put under SWOT or TOWS headings, or labelled inline (`Threat: …`)."""
    items: dict[Quadrant, list[str]] = {quadrant: [] for quadrant in Quadrant}
    strategies: dict[Cell, list[str]] = {cell: [] for cell in Cell}
    current: Quadrant | Cell | None = None
    for line in text.splitlines():
        label = _LABEL.match(line)
        tail = label["tail"].strip(" \t*_") if label else ""
        if label and (not tail or tail[0] in _LABEL_MARKS):
            current = _TARGETS[label["label"].lower()]
            content = tail[1:]
        elif line.lstrip().startswith("#"):
            current = None  # another heading ends the section
            continue
        else:
            bullet = _BULLET.match(line)
            content = bullet.group("text") if bullet else line
        content = _clean(content)
        if current is None or len(content) < 3:
            continue
        if isinstance(current, Quadrant):
            items[current].append(content)
        else:
            strategies[current].append(content)
    return items, strategies


def fill(
    board: Mapping[Quadrant, Sequence[SwotItem]],
    items: int,
    *,
    subject: str,
    analysis: str,
    template: SwotTemplate,
) -> Board:
    """Each quadrant at exactly `items` entries: facts, then the model's labelled lines, then
    model sentences the rules place confidently, then `(to research) …` prompts."""
    labelled, _ = parse_analysis(analysis)
    sentences = [classify_fact(s) for s in _SENTENCE.findall(analysis) if len(s.split()) >= 3]
    filled: Board = {}
    for quadrant in Quadrant:
        candidates = [
            SwotItem(line, f"listed by the model under {quadrant.value}", Source.MODEL)
            for line in labelled[quadrant]
        ]
        candidates += [
            SwotItem(_clean(c.fact), f"model sentence; {c.rationale}", Source.MODEL, c.confidence)
            for c in sentences
            if c.quadrant is quadrant and c.confidence >= _MODEL_SENTENCE_CONFIDENCE
        ]
        custom = " ".join(template.prompt(quadrant).split())
        questions = [f"{custom} ({subject})"] if custom else []
        questions += [question.format(s=in_sentence(subject)) for question in _QUESTIONS[quadrant]]
        # Numbered prompts only matter when more items are asked for than MAX_ITEMS allows.
        questions += [f"{quadrant.value} of {subject}, point {n + 1}" for n in range(items)]
        why = f"too few facts and model lines for {quadrant.value}: a question to research"
        candidates += [
            SwotItem(f"{PLACEHOLDER_PREFIX} {question}", why, Source.PLACEHOLDER)
            for question in questions
        ]
        out = list(board[quadrant])[:items]
        keys = {text_key(item.item) for item in out}
        for candidate in candidates:
            if len(out) < items and text_key(candidate.item) not in keys:
                keys.add(text_key(candidate.item))
                out.append(candidate)
        filled[quadrant] = out
    return filled


def build_result(
    spec: SwotSpec, classifications: Sequence[Classification], analysis: str
) -> dict[str, object]:
    """The JSON-ready structured result: filled quadrants, TOWS strategies, unplaced facts."""
    template = spec.template or SwotTemplate()
    subject = " ".join(spec.subject.split())
    board, overflow = fact_items(classifications, template.items)
    filled = fill(board, template.items, subject=subject, analysis=analysis, template=template)
    _, model_lines = parse_analysis(analysis)
    strategies = tows(filled, template.strategies, model_lines=model_lines, subject=subject)
    result: dict[str, object] = {q.value: [item.to_json() for item in filled[q]] for q in Quadrant}
    result["strategies"] = {
        cell.value: [strategy.to_json() for strategy in strategies[cell]] for cell in Cell
    }
    result["unclassified"] = [
        {"fact": c.fact, "reason": c.reason, "cues": [f"{cue.kind}: {cue.text}" for cue in c.cues]}
        for c in classifications
        if c.quadrant is None
    ]
    result["overflow"] = [
        {"fact": c.fact, "quadrant": str(c.quadrant), "rationale": c.rationale} for c in overflow
    ]
    return result


# --- The engine ------------------------------------------------------------------------------


def build_prompt(spec: SwotSpec, classifications: Sequence[Classification]) -> str:
    """The model prompt: what to write, the facts as the rules placed them, and the subject
    last. The rules' strategies are left out: they already stream above the analysis, and a
    small model given them only repeats them."""
    template = spec.template or SwotTemplate()
    lines = [
        "Write a short SWOT analysis of the plan below: the headings Strengths, Weaknesses, "
        f"Opportunities and Threats with up to {template.items} bullet points each, then the "
        f"headings SO, ST, WO and WT with up to {template.strategies} strategies each.",
    ]
    for quadrant in Quadrant:
        if custom := " ".join(template.prompt(quadrant).split()):
            lines.append(f"For {quadrant.value}: {custom}")
    if classifications:
        lines.append("Known facts:")
        lines += [
            f"- {c.fact} ({c.quadrant.value})" if c.quadrant else f"- {c.fact}"
            for c in classifications
        ]
    lines += ["The plan:", " ".join(spec.subject.split())]
    return "\n".join(lines)


def _layout(
    subject: str,
    classifications: Sequence[Classification],
    strategies: Mapping[Cell, Sequence[Strategy]],
) -> list[str]:
    chunks = [f"# SWOT analysis: {subject}\n"]
    for quadrant in Quadrant:
        lines = [
            f"- {c.fact} — {c.rationale} (confidence {c.confidence:.2f})\n"
            for c in classifications
            if c.quadrant is quadrant
        ]
        body = "".join(lines) or "_No fact classified here._\n"
        chunks.append(f"\n## {quadrant.value.capitalize()}\n{body}")
    unplaced = [f"- {c.fact} — {c.reason}\n" for c in classifications if c.quadrant is None]
    if unplaced:
        chunks.append("\n## Unclassified facts\n" + "".join(unplaced))
    chunks.append("\n## TOWS strategies from the rules\n")
    for cell, (inner, outer) in SIDES.items():
        lines = [f"- {strategy.text}\n" for strategy in strategies[cell]]
        needs = f"_Needs facts among both {inner.value} and {outer.value}._\n"
        chunks.append(f"\n### {cell}: {GOALS[cell]}\n" + ("".join(lines) or needs))
    return chunks


async def swot(
    engine: Engine, spec: SwotSpec, *, model: str, request_id: str
) -> AsyncIterator[Piece]:
    """The rule classification as text, the model's streamed analysis, then the structured
    SWOT with every quadrant and TOWS cell filled to the template's counts."""
    template = spec.template or SwotTemplate()
    yield Stage(0.0, "classifying")
    classifications = [classify_fact(fact) for fact in spec.facts]
    board, _ = fact_items(classifications, template.items)
    rules = tows(board, template.strategies)
    for chunk in _layout(" ".join(spec.subject.split()), classifications, rules):
        yield Delta(chunk, tokens=0)
    prompt = build_prompt(spec, classifications)
    yield Usage(prompt_tokens=count_tokens(prompt))
    yield Stage(0.5, "analysis")
    yield Delta("\n## Analysis\n\n", tokens=0)
    request = GenerationRequest(
        request_id=request_id,
        model=model,
        prompt=prompt,
        max_tokens=spec.max_tokens,
        temperature=0.5,
        seed=spec.seed,
    )
    parts: list[str] = []
    async for delta in engine.stream(request):
        parts.append(delta.text)
        yield delta
    yield Structured(build_result(spec, classifications, "".join(parts)))

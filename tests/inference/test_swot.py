"""The SWOT engine: rule classification, TOWS pairing, filling to the template, the stream."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from inference.base import Delta, Stage, Structured, Usage, count_tokens
from inference.dev import DevEngine
from inference.swot import (
    MAX_ITEMS,
    PLACEHOLDER_PREFIX,
    Cell,
    Quadrant,
    Source,
    SwotSpec,
    SwotTemplate,
    build_prompt,
    build_result,
    classify_fact,
    fact_items,
    in_sentence,
    parse_analysis,
    swot,
    tows,
)

STR, WEA, OPP, THR = (
    Quadrant.STRENGTHS,
    Quadrant.WEAKNESSES,
    Quadrant.OPPORTUNITIES,
    Quadrant.THREATS,
)

LABELLED = [
    ("Our brand is well known and trusted in the region", STR),
    ("We have a loyal customer base", STR),
    ("Our engineering team is highly skilled", STR),
    ("We hold 12 patents on the battery design", STR),
    ("We have no debt", STR),  # negation of a bad thing
    ("Production costs are low", STR),
    ("We are the market leader", STR),
    ("Our costs are rising faster than revenue", WEA),
    ("We lack experienced sales staff", WEA),  # negation of a good thing
    ("The product is not profitable yet", WEA),
    ("Our website is slow and outdated", WEA),
    ("Customer churn is high", WEA),
    ("Our supply chain depends on a single supplier", WEA),
    ("Our team does not have enough engineers", WEA),
    ("Demand for electric bikes is growing in Europe", OPP),
    ("New government subsidies support e-bike purchases", OPP),
    ("A major competitor is exiting the market", OPP),
    ("There is no strong competitor in Asia", OPP),
    ("Lack of competition in rural areas", OPP),
    ("Our competitors are weak", OPP),
    ("Fierce competition from low-cost rivals", THR),
    ("A recession could reduce consumer spending", THR),
    ("Interest rates are rising", THR),
    ("The market is not growing", THR),
    ("Shipping delays from suppliers are increasing", THR),
    ("我们的品牌知名度高", STR),
    ("我们的优势是研发能力", STR),
    ("我们没有债务", STR),
    ("生产成本不断上涨", WEA),
    ("团队缺乏经验", WEA),
    ("产品质量不稳定", WEA),
    ("政府出台新的补贴政策", OPP),
    ("客户需求持续增长", OPP),
    ("市场竞争加剧", THR),
    ("我们的竞争对手很强", THR),
    ("新的环保法规是一大威胁", THR),
]


@pytest.mark.parametrize(("fact", "expected"), LABELLED)
def test_each_labelled_fact_lands_in_its_quadrant(fact: str, expected: Quadrant) -> None:
    result = classify_fact(fact)
    assert result.quadrant is expected, result.rationale
    assert result.reason == ""
    assert 0.0 < result.confidence <= 1.0
    assert {cue.kind for cue in result.cues} & {"internal", "external"}
    assert {cue.kind for cue in result.cues} & {"positive", "negative"}


@pytest.mark.parametrize(
    ("plain", "negated", "before", "after"),
    [
        ("The product is profitable", "The product is not profitable", STR, WEA),
        ("Demand for e-bikes is growing", "Demand for e-bikes isn't growing", OPP, THR),
        ("We have debt", "We have no debt", WEA, STR),
        ("Costs are rising", "Costs are not rising", WEA, STR),
        ("产品质量稳定", "产品质量不稳定", STR, WEA),
    ],
)
def test_negation_flips_the_polarity_not_the_axis(
    plain: str, negated: str, before: Quadrant, after: Quadrant
) -> None:
    assert classify_fact(plain).quadrant is before
    assert classify_fact(negated).quadrant is after


def test_the_rationale_names_the_matched_cues() -> None:
    result = classify_fact("We have no debt")
    assert result.rationale == "internal: we, debt; positive: no debt"
    chinese = classify_fact("团队缺乏经验")
    # experience is an internal asset: lacking it reads as "no debt" does, reversed
    assert chinese.rationale == "internal: 团队, 经验; negative: 缺乏经验"


def test_an_absence_word_with_nothing_to_negate_reads_as_a_shortfall() -> None:
    result = classify_fact("We have no mobile app")
    assert result.quadrant is WEA
    assert "negative: no" in result.rationale


def test_possessive_our_does_not_make_an_external_fact_internal() -> None:
    assert classify_fact("Our competitors are weak").quadrant is OPP
    # but "we lack" is still about us, even when an external word follows
    assert classify_fact("我们缺少海外渠道").quadrant is WEA


@pytest.mark.parametrize(
    ("fact", "reason"),
    [
        ("The office is in Berlin", "no internal or external cue; no positive or negative cue"),
        ("We moved offices last year", "no positive or negative cue"),
        ("Our brand is strong but costs are rising", "positive and negative cues balance"),
        ("Strong brand in a growing market", "internal and external cues balance"),
        ("   ", "empty fact"),
    ],
)
def test_undecidable_facts_say_why(fact: str, reason: str) -> None:
    result = classify_fact(fact)
    assert result.quadrant is None
    assert result.confidence == 0.0
    assert result.reason.startswith(reason)


def test_confidence_drops_when_cues_pull_both_ways() -> None:
    clean = classify_fact("Our website is slow and outdated")
    mixed = classify_fact("New regulation could raise compliance costs")
    assert clean.confidence == 1.0
    assert mixed.quadrant is THR and mixed.confidence < 0.5


def test_classification_is_deterministic() -> None:
    facts = [fact for fact, _ in LABELLED]
    assert [classify_fact(f) for f in facts] == [classify_fact(f) for f in facts]


def entries(result: Mapping[str, object], key: str) -> list[dict[str, Any]]:
    value = result[key]
    assert isinstance(value, list)
    return value


FACTS = (
    "We have a loyal customer base",  # S
    "Our engineering team is highly skilled",  # S
    "Demand for electric bikes is growing in Europe",  # O
    "Fierce competition from low-cost rivals",  # T
    "The office is in Berlin",  # unclassified
)


def test_tows_pairs_classified_items_of_the_right_quadrants() -> None:
    board, overflow = fact_items([classify_fact(f) for f in FACTS], 4)
    assert overflow == []
    strategies = tows(board, 3)
    so = strategies[Cell.SO]
    assert [s.pair for s in so] == [(FACTS[0], FACTS[2]), (FACTS[1], FACTS[2])]  # only 2 exist
    assert all(s.source is Source.FACT for s in so)
    assert so[0].text == f'Use "{FACTS[0]}" to seize "{FACTS[2]}".'
    assert [s.pair for s in strategies[Cell.ST]] == [(FACTS[0], FACTS[3]), (FACTS[1], FACTS[3])]
    # no weakness among the facts: the W cells stay empty until filled
    assert strategies[Cell.WO] == [] and strategies[Cell.WT] == []


def test_tows_uses_every_item_before_reusing_one() -> None:
    facts = [
        "We have a loyal customer base",
        "Our engineering team is highly skilled",
        "Demand for electric bikes is growing in Europe",
        "New government subsidies support e-bike purchases",
    ]
    board, _ = fact_items([classify_fact(f) for f in facts], 4)
    pairs = [s.pair for s in tows(board, 4)[Cell.SO]]
    assert pairs[:2] == [(facts[0], facts[2]), (facts[1], facts[3])]
    assert len(set(pairs)) == 4


def test_facts_beyond_the_item_count_overflow_by_confidence() -> None:
    facts = [
        "Production costs are low",  # 0.8
        "Our website is slow and outdated",  # W
        "Our engineering team is highly skilled",  # 1.0
        "Our brand is well known and trusted in the region",  # 1.0
    ]
    board, overflow = fact_items([classify_fact(f) for f in facts], 2)
    assert [item.item for item in board[STR]] == [facts[2], facts[3]]
    assert [c.fact for c in overflow] == [facts[0]]


ANALYSIS = """Some opening words.

## Strengths
- We have a loyal customer base
- Strong dealer network

**Threats:** Battery prices may spike

## SO
1. Bundle service plans with new models

## Summary
- This line belongs to no quadrant
"""


def test_model_lines_are_read_under_headings_and_inline_labels() -> None:
    items, strategies = parse_analysis(ANALYSIS + "\n劣势：售后网点少\n")
    assert items[STR] == ["We have a loyal customer base", "Strong dealer network"]
    assert items[THR] == ["Battery prices may spike"]
    assert items[WEA] == ["售后网点少"]
    assert items[OPP] == []
    assert strategies[Cell.SO] == ["Bundle service plans with new models"]
    assert all("no quadrant" not in line for lines in items.values() for line in lines)


def test_quadrants_fill_to_the_template_count_with_labelled_sources() -> None:
    template = SwotTemplate(items=3, strategies=2, opportunities_prompt="Look at export markets")
    spec = SwotSpec(subject="an e-bike maker", facts=FACTS, template=template)
    result = build_result(spec, [classify_fact(f) for f in FACTS], ANALYSIS)
    json.dumps(result)
    assert all(len(entries(result, quadrant.value)) == 3 for quadrant in Quadrant)
    strengths = entries(result, "strengths")
    assert [e["source"] for e in strengths] == ["fact", "fact", "model"]
    # the model's repeat of a fact is not counted twice
    assert strengths[2]["item"] == "Strong dealer network"
    weaknesses = entries(result, "weaknesses")
    assert [e["source"] for e in weaknesses] == ["placeholder"] * 3
    assert all(e["item"].startswith(PLACEHOLDER_PREFIX) for e in weaknesses)
    opportunities = entries(result, "opportunities")
    assert [e["source"] for e in opportunities] == ["fact", "placeholder", "placeholder"]
    assert opportunities[1]["item"] == "(to research) Look at export markets (an e-bike maker)"
    threats = entries(result, "threats")
    assert [e["item"] for e in threats][:2] == [FACTS[3], "Battery prices may spike"]


def test_every_tows_cell_gets_the_asked_number_of_strategies() -> None:
    template = SwotTemplate(items=2, strategies=3)
    spec = SwotSpec(subject="an e-bike maker", facts=FACTS, template=template)
    result = build_result(spec, [classify_fact(f) for f in FACTS], ANALYSIS)
    strategies = result["strategies"]
    assert isinstance(strategies, dict)
    assert {cell: len(cell_entries) for cell, cell_entries in strategies.items()} == dict.fromkeys(
        ("SO", "ST", "WO", "WT"), 3
    )
    so = [entry["source"] for entry in strategies["SO"]]
    assert so == ["fact", "fact", "model"]  # two fact pairs, then the model's own SO line
    assert strategies["SO"][2]["strategy"] == "Bundle service plans with new models"
    # weaknesses are only placeholders: nothing to pair, so research prompts fill the cell
    wo = strategies["WO"]
    assert [entry["source"] for entry in wo] == ["placeholder"] * 3
    assert len({entry["strategy"] for entry in wo}) == 3


def test_without_facts_or_model_lines_placeholders_fill_every_slot() -> None:
    spec = SwotSpec(subject="a bakery", template=SwotTemplate(items=MAX_ITEMS, strategies=5))
    result = build_result(spec, [], "")
    for quadrant in Quadrant:
        items = entries(result, quadrant.value)
        assert len(items) == MAX_ITEMS
        assert len({entry["item"] for entry in items}) == MAX_ITEMS
        assert all(entry["source"] == "placeholder" for entry in items)
        assert all("a bakery" in entry["item"] for entry in items)
    assert result["unclassified"] == [] and result["overflow"] == []


def test_confident_model_sentences_count_when_there_are_no_headings() -> None:
    spec = SwotSpec(subject="a bakery", template=SwotTemplate(items=1))
    analysis = "Bread is tasty. Our staff are highly skilled bakers. Rent is a thing."
    result = build_result(spec, [], analysis)
    strengths = entries(result, "strengths")
    assert strengths[0]["item"] == "Our staff are highly skilled bakers."
    assert strengths[0]["source"] == "model"
    assert strengths[0]["rationale"].startswith("model sentence; internal: our, staff")


def test_unclassified_facts_are_reported_in_the_result() -> None:
    spec = SwotSpec(subject="an e-bike maker", facts=FACTS)
    result = build_result(spec, [classify_fact(f) for f in FACTS], "")
    assert result["unclassified"] == [
        {
            "fact": "The office is in Berlin",
            "reason": "no internal or external cue; no positive or negative cue",
            "cues": [],
        }
    ]


async def test_swot_streams_rules_then_analysis_then_the_result() -> None:
    template = SwotTemplate(items=2, strategies=2, threats_prompt="Focus on supply risks")
    spec = SwotSpec(
        subject="an electric bike startup", facts=FACTS, template=template, seed=4, max_tokens=40
    )
    engine = DevEngine(token_delay=0)
    pieces = [p async for p in swot(engine, spec, model="m", request_id="r")]

    assert pieces[0] == Stage(0.0, "classifying")
    usage_at = next(i for i, p in enumerate(pieces) if isinstance(p, Usage))
    assert all(isinstance(p, Delta) and p.tokens == 0 for p in pieces[1:usage_at])
    assert pieces[usage_at + 1] == Stage(0.5, "analysis")
    assert isinstance(pieces[-1], Structured)
    assert sum(isinstance(p, Structured) for p in pieces) == 1
    model_deltas = [p for p in pieces[usage_at + 2 : -1] if isinstance(p, Delta) and p.tokens]
    assert sum(d.tokens for d in model_deltas) == 40

    classifications = [classify_fact(f) for f in FACTS]
    prompt = build_prompt(spec, classifications)
    assert pieces[usage_at] == Usage(prompt_tokens=count_tokens(prompt))
    assert prompt.endswith("\nan electric bike startup")
    assert "For threats: Focus on supply risks" in prompt

    rules = "".join(p.text for p in pieces[1:usage_at] if isinstance(p, Delta))
    assert rules.startswith("# SWOT analysis: an electric bike startup\n")
    assert "\n## Strengths\n- We have a loyal customer base — internal: we" in rules
    assert "\n## Unclassified facts\n- The office is in Berlin — no internal" in rules
    assert f'- Use "{FACTS[0]}" to seize "{FACTS[2]}".' in rules
    assert "_Needs facts among both weaknesses and opportunities._" in rules

    data = pieces[-1].data
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {
        "strengths",
        "weaknesses",
        "opportunities",
        "threats",
        "strategies",
        "unclassified",
        "overflow",
    }
    assert all(len(entries(data, q.value)) == 2 for q in Quadrant)
    assert entries(data, "unclassified")[0]["fact"] == "The office is in Berlin"

    again = [p async for p in swot(engine, spec, model="m", request_id="r")]
    assert again == pieces  # seeded: a retry reproduces the text it already sent


# A newcomer's first SWOT (issue 12): five plain facts about a small business, no SWOT words.
COFFEE_SHOP = "Opening a small coffee shop near a university"
PLAIN_FACTS = [
    ("ten years as a barista", STR),
    ("a chain opens across the street", THR),
    ("rent is rising", THR),
    ("we have no savings", WEA),
    ("more students are enrolling every year", OPP),
]
PLAIN_FACTS_MORE = [
    ("I know how to roast beans", STR),
    ("Our staff have little experience", WEA),
    ("A competitor opened nearby", THR),
    ("Coffee bean prices are rising", THR),
    ("A new campus opens next year", OPP),
    ("Foot traffic is growing", OPP),
    ("The rival café across the street closed", OPP),
    ("我有十年咖啡师经验", STR),
    ("对面开了一家连锁店", THR),
    ("租金上涨", THR),
    ("附近新开了一所大学", OPP),
]


@pytest.mark.parametrize(("fact", "expected"), PLAIN_FACTS + PLAIN_FACTS_MORE)
def test_ordinary_business_facts_are_placed(fact: str, expected: Quadrant) -> None:
    result = classify_fact(fact)
    assert result.quadrant is expected, (result.rationale, result.reason)


def test_a_little_is_not_a_negation() -> None:
    assert classify_fact("We run a little shop with loyal regulars").quadrant is STR


@pytest.mark.parametrize(
    ("subject", "in_text"),
    [
        (COFFEE_SHOP, "opening a small coffee shop near a university"),
        ("A bakery", "a bakery"),
        ("an e-bike maker", "an e-bike maker"),
        ("Tesla", "Tesla"),
        ("AI tutoring for kids", "AI tutoring for kids"),
        ("Beijing hot-pot restaurant", "Beijing hot-pot restaurant"),
        ("开一家咖啡店", "开一家咖啡店"),
    ],
)
def test_a_subject_starts_in_lower_case_only_when_it_is_no_name(subject: str, in_text: str) -> None:
    assert in_sentence(subject) == in_text


def test_research_questions_read_as_sentences_for_a_plan_and_for_a_business() -> None:
    for subject, written in [(COFFEE_SHOP, COFFEE_SHOP[0].lower() + COFFEE_SHOP[1:]),
                             ("An e-bike maker", "an e-bike maker")]:  # fmt: skip
        spec = SwotSpec(subject=subject, template=SwotTemplate(items=MAX_ITEMS, strategies=2))
        result = build_result(spec, [], "")
        questions = [e["item"] for q in Quadrant for e in entries(result, q.value)]
        assert questions[0] == (
            f"{PLACEHOLDER_PREFIX} What would {written} do better than the alternatives?"
        )
        for question in questions:
            text = question.removeprefix(f"{PLACEHOLDER_PREFIX} ")
            assert text[0].isupper() and text.endswith("?") and written in text, text
            assert subject not in text  # never capitalised mid-sentence
            # the subject is never asked about a past it may not have, nor owned
            assert f"{written}'s" not in text and "has " + written not in text
        strategies = result["strategies"]
        assert isinstance(strategies, dict)
        assert strategies["SO"][0]["strategy"] == (
            f"{PLACEHOLDER_PREFIX} option 1: how could {written} use strengths to seize "
            "opportunities?"
        )


def test_the_five_plain_facts_fill_every_quadrant_and_pair_up() -> None:
    facts = tuple(fact for fact, _ in PLAIN_FACTS)
    spec = SwotSpec(subject=COFFEE_SHOP, facts=facts, template=SwotTemplate(items=2))
    result = build_result(spec, [classify_fact(f) for f in facts], "")
    assert result["unclassified"] == []
    assert entries(result, "threats")[0]["item"] == "a chain opens across the street"
    strategies = result["strategies"]
    assert isinstance(strategies, dict)
    assert strategies["ST"][0]["pair"] == [
        "ten years as a barista",
        "a chain opens across the street",
    ]

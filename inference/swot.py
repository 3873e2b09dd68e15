"""The SWOT tool's engine: rules classify the facts, then the model explains and extends.

Each fact is placed in a quadrant by cue words (internal or external, positive or negative,
with negation), in English and basic Chinese; TOWS strategies pair the classified items. The
model's analysis streams after the rule output, and each quadrant is then filled to the
template's count: facts first, then the model's lines, then labelled research prompts.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

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
PLACEHOLDER_PREFIX = "(to research)"

# Model sentences without a SWOT heading count only when the rules are this sure of them.
_MODEL_SENTENCE_CONFIDENCE = 0.6


class Quadrant(StrEnum):
    """The four SWOT quadrants, in display order."""

    STRENGTHS = "strengths"
    WEAKNESSES = "weaknesses"
    OPPORTUNITIES = "opportunities"
    THREATS = "threats"


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


_SIDES = {
    Cell.SO: (Quadrant.STRENGTHS, Quadrant.OPPORTUNITIES),
    Cell.ST: (Quadrant.STRENGTHS, Quadrant.THREATS),
    Cell.WO: (Quadrant.WEAKNESSES, Quadrant.OPPORTUNITIES),
    Cell.WT: (Quadrant.WEAKNESSES, Quadrant.THREATS),
}
_GOALS = {
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
_QUESTIONS = {
    Quadrant.STRENGTHS: (
        "What does {s} do better than its alternatives?",
        "Which skills, assets or know-how give {s} an edge?",
        "What do customers value most about {s}?",
        "Which cost or resource advantages does {s} have?",
        "What results, awards or references prove the quality of {s}?",
        "Which partnerships or channels strengthen {s}?",
        "What about {s} is unique or hard to copy?",
        "Where has {s} improved most recently?",
    ),
    Quadrant.WEAKNESSES: (
        "Where does {s} fall short of its competitors?",
        "Which skills or resources does {s} lack?",
        "What do customers complain about regarding {s}?",
        "Which costs weigh most on {s}?",
        "Which processes slow {s} down?",
        "Where does {s} depend on a single person, supplier or channel?",
        "What would a critic say about {s}?",
        "Which past setbacks of {s} could repeat?",
    ),
    Quadrant.OPPORTUNITIES: (
        "Which market trends could favour {s}?",
        "Which customer needs around {s} are still unmet?",
        "Which new segments or regions could {s} reach?",
        "Which technology shifts could help {s}?",
        "Which policy or regulatory changes could benefit {s}?",
        "Which partnerships could open doors for {s}?",
        "Which gaps left by competitors could {s} fill?",
        "Which events or seasons could lift demand for {s}?",
    ),
    Quadrant.THREATS: (
        "Which competitors could take share from {s}?",
        "Which regulations could restrict {s}?",
        "Which economic changes could hurt demand for {s}?",
        "Which technology shifts could make {s} obsolete?",
        "Which suppliers or rising costs could squeeze {s}?",
        "Which changes in customer behaviour could hurt {s}?",
        "Which legal or reputational risks does {s} face?",
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


# --- The rule engine -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sense:
    axis: int = 0  # +1 internal, -1 external
    polarity: int = 0  # standalone polarity; a quantity noun's polarity when nothing moves it
    quantity: int = 0  # +1 good when it goes up (demand), -1 bad when it goes up (costs)
    direction: int = 0  # +1 up (rising), -1 down (falling)
    negator: bool = False
    absence: bool = False  # a negator that reads as a shortfall when it negates nothing
    boundary: bool = False
    weight: int = 1


_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_TOKEN = re.compile(
    r"[\u3400-\u9fff]+|[^\W_\u3400-\u9fff]+(?:['&-][^\W_\u3400-\u9fff]+)*|\S",
)
_WORDLIKE = re.compile(r"[^\W_]")

# Phrases join their words with "_"; Chinese words are matched inside runs of characters.
_ENTRIES = (
    (
        """we our ours us team teams staff employee employees brand brands cost costs product
        products process processes patent patents margin margins cash debt culture management
        founder founders engineer engineers engineering operations factory factories
        manufacturing inventory budget funding capital reputation talent skills expertise
        know-how r&d codebase infrastructure capacity pricing service company firm
        organisation organization headcount turnover churn retention loyalty quality website
        app portfolio in-house morale workforce sales revenue revenues profit profits expenses
        supply_chain customer_base user_base market_share 我们 我司 公司 团队 品牌 成本 产品
        技术 研发 管理 员工 资金 渠道 质量 专利 流程 现金流 供应链 生产 工厂 人才 口碑 知名度
        销量 利润 收入 营收 市场份额""",
        _Sense(axis=1),
    ),
    (
        """market markets competitor competitors competition rival rivals regulation
        regulations regulatory regulator regulators law laws legislation policy policies
        government trend trends economy economic recession inflation currency consumer
        consumers industry sector tariff tariffs subsidy subsidies tax taxes pandemic entrant
        entrants substitute substitutes geopolitical war climate demographic demographics
        population election supplier suppliers imports exports sanctions foreign overseas
        abroad international demand spending compliance customer_demand consumer_demand
        interest_rates interest_rate exchange_rate exchange_rates new_entrants price_war
        energy_prices raw_materials raw_material eu dollar 市场 竞争 竞争对手 对手
        政策 法规 监管 趋势 经济 客户需求 需求 消费者 行业 政府
        关税 补贴 汇率 利率 通胀 疫情 替代品 海外 国际""",
        _Sense(axis=-1),
    ),
    (
        """strong advantage advantages loyal leading leader efficient innovative innovation
        award awards award-winning profitable untapped skilled experienced talented popular
        trusted robust reliable excellent good great best superior unique proprietary patented
        patent patents growing expanding expansion favorable favourable boom booming incentive
        incentives subsidy subsidies growth successful success partnership partnerships easing
        deregulation affordable agile diversified well-known well_known recognised recognized
        established solid healthy enough sufficient accelerating 领先 强 强大 优秀 忠诚 高效
        创新 盈利 扩大 支持 利好 补贴 稳定 成熟 良好 受欢迎 放宽""",
        _Sense(polarity=1),
    ),
    (
        """weak poor limited slow outdated legacy aging ageing shortage shortages risk risks
        risky expensive costly inefficient fragile unstable volatile volatility uncertain
        uncertainty problem problems issue issues complaint complaints delay delays delayed bug
        bugs buggy vulnerable vulnerability dependent dependence dependency reliance reliant
        loss losses losing decline declining downturn recession inflation saturated saturation
        fierce intense aggressive lawsuit lawsuits litigation fines penalty penalties ban
        banned sanctions stricter tightening crisis disruption struggling burnout scarce
        unprofitable deficit difficult failure failures failed obsolete understaffed
        underfunded bottleneck bottlenecks shrinking falling slowing attrition unemployment hurt
        hurts hurting harm harms damage damages threaten threatens complain complains complained
        depends depend relies rely
        风险 不足 落后 亏损 激烈 收紧 短缺 依赖 老化 流失 投诉 下滑 萎缩 困难 问题 弱 过高""",
        _Sense(polarity=-1),
    ),
    ("market_leader", _Sense(axis=1, polarity=1)),
    ("strength strengths 优势", _Sense(axis=1, polarity=1, weight=2)),
    ("""weakness weaknesses 劣势""", _Sense(axis=1, polarity=-1, weight=2)),
    ("""opportunity opportunities 机会 机遇""", _Sense(axis=-1, polarity=1, weight=2)),
    ("""threat threats 威胁""", _Sense(axis=-1, polarity=-1, weight=2)),
    (
        """demand sales revenue revenues margin margins profit profits market_share share
        growth adoption loyalty satisfaction retention market markets productivity efficiency
        quality awareness funding cash reach users customers traffic visibility capacity
        spending subsidy subsidies incentives customer_demand consumer_demand customer_base
        user_base 需求 客户需求 销量 销售额 收入 营收 利润 份额 市场份额 知名度 忠诚度 满意度
        用户 客户 增长 补贴""",
        _Sense(quantity=1),
    ),
    (
        """cost costs price prices competition competitor competitors rival rivals debt churn
        turnover attrition inflation interest_rates interest_rate tax taxes tariff tariffs
        regulation regulations complaints risk risks barriers defects bugs delays unemployment
        dependence wages salaries rent expenses energy_prices raw_materials entrants
        new_entrants substitutes 成本 价格 竞争
        竞争对手 对手 债务 关税 利率 监管 通胀""",
        _Sense(quantity=-1),
    ),
    # Rivals and debt read as bad news when nothing says they are shrinking.
    (
        """competition competitor competitors rival rivals debt entrant entrants new_entrants
        substitute substitutes 竞争对手 对手 债务 竞争 替代品""",
        _Sense(polarity=-1),
    ),
    (
        """high higher highest rising rise rises rose increasing increase increases increased
        raise raises growing grows grew grown more surging soaring strong stronger intense
        intensifying fierce stricter tighter tightening record expanding booming accelerating
        many flooding flood floods 强 上涨 上升 增长 增加 提高 提升 高 加剧 激烈 收紧 扩大""",
        _Sense(direction=1),
    ),
    (
        """low lower lowest falling fall falls fell declining decline declines declined
        decreasing decrease decreases decreased shrinking shrink shrinks shrank reduced reduce
        reduces reducing less fewer few weak weaker weakening easing eased loosening slowing
        slower slowed dropping dropped drop drops limited exiting exit exits leaving
        withdrawing bankrupt 下降 下滑 减少 降低 低 萎缩 放缓 放宽 弱 退出""",
        _Sense(direction=-1),
    ),
    ("""not never hardly nor 不 没 未 非""", _Sense(negator=True)),
    (
        """no lack lacks lacking lack_of without 没有 无 缺乏 缺少""",
        _Sense(negator=True, absence=True),
    ),
    (
        """but however although though whereas while yet 但 但是 然而 而 不过""",
        _Sense(boundary=True),
    ),
    # Ordinary words that would otherwise be split into negators or cues: 未来 is "future".
    ("""未来 不断 持续 无论 非常 不少 并非 无法""", _Sense()),
)


def _merge(a: _Sense, b: _Sense) -> _Sense:
    return _Sense(
        axis=a.axis or b.axis,
        polarity=a.polarity or b.polarity,
        quantity=a.quantity or b.quantity,
        direction=a.direction or b.direction,
        negator=a.negator or b.negator,
        absence=a.absence or b.absence,
        boundary=a.boundary or b.boundary,
        weight=max(a.weight, b.weight),
    )


def _build_lexicon() -> dict[tuple[str, ...], _Sense]:
    lexicon: dict[tuple[str, ...], _Sense] = {}
    for words, sense in _ENTRIES:
        for word in words.split():
            key = tuple(word.split("_"))
            lexicon[key] = _merge(lexicon.get(key, _Sense()), sense)
    return lexicon


_LEXICON = _build_lexicon()
_CJK_WORDS = frozenset(key[0] for key in _LEXICON if _CJK_RUN.fullmatch(key[0]))
_LONGEST_CJK = max(len(word) for word in _CJK_WORDS)
_PHRASE_LENGTH = max(len(key) for key in _LEXICON)
_POSSESSIVES = frozenset(("our", "我们", "我司"))
_NEGATION_REACH = 3  # a negator applies to cues at most this many words after it
_BEFORE, _AFTER = 3, 5  # how far a direction word may stand before or after its noun


@dataclass(frozen=True)
class _Unit:
    index: int
    clause: int
    text: str
    sense: _Sense


@dataclass(frozen=True)
class Cue:
    """One matched cue: its kind (internal, external, positive, negative) and the words."""

    kind: str
    text: str
    weight: int = 1


@dataclass(frozen=True)
class Classification:
    """A fact's quadrant (None when the cues do not decide it), its cues and a confidence."""

    fact: str
    quadrant: Quadrant | None
    cues: tuple[Cue, ...]
    confidence: float
    reason: str = ""

    @property
    def rationale(self) -> str:
        """The cues grouped by kind, e.g. `internal: our, team; positive: skilled`."""
        groups: dict[str, list[str]] = {}
        for cue in self.cues:
            groups.setdefault(cue.kind, []).append(cue.text)
        return "; ".join(f"{kind}: {', '.join(texts)}" for kind, texts in groups.items())


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN.finditer(text.lower().replace("\u2019", "'")):
        token = match.group()
        if not _CJK_RUN.fullmatch(token):
            tokens.append(token)
            continue
        start = 0
        while start < len(token):  # greedy longest match against the Chinese cue words
            for size in range(min(_LONGEST_CJK, len(token) - start), 0, -1):
                piece = token[start : start + size]
                if size == 1 or piece in _CJK_WORDS:
                    tokens.append(piece)
                    start += size
                    break
    return tokens


def _units(text: str) -> list[_Unit]:
    tokens = _tokens(text)
    units: list[_Unit] = []
    clause = position = 0
    while position < len(tokens):
        for size in range(min(_PHRASE_LENGTH, len(tokens) - position), 0, -1):
            key = tuple(tokens[position : position + size])
            sense = _LEXICON.get(key)
            if sense is not None or size == 1:
                break
        token = tokens[position]
        if sense is None and token.endswith("n't"):
            sense = _Sense(negator=True)
        if sense is None and not _WORDLIKE.match(token):
            sense = _Sense(boundary=True)
        sense = sense or _Sense()
        if sense.boundary:
            clause += 1
        else:
            units.append(_Unit(len(units), clause, " ".join(key), sense))
        position += size
    return units


def _contributions(units: Sequence[_Unit]) -> list[tuple[int, tuple[_Unit, ...]]]:
    """(polarity, the words behind it) per polarity cue, direction words matched to nouns."""
    moved: dict[int, list[_Unit]] = {}
    spent: set[int] = set()
    for word in (unit for unit in units if unit.sense.direction):
        # The nearest noun of the clause wins; ties go to the noun before the word.
        for distance in range(1, max(_BEFORE, _AFTER) + 1):
            before = word.index - distance if distance <= _AFTER else -1
            after = word.index + distance if distance <= _BEFORE else len(units)
            near = [units[i] for i in (before, after) if 0 <= i < len(units)]
            noun = next((n for n in near if n.sense.quantity and n.clause == word.clause), None)
            if noun is not None:
                moved.setdefault(noun.index, []).append(word)
                spent.add(word.index)
                break
    found: list[tuple[int, tuple[_Unit, ...]]] = []
    for unit in units:
        if unit.index in spent:
            continue
        if unit.index in moved:
            for word in moved[unit.index]:
                pair = tuple(sorted((unit, word), key=lambda u: u.index))
                found.append((unit.sense.quantity * word.sense.direction, pair))
        elif unit.sense.polarity:
            found.append((unit.sense.polarity, (unit,)))
    return found


def classify_fact(fact: str) -> Classification:
    """Place one fact in a quadrant by its cue words; deterministic, no model involved."""
    text = " ".join(fact.split())
    if not text:
        return Classification(text, None, (), 0.0, "empty fact")
    units = _units(text)
    cues: list[Cue] = []
    scores = {"internal": 0, "external": 0, "positive": 0, "negative": 0}
    for unit in units:
        if unit.sense.axis and not _possessive_of_external(unit, units):
            kind = "internal" if unit.sense.axis > 0 else "external"
            cues.append(Cue(kind, unit.text, unit.sense.weight))
    used: set[int] = set()
    for polarity, parts in _contributions(units):
        reach = {
            units[i]
            for part in parts
            for i in range(max(0, part.index - _NEGATION_REACH), part.index)
            if units[i].clause == part.clause
        }
        flips = sorted((u for u in reach if u.sense.negator), key=lambda u: u.index)
        negated = len(flips) % 2 == 1
        if negated:
            used.update(negator.index for negator in flips)
        words = sorted((*parts, *flips), key=lambda u: u.index)
        weight = max(part.sense.weight for part in parts)
        kind = "positive" if (polarity > 0) != negated else "negative"
        cues.append(Cue(kind, _join(words), weight))
    for negator in units:
        if negator.sense.absence and negator.index not in used:
            cues.append(Cue("negative", negator.text))
    for cue in cues:
        scores[cue.kind] += cue.weight
    cues.sort(key=lambda cue: list(scores).index(cue.kind))
    return _decide(text, tuple(cues), scores)


def _possessive_of_external(unit: _Unit, units: Sequence[_Unit]) -> bool:
    # "our competitors" and "我们的竞争对手" are about the outside world, not about us.
    if unit.text not in _POSSESSIVES:
        return False
    for following in units[unit.index + 1 : unit.index + 3]:
        if following.sense.axis < 0:
            return True
        if following.sense != _Sense():
            return False  # "we lack overseas channels" is still about us
    return False


def _join(units: Iterable[_Unit]) -> str:
    text = " ".join(unit.text for unit in units)
    return re.sub(r"(?<=[\u3400-\u9fff]) (?=[\u3400-\u9fff])", "", text)


def _decide(text: str, cues: tuple[Cue, ...], scores: Mapping[str, int]) -> Classification:
    inside, outside = scores["internal"], scores["external"]
    good, bad = scores["positive"], scores["negative"]
    reasons = []
    if inside == outside:
        reasons.append(
            "internal and external cues balance" if inside else "no internal or external cue"
        )
    if good == bad:
        reasons.append(
            "positive and negative cues balance" if good else "no positive or negative cue"
        )
    if reasons:
        return Classification(text, None, cues, 0.0, "; ".join(reasons))
    quadrant = {
        (True, True): Quadrant.STRENGTHS,
        (True, False): Quadrant.WEAKNESSES,
        (False, True): Quadrant.OPPORTUNITIES,
        (False, False): Quadrant.THREATS,
    }[(inside > outside, good > bad)]
    axis = abs(inside - outside) / (inside + outside)
    tone = abs(good - bad) / (good + bad)
    evidence = min(1.0, 0.6 + 0.1 * (inside + outside + good + bad))
    return Classification(text, quadrant, cues, round(axis * tone * evidence, 2))


# --- Quadrants, strategies and the result ----------------------------------------------------


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
        for cell, (inner, outer) in _SIDES.items()
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
        key = strategy.pair or (_key(strategy.text),)
        if key not in seen:
            seen.add(key)
            out.append(strategy)
    while subject is not None and len(out) < per_cell:
        question = f"option {len(out) + 1}: how could {subject} {_GOALS[cell]}?"
        out.append(Strategy(f"{PLACEHOLDER_PREFIX} {question}", (), Source.PLACEHOLDER))
    return out


def _from(items: Iterable[SwotItem], *sources: Source) -> list[SwotItem]:
    return [item for item in items if item.source in sources]


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


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


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
        questions += [question.format(s=subject) for question in _QUESTIONS[quadrant]]
        # Numbered prompts only matter when more items are asked for than MAX_ITEMS allows.
        questions += [f"{quadrant.value} of {subject}, point {n + 1}" for n in range(items)]
        why = f"too few facts and model lines for {quadrant.value}: a question to research"
        candidates += [
            SwotItem(f"{PLACEHOLDER_PREFIX} {question}", why, Source.PLACEHOLDER)
            for question in questions
        ]
        out = list(board[quadrant])[:items]
        keys = {_key(item.item) for item in out}
        for candidate in candidates:
            if len(out) < items and _key(candidate.item) not in keys:
                keys.add(_key(candidate.item))
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


def build_prompt(
    spec: SwotSpec,
    classifications: Sequence[Classification],
    strategies: Mapping[Cell, Sequence[Strategy]],
) -> str:
    """The model prompt: instructions, the rule output, and the subject on the last line."""
    template = spec.template or SwotTemplate()
    lines = [
        "You are a strategy analyst. Write a SWOT analysis followed by TOWS strategies.",
        "Use the headings Strengths, Weaknesses, Opportunities and Threats with up to "
        f"{template.items} bullet points each, then the headings SO, ST, WO and WT with up to "
        f"{template.strategies} strategies each.",
        "Explain why each classified fact belongs where it is, place the unclassified facts "
        "and extend the rule-based strategies.",
    ]
    for quadrant in Quadrant:
        if custom := " ".join(template.prompt(quadrant).split()):
            lines.append(f"For {quadrant.value}: {custom}")
    placed = [c for c in classifications if c.quadrant is not None]
    if placed:
        lines.append("Classified facts:")
        lines += [f"- [{c.quadrant}] {c.fact}" for c in placed]
    if unplaced := [c for c in classifications if c.quadrant is None]:
        lines.append("Unclassified facts:")
        lines += [f"- {c.fact}" for c in unplaced]
    if any(strategies.values()):
        lines.append("Rule-based strategies:")
        lines += [
            f"- {cell}: {s.text}" for cell, cell_list in strategies.items() for s in cell_list
        ]
    lines.append(" ".join(spec.subject.split()))
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
    for cell, (inner, outer) in _SIDES.items():
        lines = [f"- {strategy.text}\n" for strategy in strategies[cell]]
        needs = f"_Needs facts among both {inner.value} and {outer.value}._\n"
        chunks.append(f"\n### {cell}: {_GOALS[cell]}\n" + ("".join(lines) or needs))
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
    prompt = build_prompt(spec, classifications, rules)
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

"""The SWOT fact classifier: cue words place a fact in a quadrant, deterministically.

Each fact is tokenised (Chinese words matched greedily inside runs of characters), its words
looked up in a small bilingual lexicon of internal and external nouns, positive and negative
words, quantity nouns moved by direction words ("costs are rising"), negators and clause
boundaries; the scores decide the quadrant and a confidence. No model is involved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Quadrant(StrEnum):
    """The four SWOT quadrants, in display order."""

    STRENGTHS = "strengths"
    WEAKNESSES = "weaknesses"
    OPPORTUNITIES = "opportunities"
    THREATS = "threats"


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
        supply_chain customer_base user_base market_share i me my mine myself i'm i've i'd
        savings certification training recipe recipes menu 我们 我司 我 公司 团队 品牌 成本 产品
        技术 研发 管理 员工 资金 渠道 质量 专利 流程 现金流 供应链 生产 工厂 人才 口碑 知名度
        销量 利润 收入 营收 市场份额 积蓄 存款""",
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
        energy_prices raw_materials raw_material eu dollar rent rents lease leases landlord
        utilities utility_bills wages minimum_wage chain chains franchise franchises
        across_the_street next_door nearby down_the_street around_the_corner neighbourhood
        neighborhood campus university universities students tourists tourism residents
        commuters foot_traffic 市场 竞争 竞争对手 对手
        政策 法规 监管 趋势 经济 客户需求 需求 消费者 行业 政府
        关税 补贴 汇率 利率 通胀 疫情 替代品 海外 国际 租金 房租 房东 工资 连锁 连锁店 对面
        隔壁 附近 周边 学生 游客 居民 客流 人流 大学 高校 学校 校区 写字楼""",
        _Sense(axis=-1),
    ),
    (
        """strong advantage advantages loyal leading leader efficient innovative innovation
        award awards award-winning profitable untapped skilled experienced talented popular
        trusted robust reliable excellent good great best superior unique proprietary patented
        patent patents growing expanding expansion favorable favourable boom booming incentive
        incentives subsidy subsidies growth successful success partnership partnerships easing
        deregulation affordable agile diversified well-known well_known recognised recognized
        established solid healthy enough sufficient accelerating experience expert experts
        veteran seasoned certified qualified licensed trained 领先 强 强大 优秀 忠诚 高效
        创新 盈利 扩大 支持 利好 补贴 稳定 成熟 良好 受欢迎 放宽 经验丰富 熟练 擅长""",
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
        insufficient inadequate inexperienced unskilled
        underfunded bottleneck bottlenecks shrinking falling slowing attrition unemployment hurt
        hurts hurting harm harms damage damages threaten threatens complain complains complained
        depends depend relies rely
        风险 不足 落后 亏损 激烈 收紧 短缺 依赖 老化 流失 投诉 下滑 萎缩 困难 问题 弱 过高""",
        _Sense(polarity=-1),
    ),
    ("market_leader", _Sense(axis=1, polarity=1)),
    # Experience is an asset of whoever states it: "ten years as a barista".
    (
        """experience expertise know-how know_how skill skills years_as years_of_experience
        years_in_the_trade 经验 手艺 技能""",
        _Sense(axis=1, polarity=1),
    ),
    # What suppliers charge: outside our control, bad news when it goes up.
    (
        """bean_prices ingredient_prices supplier_prices commodity_prices food_prices
        milk_prices input_costs 原料价格 原材料 进货价""",
        _Sense(axis=-1, quantity=-1),
    ),
    ("strength strengths 优势", _Sense(axis=1, polarity=1, weight=2)),
    ("""weakness weaknesses 劣势""", _Sense(axis=1, polarity=-1, weight=2)),
    ("""opportunity opportunities 机会 机遇""", _Sense(axis=-1, polarity=1, weight=2)),
    ("""threat threats 威胁""", _Sense(axis=-1, polarity=-1, weight=2)),
    (
        """demand sales revenue revenues margin margins profit profits market_share share
        growth adoption loyalty satisfaction retention market markets productivity efficiency
        quality awareness funding cash reach users customers traffic visibility capacity
        spending subsidy subsidies incentives customer_demand consumer_demand customer_base
        user_base campus university universities students tourists tourism residents
        commuters foot_traffic savings 需求 客户需求 销量 销售额 收入 营收 利润 份额 市场份额
        知名度 忠诚度 满意度 用户 客户 增长 补贴 学生 游客 居民 客流 人流 积蓄 存款 大学 高校
        学校 校区 写字楼""",
        _Sense(quantity=1),
    ),
    (
        """cost costs price prices competition competitor competitors rival rivals debt churn
        turnover attrition inflation interest_rates interest_rate tax taxes tariff tariffs
        regulation regulations complaints risk risks barriers defects bugs delays unemployment
        dependence wages salaries rent rents lease leases expenses energy_prices raw_materials
        entrants new_entrants substitutes utilities utility_bills minimum_wage chain chains
        franchise franchises 成本 价格 竞争
        竞争对手 对手 债务 关税 利率 监管 通胀 租金 房租 工资 连锁 连锁店""",
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
        many flooding flood floods new open opens opened opening arrive arrives arrived
        arriving enter enters entered entering launch launches launched launching
        moves_in moving_in moved_in 强 上涨 上升 增长 增加 提高 提升 高 加剧 激烈 收紧 扩大
        开了 开业 开张 新开 入驻 进驻 涨 涨价 新""",
        _Sense(direction=1),
    ),
    (
        """low lower lowest falling fall falls fell declining decline declines declined
        decreasing decrease decreases decreased shrinking shrink shrinks shrank reduced reduce
        reduces reducing less fewer few weak weaker weakening easing eased loosening slowing
        slower slowed dropping dropped drop drops limited exiting exit exits leaving
        withdrawing bankrupt close closes closed closing 下降 下滑 减少 降低 低 萎缩 放缓
        放宽 弱 退出 关门 倒闭""",
        _Sense(direction=-1),
    ),
    ("""not never hardly nor little 不 没 未 非""", _Sense(negator=True)),
    (
        """no lack lacks lacking lack_of without 没有 无 缺乏 缺少""",
        _Sense(negator=True, absence=True),
    ),
    (
        """but however although though whereas while yet 但 但是 然而 而 不过""",
        _Sense(boundary=True),
    ),
    # Ordinary words that would otherwise be split into negators or cues: 未来 is "future",
    # "a little shop" negates nothing;
    # a counted noun ("一家连锁店") stays one word from the verb that moves it.
    (
        """a_little 未来 不断 持续 无论 非常 不少 并非 无法 一家 一所 一个 一座 一间 一批""",
        _Sense(),
    ),
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

"""The socialPost tool's engine: one brief, restyled for a social platform.

Each platform is a `Profile` (data, not code): how it counts length and its limit, its title
rule, hashtag syntax and count, emoji habit, tone, default language and the LoRA adapter that
carries its style. The model drafts freely; `finalize` then makes the draft a valid post.

Length (`count_length`), after NFC normalisation, is measured on the caption (body plus
hashtags); titles have their own rule, counted in characters:

- characters (Xiaohongshu 1000, Zhihu 20000, Douyin 55 for the video description, WeChat 20000
  for the article body, LinkedIn 3000, Instagram 2200): one per user-perceived character; an
  emoji with its skin tone, variation selector and ZWJ joins counts 1, links count as text.
- X (twitter-text v3, limit 280): code points in U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F
  and U+2032-U+2037 weigh 1, all others (CJK, ...) 2; an emoji sequence weighs 2; a link
  (http://, https:// or www.) weighs 23 whatever its length.
- Weibo (limit 2000): an ASCII character counts 1/2, any other character (CJK, full-width
  punctuation, an emoji sequence) 1; the total is rounded up; links count as their text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import accumulate

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

MAX_TOPIC_CHARS = 2000
MAX_TAGS = 10
MAX_TAG_CHARS = 30
MAX_TITLE_CHARS = 200
MAX_TONE_CHARS = 200
MAX_LANGUAGE_CHARS = 16
MAX_DRAFT_TOKENS = 4096
SEPARATOR = "\n\n---\n"
"""Between the streamed draft and the finalized post in the creation's text."""
ELLIPSIS = "\u2026"


class Platform(StrEnum):
    """A platform the post is styled for."""

    XIAOHONGSHU = "xiaohongshu"
    WEIBO = "weibo"
    ZHIHU = "zhihu"
    DOUYIN = "douyin"
    WECHAT = "wechat"
    X = "x"
    LINKEDIN = "linkedin"
    INSTAGRAM = "instagram"


class HashtagStyle(StrEnum):
    """`#tag#` with inner spaces kept (Weibo, Xiaohongshu topics) or `#Tag` without spaces."""

    WRAPPED = "wrapped"
    PREFIX = "prefix"


class TitleRule(StrEnum):
    """Whether a post has a title: never, when the user or the model gives one, or always."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True)
class Counting:
    """How a platform measures length: weights per character (or per code point), summed,
    divided by `divisor` and rounded up; `url_weight` None counts links as their text."""

    unit: str
    divisor: int = 1
    light: tuple[tuple[int, int], ...] = ()
    light_weight: int = 1
    heavy_weight: int = 1
    emoji_weight: int = 1
    url_weight: int | None = None
    per_code_point: bool = False


CHARACTERS = Counting("characters")
X_WEIGHTED = Counting(
    "weighted characters (CJK characters and emoji count 2, every link 23)",
    light=((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037)),
    heavy_weight=2,
    emoji_weight=2,
    url_weight=23,
    per_code_point=True,
)
WEIBO_HALVES = Counting(
    "characters (two Latin letters, digits or spaces count as one)",
    divisor=2,
    light=((0x0000, 0x007F),),
    heavy_weight=2,
    emoji_weight=2,
)


@dataclass(frozen=True)
class Profile:
    """A platform's rules and style; `hashtags` is the (min, max) count and `emoji_density`
    the (min, max) emojis per 100 visible characters."""

    display_name: str
    limit: int
    counting: Counting
    title: TitleRule
    title_limit: int
    hashtag_style: HashtagStyle
    hashtags: tuple[int, int]
    emoji_density: tuple[float, float]
    emoji_palette: tuple[str, ...]
    tone: str
    language: str
    lora_adapter: str
    draft_tokens: int
    digest_limit: int | None = None


_NO_TITLE = (TitleRule.NONE, 0)
PROFILES: dict[Platform, Profile] = {
    Platform.XIAOHONGSHU: Profile(
        "Xiaohongshu (RED) note", 1000, CHARACTERS, TitleRule.REQUIRED, 20,
        HashtagStyle.WRAPPED, (3, 10), (3.0, 8.0), ("✨", "💖", "🌟", "📍", "🍃", "💡"),
        "warm first-person sharing like a friend's tip, short paragraphs, practical details",
        "zh", "xhs-style-v1", 700,
    ),
    Platform.WEIBO: Profile(
        "Weibo post", 2000, WEIBO_HALVES, *_NO_TITLE,
        HashtagStyle.WRAPPED, (1, 3), (0.5, 3.0), ("🔥", "👍", "🎉", "😂", "💪"),
        "conversational and timely, a hook in the first sentence, a clear opinion",
        "zh", "weibo-style-v1", 300,
    ),
    Platform.ZHIHU: Profile(
        "Zhihu answer", 20000, CHARACTERS, TitleRule.OPTIONAL, 50,
        HashtagStyle.PREFIX, (1, 5), (0.0, 0.5), ("💡", "📌", "🤔"),
        "rigorous and structured long answer: conclusion first, then reasons and evidence",
        "zh", "zhihu-style-v1", 1200,
    ),
    Platform.DOUYIN: Profile(
        "Douyin video description", 55, CHARACTERS, *_NO_TITLE,
        HashtagStyle.PREFIX, (1, 3), (1.0, 8.0), ("🔥", "🎬", "😍", "👏", "✨"),
        "catchy and colloquial, a hook in the first words, invite viewers to watch to the end",
        "zh", "douyin-style-v1", 60,
    ),
    Platform.WECHAT: Profile(
        "WeChat official account article", 20000, CHARACTERS, TitleRule.REQUIRED, 64,
        HashtagStyle.PREFIX, (0, 3), (0.0, 1.0), ("📌", "👉", "💡"),
        "polished long-form article with subheadings, warm and informative",
        "zh", "wechat-article-v1", 1500, digest_limit=120,
    ),
    Platform.X: Profile(
        "X (Twitter) post", 280, X_WEIGHTED, *_NO_TITLE,
        HashtagStyle.PREFIX, (1, 2), (0.0, 3.0), ("🚀", "💡", "🔥", "👇", "✅"),
        "concise and punchy, one idea, a strong opening line",
        "en", "x-style-v1", 90,
    ),
    Platform.LINKEDIN: Profile(
        "LinkedIn post", 3000, CHARACTERS, *_NO_TITLE,
        HashtagStyle.PREFIX, (3, 5), (0.0, 2.0), ("💡", "📈", "✅", "🤝", "🚀"),
        "professional and insight-led, short lines, end with a question for comments",
        "en", "linkedin-style-v1", 500,
    ),
    Platform.INSTAGRAM: Profile(
        "Instagram caption", 2200, CHARACTERS, *_NO_TITLE,
        HashtagStyle.PREFIX, (3, 30), (2.0, 6.0), ("📸", "✨", "🌿", "💫", "🙌"),
        "visual and personal storytelling, a first line that stops the scroll",
        "en", "instagram-style-v1", 350,
    ),
}  # fmt: skip

_LANGUAGES = {"zh": "Simplified Chinese", "en": "English"}
_TITLE_GUIDES = {
    TitleRule.NONE: "No title.",
    TitleRule.OPTIONAL: "You may start with a line 'Title: ...' of at most {limit} characters.",
    TitleRule.REQUIRED: "Start with a line 'Title: ...' of at most {limit} characters.",
}
_STYLE_GUIDES = {
    HashtagStyle.WRAPPED: "a # on both sides, spaces allowed inside",
    HashtagStyle.PREFIX: "one # in front, no spaces (join words in CamelCase)",
}

_HASH = "#\uff03"
_URL = re.compile(r"(?:https?://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*[A-Za-z0-9/_#=&%~+]")
# A `#` after an ASCII word character (C#, a&#) starts no tag; CJK text may touch a topic.
_HASHTAG = re.compile(
    rf"(?<![A-Za-z0-9_&])[{_HASH}](?:"
    rf"(?P<wrapped>[^\s{_HASH}][^{_HASH}\n]{{0,{MAX_TAG_CHARS + 9}}}?)(?<!\s)(?:\[话题\])?[{_HASH}]"
    rf"|(?P<prefix>\w*[^\W\d]\w*))"
)
_TAG_NOISE = re.compile(rf"\[话题\]|[{_HASH}]")
_WORDS = re.compile(r"[^\W_]+")
_TITLE_LINE = re.compile(
    r"[ \t*]*(?:(?:title|标题)[ \t*]*[:\uff1a]|#{1,6}[ \t])[ \t*]*(?P<title>[^ \t*].*?)?[ \t*]*",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(
    r"(?:[\u3002\uff01\uff1f!?\u2026]+|\.(?=\s|$))[\"'\u201d\u2019\u300d\u300f\uff09)]*"
)
_STOPS = frozenset("\u3002\uff01\uff1f!?\u2026\n")
_CLOSERS = frozenset("\"'\u201d\u2019\u300d\u300f\uff09)")
_SOFT = "\uff0c\u3001\uff1b\uff1a,;: \t\n"
_SPACES = re.compile(r"[ \t]+")
_SPACE_BEFORE_MARK = re.compile(r" +(?=[,.!?;\uff0c\u3002\uff01\uff1f\uff1b])")
_KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9+'\-]*[A-Za-z0-9+]|[\u3400-\u9fff\uf900-\ufaff]+")
_CJK_FILLER = re.compile("[的了和与及在是就也都而把被让给从对向我你他她它们这那个些有吗呢吧啊很]+")
_STOPWORDS = frozenset({
    "a", "about", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "for", "from",
    "how", "in", "into", "is", "it", "its", "more", "most", "my", "of", "on", "or", "our", "that",
    "the", "their", "this", "to", "was", "we", "what", "when", "where", "which", "who", "why",
    "will", "with", "you", "your",
})  # fmt: skip
_EMOJI_RANGES = ((0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2B1B, 0x2B55), (0x231A, 0x23FA))
_CJK_RANGES = (
    (0x2E80, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF),
    (0x20000, 0x3FFFF),
)  # fmt: skip


@dataclass(frozen=True)
class Post:
    """A finished post: `text` renders title, body and hashtags; `length` is the platform's
    count of the caption (body plus hashtags), never above `limit`; `truncated` says the body
    or the hashtags were cut to fit; `digest` is the share-card summary (WeChat)."""

    title: str | None
    body: str
    hashtags: tuple[str, ...]
    text: str
    length: int
    limit: int
    truncated: bool
    digest: str | None = None


@dataclass(frozen=True)
class SocialSpec:
    """A social post request; refuses values beyond the MAX_* limits (lengths in code points).
    `max_tokens` None drafts the platform's usual length."""

    platform: Platform
    topic: str
    keywords: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    title: str | None = None
    tone: str | None = None
    language: str | None = None
    seed: int | None = None
    max_tokens: int | None = None
    temperature: float = 0.8

    def __post_init__(self) -> None:
        problems = _spec_problems(self)
        if problems:
            raise ValueError("; ".join(problems))


def _spec_problems(spec: SocialSpec) -> list[str]:
    problems = [] if spec.platform in PROFILES else [f"unknown platform {spec.platform!r}"]
    if not spec.topic.strip() or len(spec.topic) > MAX_TOPIC_CHARS:
        problems.append(f"topic must have 1 to {MAX_TOPIC_CHARS} characters")
    for name, tags in (("keywords", spec.keywords), ("hashtags", spec.hashtags)):
        if len(tags) > MAX_TAGS or any(not t.strip() or len(t) > MAX_TAG_CHARS for t in tags):
            problems.append(f"at most {MAX_TAGS} {name} of 1 to {MAX_TAG_CHARS} characters")
    for name, value, most in (
        ("title", spec.title, MAX_TITLE_CHARS),
        ("tone", spec.tone, MAX_TONE_CHARS),
        ("language", spec.language, MAX_LANGUAGE_CHARS),
    ):
        if value is not None and len(value) > most:
            problems.append(f"{name} must have at most {most} characters")
    if spec.max_tokens is not None and not 1 <= spec.max_tokens <= MAX_DRAFT_TOKENS:
        problems.append(f"max_tokens must be 1 to {MAX_DRAFT_TOKENS}")
    return problems


# -- characters and length -------------------------------------------------------------------


def _clean(text: str) -> str:
    """Pair up UTF-16 surrogates, drop lone ones, NFC, and Unix newlines."""
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")
    return unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")


def _in(char: str, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(low <= ord(char) <= high for low, high in ranges)


def _extends(char: str, previous: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")  # accents, FE0F, keycap
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or code == 0x200D
        or previous.endswith("\u200d")
        or 0xE0020 <= code <= 0xE007F  # subdivision flag tags
        or (
            0x1F1E6 <= code <= 0x1F1FF
            and len(previous) == 1
            and 0x1F1E6 <= ord(previous) <= 0x1F1FF
        )
    )


def _graphemes(text: str) -> list[str]:
    """User-perceived characters (close to UAX #29 for emoji, accents and flags)."""
    out: list[str] = []
    for char in text:
        if out and _extends(char, out[-1]):
            out[-1] += char
        else:
            out.append(char)
    return out


def _is_emoji(unit: str) -> bool:
    return not unit.isascii() and any(_in(c, _EMOJI_RANGES) or c in "\ufe0f\u20e3" for c in unit)


def _is_cjk(unit: str) -> bool:
    return _in(unit[0], _CJK_RANGES)


def _units(text: str, counting: Counting) -> list[str]:
    """Characters, with each link one unit where the platform weighs links as a whole."""
    if counting.url_weight is None:
        return _graphemes(text)
    units: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        units += _graphemes(text[last : match.start()])
        units.append(match.group())
        last = match.end()
    return units + _graphemes(text[last:])


def _cost(unit: str, counting: Counting) -> int:
    if counting.url_weight is not None and len(unit) > 4 and _URL.fullmatch(unit):
        return counting.url_weight
    if _is_emoji(unit):
        return counting.emoji_weight
    chars = unit if counting.per_code_point else unit[0]
    return sum(
        counting.light_weight if _in(c, counting.light) else counting.heavy_weight for c in chars
    )


def _count(text: str, counting: Counting) -> int:
    raw = sum(_cost(unit, counting) for unit in _units(text, counting))
    return -(-raw // counting.divisor)


def count_length(text: str, platform: Platform) -> int:
    """The length of `text` as `platform` counts it (see the module docstring)."""
    return _count(_clean(text), PROFILES[platform].counting)


def emoji_density(text: str) -> float:
    """Emojis per 100 visible (non-space) characters of `text`."""
    visible = [g for g in _graphemes(text) if not g.isspace()]
    return 100 * sum(map(_is_emoji, visible)) / len(visible) if visible else 0.0


# -- trimming ----------------------------------------------------------------------------------


def _sentence_cuts(units: Sequence[str]) -> list[int]:
    cuts: list[int] = []
    for index, unit in enumerate(units, 1):
        after = units[index] if index < len(units) else " "
        ends = unit in _STOPS or (unit == "." and after.isspace())
        follows = bool(cuts) and cuts[-1] == index - 1 and (unit in _CLOSERS or _is_emoji(unit))
        if ends or follows:
            cuts.append(index)
    return cuts


def _word_cut(units: Sequence[str], index: int) -> bool:
    before, after = units[index - 1], units[index]
    return (
        after.isspace() or before in _SOFT or _is_cjk(before) or _is_cjk(after) or _is_emoji(before)
    )


def _trim(text: str, budget: int, counting: Counting) -> tuple[str, bool]:
    """Cut `text` to `budget` at the last sentence end if that keeps half of what fits, else
    at a word boundary (any side of a CJK character) with an ellipsis if it fits."""
    room = budget * counting.divisor
    every = _units(text, counting)
    units = every[: max(room, 0) + 1]  # every unit weighs at least 1: the rest cannot fit
    costs = [_cost(unit, counting) for unit in units]
    if len(units) == len(every) and sum(costs) <= room:
        return text, False
    fits = sum(1 for total in accumulate(costs) if total <= room)
    sentence = max((cut for cut in _sentence_cuts(units) if cut <= fits), default=0)
    if sentence and 2 * sentence >= fits:
        return "".join(units[:sentence]).rstrip(), True
    ellipsis = _cost(ELLIPSIS, counting)
    if room < ellipsis:
        return "".join(units[:fits]).rstrip(), True
    fits = sum(1 for total in accumulate(costs) if total <= room - ellipsis)
    cut = next((i for i in range(fits, 0, -1) if _word_cut(units, i)), fits)
    kept = "".join(units[:cut]).rstrip(_SOFT)
    return (kept + ELLIPSIS if kept else ""), True


def _clip_title(title: str, limit: int) -> str:
    return _trim(" ".join(title.split()), limit, CHARACTERS)[0]


# -- hashtags ----------------------------------------------------------------------------------


def format_hashtag(tag: str, platform: Platform) -> str:
    """`tag` in the platform's syntax: `#data science#` (inner spaces kept) on Weibo and
    Xiaohongshu, `#DataScience` (words joined, CamelCase when several) elsewhere.
    Raises ValueError when nothing usable is left (a `#Tag` needs a letter)."""
    text = _TAG_NOISE.sub(" ", tag)
    if PROFILES[platform].hashtag_style is HashtagStyle.WRAPPED:
        bare = " ".join(text.split())
        if not _WORDS.search(bare):
            raise ValueError(f"no usable hashtag in {tag!r}")
        return f"#{bare}#"
    words = _WORDS.findall(text)
    if all(word.isdigit() for word in words):  # also when there are none
        raise ValueError(f"no usable hashtag in {tag!r}")
    if len(words) > 1:
        words = [w if any(c.isupper() for c in w) else w[:1].upper() + w[1:] for w in words]
    return "#" + "".join(words)


def _tag_matches(text: str) -> list[re.Match[str]]:
    # Links are blanked first so a URL's #fragment is not a tag.
    masked = _URL.sub(lambda match: " " * len(match.group()), text)
    return list(_HASHTAG.finditer(masked))


def _bare(match: re.Match[str]) -> str:
    return match.group("wrapped") or match.group("prefix")


def extract_hashtags(text: str) -> list[str]:
    """The hashtags in `text`, bare and in order, in either syntax (`#tag#`, Xiaohongshu's
    `#tag[话题]#`, `#tag`, also with a full-width #); not C#, not a link's #fragment.
    Like Weibo, `#a b#` is one tag with a space when nothing but `#` closes it."""
    return [_bare(match) for match in _tag_matches(text)]


def topic_keywords(topic: str) -> list[str]:
    """Hashtag candidates from a brief: its content words (3+ letters, no stopwords) and its
    CJK runs split at particles, kept when 2 to 10 characters long."""
    words: list[str] = []
    for match in _KEYWORD.finditer(topic):
        word = match.group()
        if word.isascii():
            if len(word) >= 3 and word.lower() not in _STOPWORDS:
                words.append(word)
        else:
            words += [part for part in _CJK_FILLER.split(word) if 2 <= len(part) <= 10]
    return words


def _strip_tags(text: str) -> tuple[str, list[str]]:
    """Take the hashtags out of the text: a tag inside a sentence leaves its words, leading and
    trailing ones go (with lines left empty); returns the text and the tags found."""
    found: list[str] = []
    lines: list[str] = []
    for line in text.split("\n"):
        matches = _tag_matches(line)
        if not matches:
            lines.append(line.rstrip())
            continue
        masked = list(line)
        for match in matches:
            masked[match.start() : match.end()] = " " * (match.end() - match.start())
        plain, parts, last = "".join(masked), [], 0
        for match in matches:
            found.append(_bare(match))
            inside = _WORDS.search(plain[: match.start()]) and _WORDS.search(plain[match.end() :])
            parts += [line[last : match.start()], _bare(match) if inside else ""]
            last = match.end()
        rebuilt = _SPACE_BEFORE_MARK.sub("", _SPACES.sub(" ", "".join(parts) + line[last:]))
        if rebuilt.strip():
            lines.append(rebuilt.strip(" \t"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip(), found


def _tag_key(tag: str) -> str:
    return "".join(_WORDS.findall(tag)).casefold()


def _choose_tags(platform: Platform, wanted: Iterable[str], padding: Iterable[str]) -> list[str]:
    """Rendered, de-duplicated tags: the wanted ones up to the maximum, then padding up to the
    minimum."""
    low, high = PROFILES[platform].hashtags
    chosen: dict[str, str] = {}
    for tags, cap in ((wanted, high), (padding, low)):
        for tag in tags:
            if len(chosen) >= cap:
                break
            try:
                rendered = format_hashtag(tag, platform)
            except ValueError:
                continue
            if len(_graphemes(rendered.strip(_HASH))) <= MAX_TAG_CHARS:
                chosen.setdefault(_tag_key(tag), rendered)
    return list(chosen.values())


# -- the post ----------------------------------------------------------------------------------


def _join(*parts: str | None) -> str:
    return "\n\n".join(part for part in parts if part)


def _split_title(text: str) -> tuple[str | None, str]:
    first, _, rest = text.strip().partition("\n")
    match = _TITLE_LINE.fullmatch(first)
    return (match.group("title"), rest) if match else (None, text)


def _title(profile: Profile, given: str | None, drafted: str | None, topic: str) -> str | None:
    if profile.title is TitleRule.NONE:
        return None
    title = (given or "").strip() or (drafted or "").strip()
    if not title and profile.title is TitleRule.REQUIRED:
        title = re.split(r"(?<=[\u3002\uff01\uff1f!?.])\s*", topic.strip())[0]
    return (_clip_title(title, profile.title_limit) or None) if title else None


def _sentence_ends(text: str) -> list[int]:
    ends = {match.end() for match in _SENTENCE_END.finditer(text)}
    ends |= {i for i, char in enumerate(text) if char == "\n" and i and text[i - 1] != "\n"}
    return sorted(ends | {len(text)})


def _add_emojis(body: str, profile: Profile) -> str:
    """Raise emoji density to the profile's minimum with palette emojis at sentence ends,
    spread evenly; text is only ever added to, never removed."""
    visible = [g for g in _graphemes(body) if not g.isspace()]
    have, need, low = sum(map(_is_emoji, visible)), 0, profile.emoji_density[0]
    while visible and (have + need) * 100 < low * (len(visible) + need):
        need += 1
    ends = _sentence_ends(body)
    picks = [ends[(2 * j + 1) * len(ends) // (2 * need)] for j in range(need)]
    palette = profile.emoji_palette
    for j in reversed(range(need)):  # right to left keeps the earlier offsets valid
        at = picks[j]
        pad = " " if at and body[at - 1].isascii() and not body[at - 1].isspace() else ""
        body = body[:at] + pad + palette[j % len(palette)] + body[at:]
    return body


def _fit(text: str, tags: list[str], profile: Profile) -> tuple[str, list[str], bool]:
    """Body and tags within the limit: tags may take half of it, the body the rest after
    emojis are added; the budget shrinks until the caption fits."""
    counting, limit = profile.counting, profile.limit
    kept = list(tags)
    while kept and _count(" ".join(kept), counting) > limit // 2:
        kept.pop()
    block = " ".join(kept)
    budget = limit - (_count("\n\n" + block, counting) if block else 0)
    while True:
        body, cut = _trim(text, budget, counting)
        body = _add_emojis(body, profile)
        over = _count(_join(body, block), counting) - limit
        if over <= 0:
            return body, kept, cut or len(kept) < len(tags)
        budget -= over


def finalize(
    draft: str,
    *,
    platform: Platform,
    topic: str,
    hashtags: Sequence[str],
    title: str | None,
    keywords: Sequence[str] = (),
) -> Post:
    """Make a model draft a valid post: hashtags re-rendered in the platform syntax, counted
    and de-duplicated (requested first, then the draft's, padded from keywords and the topic);
    the title rule applied; emojis added up to the platform's density; the body cut so the
    caption fits the limit."""
    profile = PROFILES[platform]
    drafted_title, text = _split_title(_clean(draft))
    if drafted_title and profile.title is TitleRule.NONE:  # keep the words, lose the markup
        text, drafted_title = f"{drafted_title}\n{text}", None
    text, found = _strip_tags(text)
    padding = [*keywords, *topic_keywords(topic)]
    tags = _choose_tags(platform, [*map(_clean, hashtags), *found], map(_clean, padding))
    body, tags, truncated = _fit(text, tags, profile)
    caption = _join(body, " ".join(tags))
    final_title = _title(profile, _clean(title or ""), drafted_title, _clean(topic))
    digest = (
        profile.digest_limit and _trim(" ".join(body.split()), profile.digest_limit, CHARACTERS)[0]
    )
    return Post(
        title=final_title,
        body=body,
        hashtags=tuple(tags),
        text=_join(final_title, caption),
        length=_count(caption, profile.counting),
        limit=profile.limit,
        truncated=truncated,
        digest=digest or None,
    )


# -- the engine --------------------------------------------------------------------------------


def build_prompt(spec: SocialSpec) -> str:
    """The model prompt from the platform profile; the user's brief comes last."""
    profile = PROFILES[spec.platform]
    language = spec.language or profile.language
    low, high = profile.hashtags
    sparse, dense = profile.emoji_density
    lines = [
        f"Write a {profile.display_name} in {_LANGUAGES.get(language, language)}.",
        f"Tone: {spec.tone or profile.tone}.",
        f"Length: at most {profile.limit} {profile.counting.unit}, hashtags included.",
        f"Emoji: {sparse:g} to {dense:g} per 100 characters, such as "
        + " ".join(profile.emoji_palette[:4])
        + ".",
        _TITLE_GUIDES[profile.title].format(limit=profile.title_limit),
        f"Hashtags: {low} to {high} at the end, {_STYLE_GUIDES[profile.hashtag_style]}, "
        f"like {format_hashtag('topic words', spec.platform)}.",
    ]
    if profile.digest_limit:
        lines.append(f"The opening sentences become a {profile.digest_limit}-character digest.")
    if spec.hashtags:
        lines.append(
            "Use these hashtags: " + " ".join(_choose_tags(spec.platform, spec.hashtags, ()))
        )
    if spec.keywords:
        lines.append("Work in these keywords: " + ", ".join(spec.keywords) + ".")
    return "\n".join([*lines, "Brief:", spec.topic.strip()])


async def social_post(
    engine: Engine, spec: SocialSpec, *, model: str, request_id: str
) -> AsyncIterator[Piece]:
    """Stream a draft from the platform's LoRA adapter, then the finalized post after
    `SEPARATOR` and its structured form."""
    profile = PROFILES[spec.platform]
    prompt = build_prompt(spec)
    request = GenerationRequest(
        request_id=request_id,
        model=model,
        prompt=prompt,
        max_tokens=spec.max_tokens or profile.draft_tokens,
        temperature=spec.temperature,
        seed=spec.seed,
        parameters={"lora_adapter": profile.lora_adapter},
    )
    yield Usage(prompt_tokens=count_tokens(prompt))
    yield Stage(0.0, "drafting")
    parts: list[str] = []
    async for delta in engine.stream(request):
        parts.append(delta.text)
        yield delta
    yield Stage(0.9, "formatting")
    post = finalize(
        "".join(parts),
        platform=spec.platform,
        topic=spec.topic,
        hashtags=spec.hashtags,
        title=spec.title,
        keywords=spec.keywords,
    )
    yield Delta(SEPARATOR + post.text, tokens=0)
    yield Structured(
        {
            "platform": str(spec.platform),
            "title": post.title,
            "body": post.body,
            "hashtags": list(post.hashtags),
            "text": post.text,
            "length": post.length,
            "limit": post.limit,
            "truncated": post.truncated,
            "digest": post.digest,
            "lora_adapter": profile.lora_adapter,
        }
    )

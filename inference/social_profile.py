"""Social platform profiles: each platform's length rule, title rule, hashtags and style.

A `Profile` is data, not code: the `Counting` it measures length by and its limit, its title
rule, hashtag syntax and count, emoji habit, tone, default language and the LoRA adapter that
carries its style. `PROFILES` holds one per `Platform`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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

"""The socialPost tool's engine: one brief, restyled for a social platform.

Each platform is a `Profile` (data, not code): how it counts length and its limit, its title
rule, hashtag syntax and count, emoji habit, tone, default language and the LoRA adapter that
carries its style. The model drafts freely; `finalize` then makes the draft a valid post.

Counting and trimming live in `social_length`, hashtags in `social_hashtag`, the platform
profiles in `social_profile`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
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
from inference.social_hashtag import (
    MAX_TAG_CHARS,
    choose_tags,
    extract_hashtags,
    format_hashtag,
    strip_tags,
    topic_keywords,
)
from inference.social_length import (
    ELLIPSIS,
    clean,
    clip_title,
    count,
    count_length,
    emoji_density,
    graphemes,
    is_emoji,
    trim,
)
from inference.social_profile import (
    CHARACTERS,
    PROFILES,
    WEIBO_HALVES,
    X_WEIGHTED,
    Counting,
    HashtagStyle,
    Platform,
    Profile,
    TitleRule,
)

__all__ = [
    "CHARACTERS",
    "ELLIPSIS",
    "MAX_DRAFT_TOKENS",
    "MAX_LANGUAGE_CHARS",
    "MAX_TAGS",
    "MAX_TAG_CHARS",
    "MAX_TITLE_CHARS",
    "MAX_TONE_CHARS",
    "MAX_TOPIC_CHARS",
    "PROFILES",
    "SEPARATOR",
    "WEIBO_HALVES",
    "X_WEIGHTED",
    "Counting",
    "HashtagStyle",
    "Platform",
    "Post",
    "Profile",
    "SocialSpec",
    "TitleRule",
    "build_prompt",
    "count_length",
    "emoji_density",
    "extract_hashtags",
    "finalize",
    "format_hashtag",
    "social_post",
    "topic_keywords",
]

MAX_TOPIC_CHARS = 2000
MAX_TAGS = 10
MAX_TITLE_CHARS = 200
MAX_TONE_CHARS = 200
MAX_LANGUAGE_CHARS = 16
MAX_DRAFT_TOKENS = 4096
SEPARATOR = "\n\n---\n"
"""Between the streamed draft and the finalized post in the creation's text."""


_LANGUAGES = {"zh": "Simplified Chinese", "en": "English"}
_TITLE_GUIDES = {
    TitleRule.OPTIONAL: "You may start with a line 'Title: ...' of at most {limit} characters.",
    TitleRule.REQUIRED: "Start with a line 'Title: ...' of at most {limit} characters.",
}
_STYLE_GUIDES = {
    HashtagStyle.WRAPPED: "a # on both sides, spaces allowed inside",
    HashtagStyle.PREFIX: "one # in front, no spaces (join words in CamelCase)",
}

_TITLE_LINE = re.compile(
    r"[ \t*]*(?:(?:title|标题)[ \t*]*[:\uff1a]|#{1,6}[ \t])[ \t*]*(?P<title>[^ \t*].*?)?[ \t*]*",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(
    r"(?:[\u3002\uff01\uff1f!?\u2026]+|\.(?=\s|$))[\"'\u201d\u2019\u300d\u300f\uff09)]*"
)


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
    return (clip_title(title, profile.title_limit) or None) if title else None


def _sentence_ends(text: str) -> list[int]:
    ends = {match.end() for match in _SENTENCE_END.finditer(text)}
    ends |= {i for i, char in enumerate(text) if char == "\n" and i and text[i - 1] != "\n"}
    return sorted(ends | {len(text)})


def _add_emojis(body: str, profile: Profile) -> str:
    """Raise emoji density to the profile's minimum with palette emojis at sentence ends,
    spread evenly; text is only ever added to, never removed."""
    visible = [g for g in graphemes(body) if not g.isspace()]
    have, need, low = sum(map(is_emoji, visible)), 0, profile.emoji_density[0]
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
    while kept and count(" ".join(kept), counting) > limit // 2:
        kept.pop()
    block = " ".join(kept)
    budget = limit - (count("\n\n" + block, counting) if block else 0)
    while True:
        body, cut = trim(text, budget, counting)
        body = _add_emojis(body, profile)
        over = count(_join(body, block), counting) - limit
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
    drafted_title, text = _split_title(clean(draft))
    if drafted_title and profile.title is TitleRule.NONE:  # keep the words, lose the markup
        text, drafted_title = f"{drafted_title}\n{text}", None
    text, found = strip_tags(text)
    padding = [*keywords, *topic_keywords(topic)]
    tags = choose_tags(platform, [*map(clean, hashtags), *found], map(clean, padding))
    body, tags, truncated = _fit(text, tags, profile)
    caption = _join(body, " ".join(tags))
    final_title = _title(profile, clean(title or ""), drafted_title, clean(topic))
    digest = (
        profile.digest_limit and trim(" ".join(body.split()), profile.digest_limit, CHARACTERS)[0]
    )
    return Post(
        title=final_title,
        body=body,
        hashtags=tuple(tags),
        text=_join(final_title, caption),
        length=count(caption, profile.counting),
        limit=profile.limit,
        truncated=truncated,
        digest=digest or None,
    )


# -- the engine --------------------------------------------------------------------------------


def build_prompt(spec: SocialSpec) -> str:
    """The model prompt from the platform profile: one sentence that says what to write, the
    profile's rules in short lines, then the user's brief. The finishing step enforces the
    rules on whatever comes back; the prompt only makes a good draft likelier."""
    profile = PROFILES[spec.platform]
    language = spec.language or profile.language
    low, high = profile.hashtags
    sparse, dense = profile.emoji_density
    lines = [
        f"Write a {profile.display_name} in {_LANGUAGES.get(language, language)}, "
        f"{spec.tone or profile.tone}, of at most {profile.limit} {profile.counting.unit} "
        "(hashtags included).",
        f"End with {low} to {high} hashtags, {_STYLE_GUIDES[profile.hashtag_style]}, "
        f"like {format_hashtag('topic words', spec.platform)}.",
        f"Use {sparse:g} to {dense:g} emoji per 100 characters, such as "
        + " ".join(profile.emoji_palette[:4])
        + ".",
    ]
    if profile.title is not TitleRule.NONE:
        lines.append(_TITLE_GUIDES[profile.title].format(limit=profile.title_limit))
    if profile.digest_limit:
        lines.append(f"The opening sentences become a {profile.digest_limit}-character digest.")
    if spec.hashtags:
        lines.append(
            "Use these hashtags: " + " ".join(choose_tags(spec.platform, spec.hashtags, ()))
        )
    if spec.keywords:
        lines.append("Work in these keywords: " + ", ".join(spec.keywords) + ".")
    return "\n".join([*lines, "The post is about this:", spec.topic.strip()])


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

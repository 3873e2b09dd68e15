"""Hashtags on social platforms: rendered in each platform's syntax, found, chosen.

`#tag#` with inner spaces (Weibo, Xiaohongshu topics) or `#Tag` without; tags are taken out of
a draft's text, de-duplicated and counted to the platform's range, padded from the brief.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from inference.social_length import URL, graphemes
from inference.social_profile import PROFILES, HashtagStyle, Platform

MAX_TAG_CHARS = 30

_HASH = "#\uff03"
# A `#` after an ASCII word character (C#, a&#) starts no tag; CJK text may touch a topic.
_HASHTAG = re.compile(
    rf"(?<![A-Za-z0-9_&])[{_HASH}](?:"
    rf"(?P<wrapped>[^\s{_HASH}][^{_HASH}\n]{{0,{MAX_TAG_CHARS + 9}}}?)(?<!\s)(?:\[话题\])?[{_HASH}]"
    rf"|(?P<prefix>\w*[^\W\d]\w*))"
)
_TAG_NOISE = re.compile(rf"\[话题\]|[{_HASH}]")
_WORDS = re.compile(r"[^\W_]+")
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
    masked = URL.sub(lambda match: " " * len(match.group()), text)
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


def strip_tags(text: str) -> tuple[str, list[str]]:
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


def choose_tags(platform: Platform, wanted: Iterable[str], padding: Iterable[str]) -> list[str]:
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
            if len(graphemes(rendered.strip(_HASH))) <= MAX_TAG_CHARS:
                chosen.setdefault(_tag_key(tag), rendered)
    return list(chosen.values())

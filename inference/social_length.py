"""Characters and length as social platforms count them, and cutting text to fit.

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
from collections.abc import Iterable, Sequence
from itertools import accumulate

from inference.social_profile import CHARACTERS, PROFILES, Counting, Platform

ELLIPSIS = "\u2026"

URL = re.compile(r"(?:https?://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*[A-Za-z0-9/_#=&%~+]")
_STOPS = frozenset("\u3002\uff01\uff1f!?\u2026\n")
_CLOSERS = frozenset("\"'\u201d\u2019\u300d\u300f\uff09)")
_SOFT = "\uff0c\u3001\uff1b\uff1a,;: \t\n"
_EMOJI_RANGES = ((0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2B1B, 0x2B55), (0x231A, 0x23FA))
_CJK_RANGES = (
    (0x2E80, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF),
    (0x20000, 0x3FFFF),
)  # fmt: skip


def clean(text: str) -> str:
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


def graphemes(text: str) -> list[str]:
    """User-perceived characters (close to UAX #29 for emoji, accents and flags)."""
    out: list[str] = []
    for char in text:
        if out and _extends(char, out[-1]):
            out[-1] += char
        else:
            out.append(char)
    return out


def is_emoji(unit: str) -> bool:
    """Whether a user-perceived character is an emoji (with its modifiers)."""
    return not unit.isascii() and any(_in(c, _EMOJI_RANGES) or c in "\ufe0f\u20e3" for c in unit)


def _is_cjk(unit: str) -> bool:
    return _in(unit[0], _CJK_RANGES)


def _units(text: str, counting: Counting) -> list[str]:
    """Characters, with each link one unit where the platform weighs links as a whole."""
    if counting.url_weight is None:
        return graphemes(text)
    units: list[str] = []
    last = 0
    for match in URL.finditer(text):
        units += graphemes(text[last : match.start()])
        units.append(match.group())
        last = match.end()
    return units + graphemes(text[last:])


def _cost(unit: str, counting: Counting) -> int:
    if counting.url_weight is not None and len(unit) > 4 and URL.fullmatch(unit):
        return counting.url_weight
    if is_emoji(unit):
        return counting.emoji_weight
    chars = unit if counting.per_code_point else unit[0]
    return sum(
        counting.light_weight if _in(c, counting.light) else counting.heavy_weight for c in chars
    )


def count(text: str, counting: Counting) -> int:
    """The length of already cleaned `text` under `counting`, rounded up."""
    raw = sum(_cost(unit, counting) for unit in _units(text, counting))
    return -(-raw // counting.divisor)


def count_length(text: str, platform: Platform) -> int:
    """The length of `text` as `platform` counts it (see the module docstring)."""
    return count(clean(text), PROFILES[platform].counting)


def emoji_density(text: str) -> float:
    """Emojis per 100 visible (non-space) characters of `text`."""
    visible = [g for g in graphemes(text) if not g.isspace()]
    return 100 * sum(map(is_emoji, visible)) / len(visible) if visible else 0.0


# -- trimming ----------------------------------------------------------------------------------


def _sentence_cuts(units: Sequence[str]) -> list[int]:
    cuts: list[int] = []
    for index, unit in enumerate(units, 1):
        after = units[index] if index < len(units) else " "
        ends = unit in _STOPS or (unit == "." and after.isspace())
        follows = bool(cuts) and cuts[-1] == index - 1 and (unit in _CLOSERS or is_emoji(unit))
        if ends or follows:
            cuts.append(index)
    return cuts


def _word_cut(units: Sequence[str], index: int) -> bool:
    before, after = units[index - 1], units[index]
    return (
        after.isspace() or before in _SOFT or _is_cjk(before) or _is_cjk(after) or is_emoji(before)
    )


def trim(text: str, budget: int, counting: Counting) -> tuple[str, bool]:
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


def clip_title(title: str, limit: int) -> str:
    """`title` on one line, cut to `limit` characters."""
    return trim(" ".join(title.split()), limit, CHARACTERS)[0]

"""Person names, only where a cheap detector is precise: next to a title or a cue.

English: one to three capitalised words (or initials) after a title (`Mr`, `Mrs`, `Ms`, `Miss`,
`Mx`, `Dr`, `Prof`, `Sir`, `Dame`) or after `My name is`, `Name:`, `Full name:`, `Contact:`,
and after a Chinese label (`联系人：John Smith`, `我叫Tom`). Chinese: a common
surname and one or two given-name characters next to a cue, either before
(`叫`, `我是`, `联系人`, `姓名`, `收件人`, ...) or after (`先生`, `女士`, `老师`,
`同学`, `经理`, `医生`, ...). A surname and a title alone (`王先生`) are not
masked. Names without a cue, lower-case names and rarer surnames are missed on
purpose: without a cue, `高兴`, `王国` and `李子` are words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from resolvers.guard.pii_name_data import (
    COMPOUND_SURNAMES,
    NOT_GIVEN_NAME,
    SURNAMES,
    WORDS,
)
from resolvers.guard.pii_span import Kind, Span

_RANK = {char: rank for rank, char in enumerate(SURNAMES)}
_HAN = re.compile(r"[\u4e00-\u9fff]")

_TITLES = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Professor|Sir|Dame)"
_WORD = r"(?:(?:Mc|Mac|O')?[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+(?:-[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+)?|[A-Z]\.)"
_NAME = rf"{_WORD}(?:[ \t]+{_WORD}){{0,2}}"
_TITLED = re.compile(rf"(?<![A-Za-z])(?:{_TITLES}\.?[ \t]+)+(?P<name>{_NAME})")
# `Name:` alone or a person's name (`Full name:`), not `File name:` or `Host name:`.
_NAME_LABEL = (
    r"(?:(?<![A-Za-z])(?:[Ff]ull|[Ff]irst|[Ll]ast|[Gg]iven|[Ff]amily|[Cc]ustomer|[Pp]atient)"
    r"[ \t]+name|(?<![A-Za-z][ \t])(?<![A-Za-z])[Nn]ame)[ \t]*:"
)
_CUED = re.compile(
    rf"(?:(?<![A-Za-z])(?:[Mm]y name is|[Cc]ontact(?: person)?[ \t]*:)|{_NAME_LABEL}"
    rf"|联系人|姓名|收件人|收货人|寄件人|负责人|我叫)[ \t:]*(?P<name>{_NAME})"
)
# `123 Main Dr` is a street: a number and a capitalised word before `Dr`.
_STREET = re.compile(r"[0-9]+[ \t]+[A-Z][a-z]+[ \t]+\Z")
# Capitalised words that end (or are not) a name.
_NOT_NAME_WORDS = (
    "The A An And Or Of In On At To For From With By Is Was Will Has Had Who Please Thanks"
    " Dear Hi Hello Mr Mrs Ms Miss Mx Dr Prof Professor Sir Dame Monday Tuesday Wednesday"
    " Thursday Friday Saturday Sunday January February March April May June July August"
    " September October November December Street Road Avenue Drive President Chairman"
    " Chairwoman Chair Minister Secretary Governor Mayor Speaker Ambassador Chancellor"
)
_NOT_NAME = frozenset(_NOT_NAME_WORDS.split())

_BEFORE = re.compile(
    r"(?:叫|我是|联系人|姓名|收件人|收货人|寄件人|患者|负责人|经办人|申请人|签名|署名|作者)[ \t:]*"
)
_AFTER = re.compile(
    r"(?:先生|女士|小姐|老师|同学|经理|医生|教授|主任|律师|博士|总监|院长|校长|护士|师傅|阿姨"
    r"|工程师|警官|会计|主管|处长|局长|科长|部长)(?!们)"
)


def _latin(match: re.Match[str]) -> Span | None:
    kept: list[re.Match[str]] = []
    for word in re.finditer(r"\S+", match["name"]):
        if word.group() in _NOT_NAME:
            break
        kept.append(word)
    while kept and kept[-1].group().endswith("."):  # a trailing initial may be a full stop
        kept.pop()
    if not kept:
        return None
    start = match.start("name")
    key = " ".join(word.group() for word in kept)
    return Span(Kind.PERSON, start, start + kept[-1].end(), key)


def _english(text: str) -> Iterator[Span]:
    for match in _TITLED.finditer(text):
        if match.group().startswith("Dr") and _STREET.search(text, 0, match.start()):
            continue
        span = _latin(match)
        if span is not None:
            yield span
    for match in _CUED.finditer(text):
        span = _latin(match)
        if span is not None:
            yield span


def _is_given(char: str) -> bool:
    return bool(_HAN.match(char)) and char not in NOT_GIVEN_NAME


def _person(text: str, start: int, end: int) -> Span | None:
    name = text[start:end]
    surname = 2 if name[:2] in COMPOUND_SURNAMES else 1
    if name[: surname + 1] in WORDS or not all(map(_is_given, name[surname:])):
        return None
    return Span(Kind.PERSON, start, end, name)


def _named_after(text: str, at: int) -> Span | None:
    """The name right after a cue ending at `at`: a surname and 1-2 given-name characters."""
    surname = 2 if text[at : at + 2] in COMPOUND_SURNAMES else 1
    if surname == 1 and text[at : at + 1] not in _RANK:
        return None
    given = 0
    while given < 2 and at + surname + given < len(text) and _is_given(text[at + surname + given]):
        given += 1
    return _person(text, at, at + surname + given) if given else None


def _named_before(text: str, cue: int) -> Span | None:
    """The name right before a cue starting at `cue`. Of the two readings, three characters or
    two, the one with the commoner surname is tried first (`向李明老师`: 李 is far commoner
    than 向); a preposition before a surname and a title (`请向王经理`) is no name."""
    for length in (4, 3):
        if cue >= length and text[cue - length : cue - length + 2] in COMPOUND_SURNAMES:
            return _person(text, cue - length, cue)
    readings = [length for length in (3, 2) if cue >= length and text[cue - length] in _RANK]
    readings.sort(key=lambda length: _RANK[text[cue - length]])
    for length in readings:
        start = cue - length
        if text[start] in NOT_GIVEN_NAME and text[start + 1] in _RANK:
            continue
        span = _person(text, start, cue)
        if span is not None:
            return span
    return None


def _chinese(text: str) -> Iterator[Span]:
    for match in _BEFORE.finditer(text):
        span = _named_after(text, match.end())
        if span is not None:
            yield span
    for match in _AFTER.finditer(text):
        span = _named_before(text, match.start())
        if span is not None:
            yield span


def persons(folded: str) -> Iterator[Span]:
    """Names after English titles and next to Chinese cues; the key is the name."""
    yield from _english(folded)
    if _HAN.search(folded):
        yield from _chinese(folded)

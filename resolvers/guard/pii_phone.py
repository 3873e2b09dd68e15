"""Phone numbers: Chinese mobiles by pattern, the rest through Google's libphonenumber.

A Chinese mobile is `1[3-9]x xxxx xxxx` (spaces or dashes allowed, `+86`/`0086` optional).
Other numbers are what `phonenumbers.PhoneNumberMatcher` finds valid (leniency VALID) read as
Chinese, American or British numbers (Chinese first in text with Han characters, last
otherwise), or international ones (`+` or `00`). A national number written as bare digits
(`2125551234`) is only taken after a phone label (`tel`, `call`, `电话`): unlabelled, it is
as likely an order or account number. Numbers after an order, tracking or
product label are never taken. The key is the number in E.164 (`+8613800138000`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers

from resolvers.guard.pii_span import Kind, Span, after_label, not_personal

# Which region reads a national number first decides its key: CN for text with Han characters.
REGIONS = ("CN", "US", "GB")
_LATIN_REGIONS = ("US", "GB", "CN")
_HAN = re.compile(r"[\u4e00-\u9fff]")

_CN_MOBILE = re.compile(
    r"(?<![0-9A-Za-z+])(?:(?:\+|00)86[ \-]?|\(\+?86\)[ \-]?)?"
    r"(1[3-9][0-9])[ \-]?([0-9]{4})[ \-]?([0-9]{4})(?![0-9A-Za-z])"
)
_PHONE_LABEL = re.compile(
    r"(?:(?<![A-Za-z])(?:tel|phone|telephone|call|mobile|cell|fax|whatsapp|contact|ring|text)"
    r"(?:[ \t]*(?:number|no\.?|me|us|him|her|at|on))*"
    r"|(?<![A-Za-z])(?:my|our|his|her|your)[ \t]+(?:phone[ \t]+)?number(?:[ \t]+is)?"
    r"|电话|手机|座机|致电|拨打|联系方式|联系电话|热线|号码)[ \t:#.\-]*\Z",
    re.IGNORECASE,
)
_FORMATTING = frozenset(" -.()/")
# The matcher costs about a millisecond per number-like run per region, so it reads only the
# runs with seven digits or more (the shortest valid number, country code included), with a
# little context either side: the character before, an extension after.
_RUN = re.compile(r"[+(]?[0-9](?:[ \-.()/]{0,3}[0-9])*")
_MIN_DIGITS = 7
_BEFORE, _AFTER = 4, 16
_MAX_TRIES = 50  # invalid candidates per window: bounds degenerate input (`1234 ` * 2000)


def _windows(folded: str) -> Iterator[tuple[int, int]]:
    start = end = -1
    for run in _RUN.finditer(folded):
        if sum(char.isdigit() for char in run.group()) < _MIN_DIGITS:
            continue
        low, high = max(0, run.start() - _BEFORE), min(len(folded), run.end() + _AFTER)
        if low > end >= 0:
            yield start, end
            start = -1
        start, end = (low if start < 0 else start), high
    if end >= 0:
        yield start, end


def _cn_mobiles(folded: str) -> Iterator[Span]:
    for match in _CN_MOBILE.finditer(folded):
        if not not_personal(folded, match.start()):
            yield Span(Kind.PHONE, match.start(), match.end(), "+86" + "".join(match.groups()))


def _written_as_phone(raw: str) -> bool:
    # International, with a trunk prefix, or grouped: not how order numbers are written.
    return raw.lstrip("(").startswith(("+", "0")) or not _FORMATTING.isdisjoint(raw)


def phones(folded: str) -> Iterator[Span]:
    """Chinese mobiles, then numbers valid in one of `REGIONS` or international ones."""
    yield from _cn_mobiles(folded)
    windows = list(_windows(folded))
    for region in REGIONS if _HAN.search(folded) else _LATIN_REGIONS:
        for low, high in windows:
            matcher = phonenumbers.PhoneNumberMatcher(
                folded[low:high],
                region,
                leniency=phonenumbers.Leniency.VALID,
                max_tries=_MAX_TRIES,
            )
            for match in matcher:
                start, end = low + match.start, low + match.end
                if not_personal(folded, start):
                    continue
                if _written_as_phone(match.raw_string) or after_label(folded, start, _PHONE_LABEL):
                    number = phonenumbers.format_number(
                        match.number, phonenumbers.PhoneNumberFormat.E164
                    )
                    yield Span(Kind.PHONE, start, end, number)

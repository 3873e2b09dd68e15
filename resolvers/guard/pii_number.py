"""Chinese resident ID numbers and bank card numbers, recognised by their check digits.

An ID is 18 characters (`6-8-4` groups may be split by one space or dash): a province code,
a birth date between 1900 and today, and an ISO 7064 MOD 11-2 check character (`X` for 10).
The old 15-digit IDs have no check digit and are not matched. A card is 13-19 digits, unbroken
or in groups (4, then 3-6 each) split by one kind of separator, with a card network's leading
digits (2221-2720, 3, 4, 5, 6) and a valid Luhn check digit. An 18-digit number shaped like an
ID (province and birth date) is never a card: it is an ID with a typo, or no ID at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

from resolvers.guard.pii_span import Kind, Span, not_personal

_CN_ID = re.compile(
    r"(?<![0-9A-Za-z])([0-9]{6})([ \-]?)([0-9]{8})\2([0-9]{3}[0-9Xx])(?![0-9A-Za-z])"
)
# North, north-east, east, south-central, south-west, north-west; Taiwan, HK, Macau, permits.
_PROVINCES = frozenset(
    [
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        71,
        81,
        82,
        83,
    ]
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

_CARD = re.compile(
    r"(?<![0-9A-Za-z+\-.])"
    r"(?:[0-9]{13,19}|[0-9]{4}([ \-])[0-9]{3,6}(?:\1[0-9]{3,6}){1,3}(?!\1[0-9]{3}))"
    r"(?![0-9A-Za-z]|[.\-][0-9])"
)
_SEPARATORS = str.maketrans("", "", " -")


def _born(digits: str) -> bool:
    try:
        birth = date(int(digits[6:10]), int(digits[10:12]), int(digits[12:14]))
    except ValueError:
        return False
    return date(1900, 1, 1) <= birth <= date.today()


def _id_shaped(digits: str) -> bool:
    return int(digits[:2]) in _PROVINCES and _born(digits)


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits of an ID."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def is_cn_id(number: str) -> bool:
    """Whether `number` (18 characters, no separators) is a well-formed resident ID."""
    return (
        len(number) == 18
        and number[:17].isdigit()
        and _id_shaped(number)
        and id_check_char(number[:17]) == number[17].upper()
    )


def luhn_ok(digits: str) -> bool:
    """Whether the last digit of `digits` is its Luhn check digit."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _card_network(digits: str) -> bool:
    return digits[0] in "3456" or 2221 <= int(digits[:4]) <= 2720


def cn_ids(folded: str) -> Iterator[Span]:
    """Resident ID numbers with a valid check character; the key is the ID, `X` upper-case."""
    for match in _CN_ID.finditer(folded):
        number = (match[1] + match[3] + match[4]).upper()
        if is_cn_id(number):
            yield Span(Kind.CN_ID, match.start(), match.end(), number)


def bank_cards(folded: str) -> Iterator[Span]:
    """Card numbers passing the network and Luhn checks, unless labelled as an order number or
    the like; the key is the digits."""
    for match in _CARD.finditer(folded):
        digits = match.group().translate(_SEPARATORS)
        if not 13 <= len(digits) <= 19 or not _card_network(digits) or not luhn_ok(digits):
            continue
        if (len(digits) == 18 and _id_shaped(digits)) or not_personal(folded, match.start()):
            continue
        yield Span(Kind.BANK_CARD, match.start(), match.end(), digits)

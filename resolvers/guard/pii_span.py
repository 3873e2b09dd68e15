"""A piece of personal data found in a text: its kind, where it is, and its identity.

Detectors read `fold_width(text)`, which maps full-width ASCII forms (`１３８`, `＠`, `：`) to
ASCII one character for one, so a span found there is the same span of the original text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What a placeholder stands for; the value is its prefix, as in `[EMAIL_1]`."""

    EMAIL = "EMAIL"
    PHONE = "PHONE"
    CN_ID = "CN_ID"
    BANK_CARD = "BANK_CARD"
    IP = "IP"
    PERSON = "PERSON"


@dataclass(frozen=True)
class Span:
    """`text[start:end]` is personal data of `kind`. Spans of one kind with equal `key` (the
    value normalised: an e-mail casefolded, a phone number in E.164) share one placeholder."""

    kind: Kind
    start: int
    end: int
    key: str


_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def fold_width(text: str) -> str:
    """`text` with full-width ASCII forms and the ideographic space as plain ASCII; same length."""
    return text.translate(_WIDTH)


# A number right after one of these words is an order, a parcel or a product, not a person's.
_NOT_PERSONAL = re.compile(
    r"(?<![A-Za-z])(?:order|invoice|tracking|parcel|serial|sku|isbn|issn|ref|reference|ticket"
    r"|model|part|transaction|txn|payment"
    r"|订单|单号|运单|快递|流水|交易|发票|编号|型号|货号|学号|工号|条码|序列号|批号)"
    r"(?:[ \t]*(?:number|num|no\.?|id|code|号码|号))?[ \t:#.\-]*\Z",
    re.IGNORECASE,
)
_REACH = 32


def after_label(folded: str, start: int, label: re.Pattern[str]) -> bool:
    """Whether `label` (a pattern anchored with `\\Z`) ends right before `folded[start]`."""
    return label.search(folded, max(0, start - _REACH), start) is not None


def not_personal(folded: str, start: int) -> bool:
    """Whether the number at `start` follows an order, tracking, product or similar label."""
    return after_label(folded, start, _NOT_PERSONAL)

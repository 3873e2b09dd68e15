"""Personal data masked before a model sees user text, and put back in what it writes.

`anonymise(text)` swaps each e-mail, phone number, Chinese resident ID, bank card number, IP
address and (cued) person name for a placeholder such as `[EMAIL_1]`, numbered per kind by
first occurrence; equal values (`138 0013 8000`, `+8613800138000`) share one placeholder.
`anonymise_many` masks the fields of one request with one numbering. The values stay in the
returned `Vault`, read only by `restore` and the `StreamRestorer` (a placeholder that stands
for two spellings of one value is restored as the first); findings name kinds and
placeholders, never values. Placeholders already in the input are skipped, so they come back
as written. Pure Python, no I/O.

Overlaps go to the longer span, then to the kind listed first in `Kind` (an 18-digit number
that is both a valid ID and Luhn-valid is an ID). What each detector takes, and leaves, is
described in `pii_net` (e-mail, IP), `pii_phone`, `pii_number` (ID, card) and `pii_name`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from resolvers.guard.pii_name import persons
from resolvers.guard.pii_net import emails, ipv4s, ipv6s
from resolvers.guard.pii_number import bank_cards, cn_ids
from resolvers.guard.pii_phone import phones
from resolvers.guard.pii_span import Kind, Span, fold_width
from resolvers.guard.pii_vault import StreamRestorer, Vault, placeholder, placeholders_in

__all__ = [
    "Finding",
    "Kind",
    "Masked",
    "MaskedFields",
    "Span",
    "StreamRestorer",
    "Vault",
    "anonymise",
    "anonymise_many",
    "detect",
]

_DETECTORS = (emails, cn_ids, ipv4s, ipv6s, phones, bank_cards, persons)
_PRIORITY = {kind: rank for rank, kind in enumerate(Kind)}


def detect(text: str) -> list[Span]:
    """The personal data in `text`, in text order, spans never overlapping."""
    folded = fold_width(text)
    candidates = [span for detector in _DETECTORS for span in detector(folded)]
    taken = [False] * len(text)
    kept: list[Span] = []
    # A stable sort: of equal spans, the first found wins (for phones, the likelier region).
    for span in sorted(candidates, key=lambda s: (s.start - s.end, _PRIORITY[s.kind], s.start)):
        if not any(taken[span.start : span.end]):
            taken[span.start : span.end] = [True] * (span.end - span.start)
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


@dataclass(frozen=True)
class Finding:
    """One value masked in a text: its kind, its placeholder and how often it occurs."""

    kind: Kind
    placeholder: str
    count: int


@dataclass(frozen=True)
class Masked:
    """A text with its personal data masked; `vault.restore` puts the values back."""

    text: str
    found: tuple[Finding, ...]
    vault: Vault


@dataclass(frozen=True)
class MaskedFields:
    """The fields of one request masked with one numbering, and the vault of all of them."""

    texts: Mapping[str, str]
    found: Mapping[str, tuple[Finding, ...]]
    vault: Vault


class _Numbering:
    """Gives out placeholders for one request, skipping those its texts already contain."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._taken = placeholders_in(texts)
        self._counts: Counter[Kind] = Counter()
        self._tokens: dict[tuple[Kind, str], str] = {}
        self.values: dict[str, str] = {}

    def token(self, span: Span, value: str) -> str:
        key = (span.kind, span.key)
        if key not in self._tokens:
            token = ""
            while not token or token in self._taken:
                self._counts[span.kind] += 1
                token = placeholder(span.kind, self._counts[span.kind])
            self._tokens[key] = token
            self.values[token] = value  # the first spelling is the one put back
        return self._tokens[key]

    def mask(self, text: str) -> tuple[str, tuple[Finding, ...]]:
        parts: list[str] = []
        counts: Counter[str] = Counter()
        kinds: dict[str, Kind] = {}
        cursor = 0
        for span in detect(text):
            token = self.token(span, text[span.start : span.end])
            parts += [text[cursor : span.start], token]
            cursor = span.end
            counts[token] += 1
            kinds[token] = span.kind
        parts.append(text[cursor:])
        found = tuple(Finding(kinds[token], token, count) for token, count in counts.items())
        return "".join(parts), found


def anonymise(text: str) -> Masked:
    """`text` with its personal data replaced by placeholders, numbered from 1 per kind."""
    numbering = _Numbering([text])
    masked, found = numbering.mask(text)
    return Masked(masked, found, Vault(numbering.values))


def anonymise_many(texts: Mapping[str, str]) -> MaskedFields:
    """The fields of one request masked with one numbering: a value in two fields gets one
    placeholder, and one vault restores any of them."""
    numbering = _Numbering(texts.values())
    masked: dict[str, str] = {}
    found: dict[str, tuple[Finding, ...]] = {}
    for name, text in texts.items():
        masked[name], found[name] = numbering.mask(text)
    return MaskedFields(masked, found, Vault(numbering.values))

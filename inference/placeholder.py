"""Lexicon terms kept out of the model's reach: swapped for placeholders, then put back.

`protect` swaps each occurrence of a lexicon term for a placeholder such as `⟦1⟧` (longest
term first, Latin-script terms on word boundaries, CJK terms as substrings); the
`PlaceholderStream` puts each entry's target back as the tokens arrive. Placeholders the model
drops are reported, never patched in silently.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from inference.language import is_spaced_word_char

MAX_TERM_CHARS = 200
PLACEHOLDER_OPEN = "⟦"
PLACEHOLDER_CLOSE = "⟧"

# Models sometimes pad a placeholder with spaces; `⟦ 1 ⟧` is still ours.
_PLACEHOLDER = re.compile(r"⟦\s*(\d+)\s*⟧")
_PARTIAL_PLACEHOLDER = re.compile(r"⟦\s*\d*\s*\Z")
_MAX_HELD_CHARS = 24  # longer than any placeholder: past this, a `⟦` is plain text


def _check_term(what: str, term: str) -> None:
    if not term.strip():
        raise ValueError(f"{what}: must not be blank")
    if len(term) > MAX_TERM_CHARS:
        raise ValueError(f"{what}: at most {MAX_TERM_CHARS} characters, got {len(term)}")
    if PLACEHOLDER_OPEN in term or PLACEHOLDER_CLOSE in term:
        raise ValueError(f"{what}: must not contain {PLACEHOLDER_OPEN} or {PLACEHOLDER_CLOSE}")


@dataclass(frozen=True)
class LexiconEntry:
    """A glossary rule: `source` in the text is always rendered as `target`, exactly."""

    source: str
    target: str

    def __post_init__(self) -> None:
        _check_term("lexicon source", self.source)
        _check_term("lexicon target", self.target)


@dataclass(frozen=True)
class Placeholder:
    """One lexicon entry found in the text: its number, shown to the model as `⟦number⟧`, and
    each occurrence's original surface, in text order."""

    number: int
    entry: LexiconEntry
    surfaces: tuple[str, ...]

    @property
    def token(self) -> str:
        """The text that stands for the entry, e.g. `⟦1⟧`."""
        return _token(self.number)

    @property
    def count(self) -> int:
        """How many times the entry occurs in the source text."""
        return len(self.surfaces)


@dataclass(frozen=True)
class Applied:
    """A lexicon entry's target put into the output `count` times."""

    source: str
    target: str
    count: int


def _token(number: int) -> str:
    return f"{PLACEHOLDER_OPEN}{number}{PLACEHOLDER_CLOSE}"


def fold(text: str, case_sensitive: bool) -> str:
    """`text` as lexicon terms are compared: casefolded unless matching is case-sensitive."""
    return text if case_sensitive else text.casefold()


def _folded_with_map(text: str, case_sensitive: bool) -> tuple[str, list[int]]:
    # casefold can change length ("ß" -> "ss"), so keep, for each folded position, the index
    # of the character it came from; `starts[len(folded)] == len(text)`.
    if case_sensitive:
        return text, list(range(len(text) + 1))
    parts: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        fold = char.casefold()
        parts.append(fold)
        origin.extend([index] * len(fold))
    origin.append(len(text))
    return "".join(parts), origin


def _find(
    text: str, folded: str, origin: Sequence[int], term: str, taken: list[bool]
) -> Iterable[tuple[int, int]]:
    start = folded.find(term)
    while start != -1:
        end = start + len(term)
        first, last = origin[start], origin[end]
        aligned = origin[start - 1] != first if start else True
        aligned = aligned and (end == len(folded) or origin[end - 1] != last)
        bounded = not (
            is_spaced_word_char(term[0]) and first and is_spaced_word_char(text[first - 1])
        ) and not (
            is_spaced_word_char(term[-1]) and last < len(text) and is_spaced_word_char(text[last])
        )
        if aligned and bounded and not any(taken[first:last]):
            taken[first:last] = [True] * (last - first)
            yield first, last
            start = folded.find(term, end)
        else:
            start = folded.find(term, start + 1)


def protect(
    text: str, entries: Sequence[LexiconEntry], *, case_sensitive: bool
) -> tuple[str, tuple[Placeholder, ...]]:
    """Replace every lexicon term in `text` with its entry's placeholder. Longer terms claim
    text first; spans never overlap; Latin-script terms match whole words, CJK ones anywhere.
    Tokens are numbered from 1 by first occurrence; the first of two equal sources wins."""
    folded, origin = _folded_with_map(text, case_sensitive)
    taken = [False] * len(text)
    spans: list[tuple[int, int, int]] = []  # start, end, entry index
    seen: set[str] = set()
    order = sorted(range(len(entries)), key=lambda i: -len(fold(entries[i].source, case_sensitive)))
    for index in order:
        term = fold(entries[index].source, case_sensitive)
        if term in seen:
            continue
        seen.add(term)
        spans.extend((s, e, index) for s, e in _find(text, folded, origin, term, taken))
    spans.sort()
    numbers: dict[int, int] = {}
    surfaces: dict[int, list[str]] = {}
    parts: list[str] = []
    cursor = 0
    for start, end, index in spans:
        number = numbers.setdefault(index, len(numbers) + 1)
        surfaces.setdefault(index, []).append(text[start:end])
        parts.append(text[cursor:start] + _token(number))
        cursor = end
    parts.append(text[cursor:])
    placeholders = tuple(Placeholder(n, entries[i], tuple(surfaces[i])) for i, n in numbers.items())
    return "".join(parts), placeholders


class PlaceholderStream:
    """Restores placeholders in model deltas as they arrive. `feed` returns the text safe to
    show, holding back only a trailing `⟦...` that may still become a placeholder; `flush`
    returns what is left. Tokens it does not know are passed through unchanged."""

    def __init__(self, placeholders: Iterable[Placeholder]) -> None:
        self._by_number = {p.number: p for p in placeholders}
        self._found: Counter[int] = Counter()
        self._held = ""

    def _restore(self, text: str) -> str:
        def target(match: re.Match[str]) -> str:
            number = int(match.group(1))
            placeholder = self._by_number.get(number)
            if placeholder is None:
                return match.group(0)
            self._found[number] += 1
            return placeholder.entry.target  # a function, so `\1` or `$` in it stay literal

        return _PLACEHOLDER.sub(target, text)

    def feed(self, text: str) -> str:
        """Take a delta; return the restored text that is complete so far (maybe empty)."""
        buffer = self._held + text
        cut = buffer.rfind(PLACEHOLDER_OPEN)
        tail = buffer[cut:] if cut != -1 else ""
        if tail and len(tail) <= _MAX_HELD_CHARS and _PARTIAL_PLACEHOLDER.match(tail):
            self._held, buffer = tail, buffer[:cut]
        else:
            self._held = ""
        return self._restore(buffer)

    def flush(self) -> str:
        """The held-back text at the end of the stream (an unfinished `⟦...` as it is)."""
        held, self._held = self._held, ""
        return held

    @property
    def applied(self) -> tuple[Applied, ...]:
        """Each entry restored at least once, with how often, in token order."""
        return tuple(
            Applied(p.entry.source, p.entry.target, self._found[n])
            for n, p in sorted(self._by_number.items())
            if self._found[n]
        )

    @property
    def missing(self) -> tuple[Placeholder, ...]:
        """Placeholders the output holds fewer times than the source text did."""
        return tuple(p for n, p in sorted(self._by_number.items()) if self._found[n] < p.count)

    def found(self, placeholder: Placeholder) -> int:
        """How many times the placeholder was restored so far."""
        return self._found[placeholder.number]


def restore(
    translated: str, placeholders: Iterable[Placeholder]
) -> tuple[str, tuple[Applied, ...], tuple[Placeholder, ...]]:
    """Put each entry's target, exactly, where the model kept its placeholder; return the
    text, the entries applied (with counts) and the placeholders the model dropped."""
    stream = PlaceholderStream(placeholders)
    text = stream.feed(translated) + stream.flush()
    return text, stream.applied, stream.missing

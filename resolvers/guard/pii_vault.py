"""Placeholders (`[EMAIL_1]`) and the vault that turns them back into the values they hide.

Models alter placeholders a little: `restore` and the `StreamRestorer` also accept other
case, spaces or dashes inside (`[email_1]`, `[ EMAIL 1 ]`, `[E-MAIL_1]`), full-width forms and
`【】` brackets. Placeholders the vault does not hold pass through unchanged. As in
`inference.placeholder.PlaceholderStream`, a stream holds back only a trailing `[...` that may
still become a placeholder.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping

from resolvers.guard.pii_span import Kind, fold_width

_SEP = r"[ \t_\-]*"
_WORDS = {
    Kind.EMAIL: ("E", "MAIL"),
    Kind.PHONE: ("PHONE",),
    Kind.CN_ID: ("CN", "ID"),
    Kind.BANK_CARD: ("BANK", "CARD"),
    Kind.IP: ("IP",),
    Kind.PERSON: ("PERSON",),
}
_BY_LETTERS = {"".join(words): kind for kind, words in _WORDS.items()}
_KINDS = "|".join(_SEP.join(words) for words in _WORDS.values())
# Matched against `fold_width(text)`, which has the same length as the text.
_TOKEN = re.compile(rf"[\[【][ \t]*({_KINDS}){_SEP}([0-9]+)[ \t]*[\]】]", re.IGNORECASE)
_HEAD = re.compile(r"[\[【][ \t]*([A-Za-z][A-Za-z \t_\-]*)?([0-9]+[ \t]*)?")
_OPENERS = "[【"
_MAX_HELD_CHARS = 32  # longer than any placeholder: past this, a `[` is plain text


def placeholder(kind: Kind, number: int) -> str:
    """The placeholder of the `number`-th value of `kind` in a request, e.g. `[EMAIL_1]`."""
    return f"[{kind}_{number}]"


def _canonical(match: re.Match[str]) -> str:
    letters = re.sub(r"[^A-Za-z]", "", match[1]).upper()
    return placeholder(_BY_LETTERS[letters], int(match[2]))


def placeholders_in(texts: Iterable[str]) -> set[str]:
    """The placeholders already written in `texts`, canonical: numbering must skip them."""
    return {_canonical(m) for text in texts for m in _TOKEN.finditer(fold_width(text))}


def _may_complete(tail: str) -> bool:
    head = _HEAD.fullmatch(tail)
    if head is None or len(tail) > _MAX_HELD_CHARS:
        return False
    letters = re.sub(r"[^A-Za-z]", "", head[1] or "").upper()
    if head[2]:
        return letters in _BY_LETTERS
    return any(name.startswith(letters) for name in _BY_LETTERS)


class Vault:
    """The values behind one request's placeholders. Only `restore` and `stream` read them;
    `repr` shows the placeholders alone, so a logged vault leaks nothing."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __repr__(self) -> str:
        return f"Vault({', '.join(self._values)})"

    def __len__(self) -> int:
        return len(self._values)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The placeholders held, in the order they were given out."""
        return tuple(self._values)

    def restore(self, text: str) -> str:
        """`text` with every placeholder of this vault replaced by its value."""
        stream = self.stream()
        return stream.feed(text) + stream.flush()

    def stream(self) -> StreamRestorer:
        """A restorer for text that arrives in pieces."""
        return StreamRestorer(self)


class StreamRestorer:
    """Restores placeholders in model deltas as they arrive. `feed` returns the text safe to
    show, holding back only a trailing `[...` that may still become a placeholder; `flush`
    returns what is left at the end."""

    def __init__(self, vault: Vault) -> None:
        self._values = vault._values
        self._held = ""
        self._restored: Counter[str] = Counter()

    def _restore(self, text: str) -> str:
        parts: list[str] = []
        cursor = 0
        for match in _TOKEN.finditer(fold_width(text)):
            token = _canonical(match)
            value = self._values.get(token)
            if value is not None:
                parts += [text[cursor : match.start()], value]
                cursor = match.end()
                self._restored[token] += 1
        parts.append(text[cursor:])
        return "".join(parts)

    def feed(self, chunk: str) -> str:
        """Take a delta; return the restored text that is complete so far (maybe empty)."""
        buffer = self._held + chunk
        folded = fold_width(buffer)
        cut = max(folded.rfind(opener) for opener in _OPENERS)
        if cut != -1 and _may_complete(folded[cut:]):
            self._held, buffer = buffer[cut:], buffer[:cut]
        else:
            self._held = ""
        return self._restore(buffer)

    def flush(self) -> str:
        """The held-back text at the end of the stream (an unfinished `[...` as it is)."""
        held, self._held = self._held, ""
        return held

    @property
    def restored(self) -> Mapping[str, int]:
        """How many times each placeholder was restored so far."""
        return dict(self._restored)

    @property
    def missing(self) -> tuple[str, ...]:
        """The vault's placeholders not restored so far (the model dropped or mangled them)."""
        return tuple(token for token in self._values if not self._restored[token])

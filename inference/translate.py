"""The translate tool's engine: OPUS-MT translation that honours a custom lexicon exactly.

Lexicon terms never reach the model as words. `protect` swaps each occurrence for a
placeholder such as `⟦1⟧` (longest term first, Latin-script terms on word boundaries, CJK
terms as substrings); the model translates the rest and keeps the placeholders; the
`PlaceholderStream` puts each entry's target back as the tokens arrive. Placeholders the model
drops are reported, never patched in silently. The dev engine cannot translate, so on it the
tool returns the source text with the glossary applied, labelled untranslated.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

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

# Limits a validation layer documents and enforces; the dataclasses below enforce them too.
MAX_TEXT_CHARS = 10_000
MAX_ENTRIES = 500
MAX_TERM_CHARS = 200
MAX_SEED = 2**31 - 1
MIN_OUTPUT_TOKENS = 16
MAX_OUTPUT_TOKENS = 8_192
TEMPERATURE = 0.0  # a translation is wanted faithful, not varied

# The supported languages, code to English name; OPUS-MT names its models by these codes.
# fmt: off
LANGUAGES: Mapping[str, str] = MappingProxyType({
    "en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "fr": "French",
    "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "ru": "Russian",
    "ar": "Arabic", "vi": "Vietnamese", "th": "Thai", "id": "Indonesian",
})
# fmt: on

# `translate(model=OPUS_MT)` routes to the per-pair model; any other name is used as given.
OPUS_MT = "opus-mt"
DEV_ENGINE = "dev-engine"  # the dev engine's name, not imported: it is a peer backend
PLACEHOLDER_OPEN = "⟦"
PLACEHOLDER_CLOSE = "⟧"
DEV_NOTE = "dev-engine cannot translate; glossary applied to the source text"

# Models sometimes pad a placeholder with spaces; `⟦ 1 ⟧` is still ours.
_PLACEHOLDER = re.compile(r"⟦\s*(\d+)\s*⟧")
_PARTIAL_PLACEHOLDER = re.compile(r"⟦\s*\d*\s*\Z")
_MAX_HELD_CHARS = 24  # longer than any placeholder: past this, a `⟦` is plain text


def opus_mt_model(source_lang: str, target_lang: str) -> str:
    """The OPUS-MT model of one language pair, e.g. `opus-mt-en-zh`."""
    return f"{OPUS_MT}-{source_lang}-{target_lang}"


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


def _check_language(what: str, code: str) -> None:
    if code not in LANGUAGES:
        raise ValueError(
            f"{what}: unsupported language {code!r}; use one of {', '.join(LANGUAGES)}"
        )


@dataclass(frozen=True)
class TranslateSpec:
    """A translate request; refuses (ValueError) text, languages, lexicon or budget out of
    limits. `source_lang=None` detects the language; `max_tokens=None` sizes it to the text."""

    text: str
    target_lang: str
    source_lang: str | None = None
    entries: tuple[LexiconEntry, ...] = ()
    case_sensitive: bool = False
    seed: int | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))
        if not self.text.strip() or len(self.text) > MAX_TEXT_CHARS:
            raise ValueError(f"text: must be 1 to {MAX_TEXT_CHARS} characters, not blank")
        if PLACEHOLDER_OPEN in self.text or PLACEHOLDER_CLOSE in self.text:
            raise ValueError(f"text: must not contain {PLACEHOLDER_OPEN} or {PLACEHOLDER_CLOSE}")
        _check_language("target_lang", self.target_lang)
        if self.source_lang is not None:
            _check_language("source_lang", self.source_lang)
            if self.source_lang == self.target_lang:
                raise ValueError("source_lang: must differ from target_lang")
        if len(self.entries) > MAX_ENTRIES:
            raise ValueError(f"entries: at most {MAX_ENTRIES}, got {len(self.entries)}")
        seen: set[str] = set()
        for number, entry in enumerate(self.entries, start=1):
            key = _fold(entry.source, self.case_sensitive)
            if key in seen:
                raise ValueError(f"entry {number}: the source {entry.source!r} is listed twice")
            seen.add(key)
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed: must be between 0 and {MAX_SEED}")
        if self.max_tokens is not None and not (
            MIN_OUTPUT_TOKENS <= self.max_tokens <= MAX_OUTPUT_TOKENS
        ):
            raise ValueError(
                f"max_tokens: must be between {MIN_OUTPUT_TOKENS} and {MAX_OUTPUT_TOKENS}"
            )


# Language detection


def _script(char: str) -> str | None:
    point = ord(char)
    if 0x3040 <= point <= 0x30FF or 0x31F0 <= point <= 0x31FF or 0xFF66 <= point <= 0xFF9D:
        return "kana"
    if 0x3400 <= point <= 0x9FFF or 0xF900 <= point <= 0xFAFF or 0x20000 <= point <= 0x2FA1F:
        return "han"
    if 0xAC00 <= point <= 0xD7AF or 0x1100 <= point <= 0x11FF or 0x3130 <= point <= 0x318F:
        return "hangul"
    if 0x0400 <= point <= 0x052F:
        return "cyrillic"
    if 0x0600 <= point <= 0x06FF or 0x0750 <= point <= 0x077F or 0xFB50 <= point <= 0xFEFF:
        return "arabic"
    if 0x0E00 <= point <= 0x0E7F:
        return "thai"
    if char.isalpha() and (point < 0x0250 or 0x1E00 <= point <= 0x1EFF):
        return "latin"
    return None


# A character of a script written without spaces stands for about a word of Latin letters.
_SCRIPT_WEIGHT = {"kana": 3, "han": 3, "hangul": 2, "thai": 2}
_UNSPACED = frozenset({"han", "kana", "hangul", "thai"})
_SCRIPT_LANGUAGE = {"hangul": "ko", "cyrillic": "ru", "arabic": "ar", "thai": "th"}

_STOP_WORDS = {
    "en": "the and of to is are was were this that with for you have not it be on from",
    "fr": "le la les des est et une un du pas pour dans avec ce sont nous vous je au sur mais qui",
    "de": "der die das und ist nicht ein eine ich zu mit sie den von auf sich auch dem wir sind",
    "es": "el los las del y por con una para se está como pero muy yo es en hay",
    "it": "il lo gli della che è di per non una sono con del nel anche ma questo io",
    "pt": "o os do da dos das não um uma para com em no na eu você mas são é",
    "vi": "và của là có không những một các được cho tôi này với người trong",
    "id": "dan yang di ini itu dengan untuk tidak ada saya dari akan ke kami adalah juga",
}
# Letters that (among our Latin-script languages) belong to one language.
_LETTERS = {"de": "äöüß", "es": "ñ¿¡", "pt": "ãõ", "fr": "œëîûùÿ", "vi": "đơưă"}
_WORDS = re.compile(r"[^\W\d_]+")


def _latin_language(text: str) -> str:
    folded = text.lower()  # not casefold: it turns "ß" into "ss"
    words = _WORDS.findall(folded)
    scores: Counter[str] = Counter()
    for code, stop_words in _STOP_WORDS.items():
        stop = set(stop_words.split())
        scores[code] = sum(word in stop for word in words)
    for code, letters in _LETTERS.items():
        scores[code] += sum(folded.count(letter) for letter in letters)
    # Vietnamese tone marks live in Latin Extended Additional (ạ ả ấ ầ ...).
    scores["vi"] += sum(0x1EA0 <= ord(char) <= 0x1EF9 for char in folded)
    best = max(scores.values())
    # Ties go to the first language in LANGUAGES order; no evidence at all means English.
    return next(code for code in LANGUAGES if scores[code] == best) if best else "en"


def detect_language(text: str) -> str:
    """The language code of `text` by script (Kana → ja, Han → zh, Hangul → ko, Cyrillic → ru,
    Arabic → ar, Thai → th) and, for Latin, stop words and distinctive letters (default en).
    Deterministic rules, no model; the script with the most (weighted) letters wins."""
    text = unicodedata.normalize("NFC", text)
    counts: Counter[str] = Counter()
    for char in text:
        script = _script(char)
        if script is not None:
            counts[script] += _SCRIPT_WEIGHT.get(script, 1)
    counts["cjk"] = counts.pop("kana", 0) + counts.pop("han", 0)
    script, weight = max(counts.items(), key=lambda item: item[1], default=("latin", 0))
    if weight == 0 or script == "latin":
        return _latin_language(text)
    if script == "cjk":
        return "ja" if any(_script(char) == "kana" for char in text) else "zh"
    return _SCRIPT_LANGUAGE[script]


# Term protection


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


def _fold(text: str, case_sensitive: bool) -> str:
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


def _is_spaced_word_char(char: str) -> bool:
    # A letter or digit of a script that separates words with spaces; CJK, Kana, Hangul
    # (its particles attach to nouns) and Thai do not bound a word, so "用Python写" matches.
    return (char.isalnum() or char == "_") and _script(char) not in _UNSPACED


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
            _is_spaced_word_char(term[0]) and first and _is_spaced_word_char(text[first - 1])
        ) and not (
            _is_spaced_word_char(term[-1]) and last < len(text) and _is_spaced_word_char(text[last])
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
    order = sorted(
        range(len(entries)), key=lambda i: -len(_fold(entries[i].source, case_sensitive))
    )
    for index in order:
        term = _fold(entries[index].source, case_sensitive)
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


# The tool


def build_prompt(protected: str, source_lang: str, target_lang: str) -> str:
    """One instruction line, then the protected text (from `prompt.index("\\n") + 1`)."""
    source, target = LANGUAGES[source_lang], LANGUAGES[target_lang]
    instruction = (
        f"Translate the following text from {source} to {target}. Keep every token of the "
        f"form {PLACEHOLDER_OPEN}n{PLACEHOLDER_CLOSE} exactly as it is."
    )
    return f"{instruction}\n{protected}"


def _output_budget(spec: TranslateSpec, protected: str) -> int:
    if spec.max_tokens is not None:
        return spec.max_tokens
    # Room for a target language that takes twice the tokens, and for the placeholders.
    wanted = 2 * count_tokens(protected) + 64
    return max(MIN_OUTPUT_TOKENS, min(MAX_OUTPUT_TOKENS, wanted))


def _result(
    spec: TranslateSpec,
    source_lang: str,
    model: str | None,
    stream: PlaceholderStream,
    *,
    translated: bool,
    note: str | None,
) -> Structured:
    missing = stream.missing
    data: dict[str, object] = {
        "source_lang": source_lang,
        "detected": spec.source_lang is None,
        "target_lang": spec.target_lang,
        "model": model,
        "translated": translated,
        "applied": [
            {"source": a.source, "target": a.target, "count": a.count} for a in stream.applied
        ],
        "missing": [
            {"placeholder": p.token, "source": p.entry.source, "target": p.entry.target}
            | {"expected": p.count, "found": stream.found(p)}
            for p in missing
        ],
        "lexicon_ok": not missing,
    }
    if note is not None:
        data["note"] = note
    return Structured(data)


async def translate(
    engine: Engine, spec: TranslateSpec, *, model: str, request_id: str
) -> AsyncIterator[Piece]:
    """Protect the lexicon terms, stream the model's translation with each term's target put
    back, and end with the structured result. `model == OPUS_MT` picks the pair's model, any
    other name is used as given. The dev engine is not asked: it returns the untranslated
    source with the glossary applied. Text already in the target language is not sent either."""
    yield Stage(0.0, "protecting terms")
    source_lang = spec.source_lang or detect_language(spec.text)
    protected, placeholders = protect(spec.text, spec.entries, case_sensitive=spec.case_sensitive)
    stream = PlaceholderStream(placeholders)
    if engine.name == DEV_ENGINE or source_lang == spec.target_lang:
        # Nothing is translated; say so instead of passing the dev engine's words off as one.
        used: str | None = DEV_ENGINE
        note = DEV_NOTE
        if engine.name != DEV_ENGINE:
            used, note = None, f"the text is already in {LANGUAGES[source_lang]}; glossary applied"
        yield Stage(0.1, "applying glossary")
        yield Delta(stream.feed(protected) + stream.flush(), tokens=0)
        yield _result(spec, source_lang, used, stream, translated=False, note=note)
        return
    chosen = opus_mt_model(source_lang, spec.target_lang) if model == OPUS_MT else model
    prompt = build_prompt(protected, source_lang, spec.target_lang)
    yield Usage(prompt_tokens=count_tokens(prompt))
    yield Stage(0.1, "translating")
    request = GenerationRequest(
        request_id=request_id,
        model=chosen,
        prompt=prompt,
        max_tokens=_output_budget(spec, protected),
        temperature=TEMPERATURE,
        seed=spec.seed,
        # OPUS-MT takes no instructions: a seq2seq backend translates prompt[text_start:].
        parameters={
            "source_lang": source_lang,
            "target_lang": spec.target_lang,
            "text_start": len(prompt) - len(protected),
        },
    )
    tokens = 0
    async for delta in engine.stream(request):
        tokens += delta.tokens
        text = stream.feed(delta.text)
        if text:
            yield Delta(text, tokens=tokens)
            tokens = 0
    rest = stream.flush()
    if rest or tokens:
        yield Delta(rest, tokens=tokens)
    dropped = len(stream.missing)
    lost = f"the model dropped {dropped} lexicon term(s); see missing" if dropped else None
    yield _result(spec, source_lang, chosen, stream, translated=True, note=lost)

"""Prompt-injection shield: data-driven rules over normalised text, plus an optional classifier.

The rules are data (`injection_rules.json` beside this module), validated and compiled once by
`load_rules`; `Shield.check` does no I/O. Rules never see the caller's text, only views of it:
  plain   NFKC (full-width -> half-width, styled letters), invisible characters removed
          (format characters, variation selectors, fillers), Unicode tag characters decoded to
          ASCII, runs of spaces collapsed (newlines kept), spaces between CJK characters dropped;
  folded  plain, with letter-spaced words joined ("i g n o r e", "忽.略"), underscores read as
          spaces, diacritics stripped, Cyrillic/Greek look-alikes and leetspeak (0->o 1->i 3->e
          4->a 5->s 7->t @->a $->s) mapped inside words that mix them with Latin letters (not
          in e-mail addresses), and the traditional Chinese characters the rules use simplified.
Patterns are multi-line regexes matched against the folded view lower-cased, so they are written
in lower case (the loader refuses upper-case letters: IGNORECASE is about five times slower). A
`case_sensitive` rule sees the folded view as it is (`(?i:...)` where case does not matter). A
rule with a `decoder` (base64, hex, url, rot13, uescape) sees the plain view as it is, decodes
what its patterns find, and matches when the decoded text matches other rules (two levels deep,
at most 32 candidates per rule and field).

Scoring: in each field the weights of the distinct matching rules combine as a noisy-OR,
1 - prod(1 - w); the verdict's score is the highest field score and blocks at or above the
threshold (the rule file's unless given). A rule whose weight reaches it blocks alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import json
import logging
import math
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

RULES_FILE = Path(__file__).with_name("injection_rules.json")
LANGUAGES = frozenset({"en", "zh", "any"})
_RULE_KEYS = frozenset({"id", "description", "category", "languages", "weight", "patterns"})
_OPTIONAL_KEYS = frozenset({"decoder", "case_sensitive"})
_MAX_DESCRIPTION = 120
_FILE_KEYS = frozenset({"version", "about", "threshold", "categories", "rules"})
_MAX_DEPTH = 2  # a payload inside a payload is decoded; a third level is not
_MAX_BLOBS = 32  # candidate blobs decoded per field, view and decoder rule
_MAX_BLOB_CHARS = 16_384


class RuleSetError(ValueError):
    """The rule file is malformed; the message names the rule and what is wrong."""


class Classifier(Protocol):
    """A model scoring one text from 0 (benign) to 1 (injection); see `Shield.check_async`."""

    async def score(self, text: str) -> float: ...


@dataclass(frozen=True, slots=True)
class Rule:
    """One detection rule: its patterns are compiled, its weight is in (0, 1]."""

    id: str
    description: str
    category: str
    languages: frozenset[str]
    weight: float
    patterns: tuple[re.Pattern[str], ...]
    decoder: str | None = None
    case_sensitive: bool = False


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The validated rule file: a default threshold, the categories and the rules."""

    threshold: float
    categories: Mapping[str, str]
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched in one field; `description` is the rule's, never the caller's text."""

    rule_id: str
    category: str
    field: str
    weight: float
    description: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the shield decided; it holds rule ids, categories and field names, no input text.

    `score` is the rules' score (0..1); `classifier_score` is the highest classifier score, or
    None when no classifier ran or every call failed (`classifier_failed`).
    """

    blocked: bool
    score: float
    threshold: float
    matches: tuple[Match, ...] = ()
    classifier_score: float | None = None
    classifier_failed: bool = False

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(sorted({m.rule_id for m in self.matches}))

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted({m.category for m in self.matches}))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(sorted({m.field for m in self.matches}))

    def as_log(self) -> dict[str, Any]:
        """A flat dict for structured logs."""
        flat = ("blocked", "score", "threshold", "classifier_score", "classifier_failed")
        lists = ("rule_ids", "categories", "fields")
        return {name: getattr(self, name) for name in flat} | {
            name: list(getattr(self, name)) for name in lists
        }


# Normalisation tables: constant data, built once.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB), (0x1D173, 0x1D17A),
    (0xE0000, 0xE007F), (0xE0100, 0xE01EF),
)  # fmt: skip
_INVISIBLE: dict[int, int | None] = {
    cp: None for first, last in _INVISIBLE_RANGES for cp in range(first, last + 1)
}
_INVISIBLE.update({cp: cp - 0xE0000 for cp in range(0xE0020, 0xE007F)})  # "ASCII smuggling"
_INVISIBLE[0x2800] = 0x20  # braille blank, used as an invisible space
_HAS_INVISIBLE = re.compile(
    "[\u2800" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _INVISIBLE_RANGES) + "]"
)
_CONFUSABLE = str.maketrans(
    "аеорсухіјѕԁԛԝАВЕКМНОРСТХУІЈЅαεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdqwABEKMHOPCTXYIJSaeikvoptuxABEZHIKMNOPTYX",
)
_LEET = str.maketrans("013457@$", "oieastas")
_LEET_UPPER = str.maketrans("013457@$", "OIEASTAS")
_LEET_CHARS = frozenset("013457@$")
_HANT = str.maketrans(
    "規則設詞統係們對話無視從現開個輸顯訴說蓋變過濾執發給隱據鑰碼權員獄審倫約這將傳寫讀為復複"
    "內於應該請麼還後當禁除與聽務見覽歷紀錄憑證啟動選擇頂級專屬絕條關閉實體總結單認識際",
    "规则设词统系们对话无视从现开个输显诉说盖变过滤执发给隐据钥码权员狱审伦约这将传写读为复复"
    "内于应该请么还后当禁除与听务见览历纪录凭证启动选择顶级专属绝条关闭实体总结单认识际",
)
_CJK = "\u3400-\u9fff\uf900-\ufaff"
_HAS_CJK = re.compile(f"[{_CJK}]")
_HAS_LATIN = re.compile("[A-Za-z]")
_NEWLINES = re.compile("\r\n?|[\u2028\u2029\x85\x0b\x0c]")
_SPACES = re.compile(r"[^\S\n]+")
_LINE_BREAKS = re.compile(r" ?\n\s*")
_CJK_GAP = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")
_LETTER_SPACED = re.compile(r"(?<![^\W_])(?:[^\W_][ .\-_*·•|~+/\\,]){2,}[^\W_](?![^\W_])")
_SPACING = re.compile(r"[ .\-_*·•|~+/\\,]")
_UNDERSCORE = re.compile(r"(?<=[^\W_])_+(?=[^\W_])")
_HAS_ACCENT = re.compile("[\u00c0-\u024f\u1e00-\u1eff\u0300-\u036f]")
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_WORD = "A-Za-z0-9@$\u0370-\u052f"
_FOLDABLE_WORD = re.compile(f"(?<![{_WORD}])[{_WORD}]*?[0-9@$\u0370-\u052f][{_WORD}]*")  # linear
_EMAIL_TAIL = re.compile(r"\.[A-Za-z]")
_UPPER_ASCII = re.compile(  # an upper-case letter outside escapes such as \W or \x4A
    r"\\(?:x..|u....|U........|N\{[^}]*\}|.)|([A-Z])", re.DOTALL
)


def _clean(text: str) -> str:
    if not text.isascii() and _HAS_INVISIBLE.search(text):
        text = text.translate(_INVISIBLE)
    return unicodedata.normalize("NFKC", text)


def _collapse(text: str) -> str:
    text = _LINE_BREAKS.sub("\n", _SPACES.sub(" ", _NEWLINES.sub("\n", text))).strip()
    return _CJK_GAP.sub("", text) if _HAS_CJK.search(text) else text


def normalise(text: str) -> str:
    """NFKC, invisible characters removed or decoded, whitespace collapsed; case is kept."""
    return _collapse(_clean(text))


def _fold_word(match: re.Match[str]) -> str:
    word = match.group().translate(_CONFUSABLE)
    letters = [c for c in word if c.isalpha()]
    if not word.isascii() or not letters or _EMAIL_TAIL.match(match.string, match.end()):
        return match.group()  # a word of another script, a number, an e-mail address
    if _LEET_CHARS.isdisjoint(word):
        return word
    upper = all(c.isupper() for c in letters)
    return word.translate(_LEET_UPPER if upper else _LEET)


def _folded(cleaned: str) -> str:
    """The view rules match (case kept): see the module docstring."""
    text = _LETTER_SPACED.sub(lambda m: _SPACING.sub("", m.group()), cleaned)
    text = _collapse(_UNDERSCORE.sub(" ", text))
    if not text.isascii():
        if _HAS_ACCENT.search(text):
            text = unicodedata.normalize("NFC", _MARKS.sub("", unicodedata.normalize("NFD", text)))
        if _HAS_CJK.search(text):
            text = text.translate(_HANT)
    return _FOLDABLE_WORD.sub(_fold_word, text)


def _printable(data: bytes) -> str | None:
    """Decoded bytes if they are mostly printable UTF-8 text with letters, else None."""
    text = data.decode("utf-8", errors="replace")
    shown = sum(1 for c in text if c.isprintable() or c in "\n\t")
    good = text and "\ufffd" not in text and shown >= 0.9 * len(text)
    return text if good and any(c.isalpha() for c in text) else None


def _decode_base64(blob: str) -> str | None:
    blob = blob.rstrip("=")
    if blob.islower() or blob.isupper() or len(blob) % 4 == 1:
        return None  # a long word, not base64
    padded = blob + "=" * (-len(blob) % 4)
    try:
        if "-" in blob or "_" in blob:
            return _printable(base64.urlsafe_b64decode(padded))
        return _printable(base64.b64decode(padded, validate=True))
    except (binascii.Error, ValueError):
        return None


def _decode_hex(blob: str) -> str | None:
    digits = re.sub(r"\\x|0x|[^0-9a-fA-F]", "", blob)
    if len(digits) % 2:
        return None
    return _printable(bytes.fromhex(digits))


def _decode_url(blob: str) -> str | None:
    return _printable(urllib.parse.unquote_to_bytes(blob.replace("+", " ")))


def _decode_uescape(blob: str) -> str | None:
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), blob)
    return text if text != blob else None


_DECODERS: dict[str, Callable[[str], str | None]] = {
    "base64": _decode_base64,
    "hex": _decode_hex,
    "url": _decode_url,
    "rot13": lambda blob: codecs.encode(blob, "rot13"),
    "uescape": _decode_uescape,
}


def _fail(where: str, problem: str) -> RuleSetError:
    return RuleSetError(f"injection rules: {where}: {problem}")


def _unit(value: object) -> float | None:
    """`value` as a float if it is a number in (0, 1], else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        return None
    return float(value)


def _number(value: object, where: str, name: str) -> float:
    if (number := _unit(value)) is None:
        raise _fail(where, f"{name} must be a number in (0, 1]")
    return number


def _compile(sources: list[object], where: str, *, lower_case: bool) -> tuple[re.Pattern[str], ...]:
    patterns = []
    for number, source in enumerate(sources, start=1):
        if not isinstance(source, str):
            raise _fail(where, f"pattern {number} is not a string")
        try:
            pattern = re.compile(source, re.MULTILINE)
        except re.error as exc:
            raise _fail(where, f"pattern {number} does not compile: {exc}") from exc
        if lower_case and any(m.group(1) for m in _UPPER_ASCII.finditer(source)):
            raise _fail(where, f"pattern {number} has upper-case letters but sees lower-case text")
        if pattern.search("") is not None:
            raise _fail(where, f"pattern {number} matches the empty string")
        patterns.append(pattern)
    return tuple(patterns)


def _rule(raw: object, index: int, categories: Mapping[str, str], seen: set[str]) -> Rule:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise _fail(f"rule #{index}", "must be an object with a non-empty string id")
    rule_id: str = raw["id"]
    where = f"rule {rule_id!r}"
    if rule_id in seen:
        raise _fail(where, "id is used twice")
    if unknown := set(raw) - _RULE_KEYS - _OPTIONAL_KEYS:
        raise _fail(where, f"unknown keys {sorted(unknown)}")
    description = raw.get("description")
    if not isinstance(description, str) or not 0 < len(description) <= _MAX_DESCRIPTION:
        raise _fail(where, f"description must be 1 to {_MAX_DESCRIPTION} characters")
    if raw.get("category") not in categories:
        raise _fail(where, f"category must be one of {sorted(categories)}")
    languages = raw.get("languages")
    if not isinstance(languages, list) or not languages or not set(languages) <= LANGUAGES:
        raise _fail(where, f"languages must be a non-empty list drawn from {sorted(LANGUAGES)}")
    decoder = raw.get("decoder")
    if decoder is not None and decoder not in _DECODERS:
        raise _fail(where, f"decoder must be one of {sorted(_DECODERS)}")
    case_sensitive = raw.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise _fail(where, "case_sensitive must be true or false")
    sources = raw.get("patterns")
    if not isinstance(sources, list) or not sources:
        raise _fail(where, "patterns must be a non-empty list")
    patterns = _compile(sources, where, lower_case=not case_sensitive and decoder is None)
    seen.add(rule_id)
    return Rule(
        id=rule_id,
        description=description,
        category=str(raw["category"]),
        languages=frozenset(languages),
        weight=_number(raw.get("weight"), where, "weight"),
        patterns=patterns,
        decoder=decoder,
        case_sensitive=case_sensitive,
    )


def parse_rules(data: object) -> RuleSet:
    """Validate and compile a decoded rule file; raise `RuleSetError` naming the bad rule."""
    if not isinstance(data, dict) or data.get("version") != 1:
        raise _fail("file", "must be an object with version 1")
    if unknown := set(data) - _FILE_KEYS:
        raise _fail("file", f"unknown keys {sorted(unknown)}")
    categories = data.get("categories")
    if not isinstance(categories, dict) or not categories:
        raise _fail("file", "categories must be a non-empty object of descriptions")
    rules = data.get("rules")
    if not isinstance(rules, list) or not rules:
        raise _fail("file", "rules must be a non-empty list")
    seen: set[str] = set()
    parsed = tuple(_rule(raw, index, categories, seen) for index, raw in enumerate(rules))
    return RuleSet(
        threshold=_number(data.get("threshold"), "file", "threshold"),
        categories={str(name): str(text) for name, text in categories.items()},
        rules=parsed,
    )


def load_rules(path: Path = RULES_FILE) -> RuleSet:
    """Read, validate and compile a rule file (the only I/O of this module)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _fail(str(path), f"not valid JSON: {exc}") from exc
    return parse_rules(data)


def _noisy_or(weights: Iterable[float]) -> float:
    return 1 - math.prod(1 - w for w in weights)


class Shield:
    """Checks named input texts for prompt injection: `Shield(load_rules())` once, then per request.

    `check` runs the rules only. `check_async` also asks the classifier, when one is given and
    the rules did not block already: it blocks when the classifier scores a field at or above
    `classifier_threshold`. The classifier fails open: an exception, a timeout or a score that
    is not a number in 0..1 counts as no score, logs a warning (field name and error type
    only) and sets `Verdict.classifier_failed`; it never blocks or raises. Cancellation does.
    """

    def __init__(
        self,
        rules: RuleSet,
        *,
        threshold: float | None = None,
        classifier: Classifier | None = None,
        classifier_threshold: float = 0.9,
        classifier_timeout: float = 1.0,
    ) -> None:
        chosen = rules.threshold if threshold is None else threshold
        if _unit(chosen) is None or _unit(classifier_threshold) is None:
            raise ValueError("thresholds must be numbers in (0, 1]")
        if not classifier_timeout > 0:
            raise ValueError("classifier_timeout must be positive")
        self.rules = rules
        self.threshold = float(chosen)
        self.classifier = classifier
        self.classifier_threshold = float(classifier_threshold)
        self.classifier_timeout = classifier_timeout
        self._plain_rules = tuple(r for r in rules.rules if r.decoder is None)
        self._decoder_rules = tuple(r for r in rules.rules if r.decoder is not None)

    def check(self, texts: Mapping[str, str]) -> Verdict:
        """Match the rules against every field; never calls the classifier."""
        matches: list[Match] = []
        score = 0.0
        for name, text in texts.items():
            found = self._scan(text, depth=0)
            if not found:
                continue
            score = max(score, _noisy_or(rule.weight for rule in found.values()))
            matches.extend(
                Match(rule.id, rule.category, name, rule.weight, rule.description)
                for rule in sorted(found.values(), key=lambda r: r.id)
            )
        score = round(score, 4)
        return Verdict(
            blocked=score >= self.threshold,
            score=score,
            threshold=self.threshold,
            matches=tuple(matches),
        )

    async def check_async(self, texts: Mapping[str, str]) -> Verdict:
        """`check`, then the classifier on each non-blank field concurrently (fails open)."""
        verdict = self.check(texts)
        if verdict.blocked or self.classifier is None:
            return verdict
        fields = [(name, text) for name, text in texts.items() if text.strip()]
        results = await asyncio.gather(*(self._classify(name, text) for name, text in fields))
        scores = [s for s in results if s is not None]
        best = max(scores) if scores else None
        return replace(
            verdict,
            blocked=best is not None and best >= self.classifier_threshold,
            classifier_score=best,
            classifier_failed=len(scores) < len(results),
        )

    async def _classify(self, name: str, text: str) -> float | None:
        assert self.classifier is not None
        try:
            async with asyncio.timeout(self.classifier_timeout):
                value = await self.classifier.score(normalise(text))
        except Exception as exc:  # a plug-in's errors are unknown; fail open by design
            logger.warning("classifier failed on %r (%s), failing open", name, type(exc).__name__)
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            logger.warning("injection classifier gave no score in 0..1 on field %r", name)
            return None
        return float(value)

    def _scan(self, text: str, depth: int) -> dict[str, Rule]:
        cleaned = _clean(text)
        folded = _folded(cleaned)
        if not folded:
            return {}
        lower = folded.lower()
        languages = {"any"}
        if _HAS_LATIN.search(folded):
            languages.add("en")
        if _HAS_CJK.search(folded):
            languages.add("zh")
        found: dict[str, Rule] = {}
        for rule in self._plain_rules:
            view = folded if rule.case_sensitive else lower
            if not rule.languages.isdisjoint(languages) and any(
                pattern.search(view) for pattern in rule.patterns
            ):
                found[rule.id] = rule
        if depth < _MAX_DEPTH and self._decoder_rules:
            plain = _collapse(cleaned)  # decoders need the original case
            for rule in self._decoder_rules:
                if rule.languages.isdisjoint(languages):
                    continue
                inner = self._decoded(rule, plain, depth)
                if inner:
                    found[rule.id] = rule
                    found.update(inner)
        return found

    def _decoded(self, rule: Rule, plain: str, depth: int) -> dict[str, Rule]:
        assert rule.decoder is not None
        decode = _DECODERS[rule.decoder]
        hits = (hit for pattern in rule.patterns for hit in pattern.finditer(plain))
        for _, hit in zip(range(_MAX_BLOBS), hits, strict=False):
            blob = hit.group(1 if hit.re.groups else 0) or ""
            decoded = decode(blob[:_MAX_BLOB_CHARS])
            if decoded and (inner := self._scan(decoded, depth + 1)):
                return inner
        return {}

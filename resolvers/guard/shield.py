"""Prompt-injection shield: data-driven rules over normalised text, plus an optional classifier.

The rules are data (`injection_rules.json` beside this module), validated and compiled once by
`load_rules`; `Shield.check` does no I/O. Rules never see the caller's text, only views of it
(`shield_text`): plain (NFKC, invisible characters removed, spaces collapsed), folded
(letter-spaced words joined, diacritics, look-alikes, leetspeak and traditional characters
folded) and joined (the folded text around words split by hyphens, dashes or dots, with the
marks removed). Patterns are multi-line regexes matched against the folded and joined views
lower-cased, so they are written in lower case (the loader refuses upper-case letters:
IGNORECASE is about five times slower); their CJK characters are folded like the text, so
Japanese rules may write 無視. A `case_sensitive` rule sees the folded view as it is
(`(?i:...)` where case does not matter). A rule with a `decoder` (base64, hex, url, rot13,
uescape) sees the plain view as it is, decodes what its patterns find, and matches when the
decoded text matches other rules (two levels deep, at most 32 candidates per rule and field).
A rule runs only on text that looks like its language (`shield_text.languages`): en on Latin
letters, fr, de and es only on the sentences that read as theirs, zh on hanzi, ja on kana.

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
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from resolvers.guard.shield_text import HANT, clean, collapse, folded, joined, languages, normalise

logger = logging.getLogger(__name__)

RULES_FILE = Path(__file__).with_name("injection_rules.json")
LANGUAGES = frozenset({"en", "fr", "de", "es", "zh", "ja", "any"})
_WHOLE_TEXT = frozenset({"any", "en", "zh", "ja"})  # rules of these languages see all the text
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


_UPPER_ASCII = re.compile(  # an upper-case letter outside escapes such as \W or \x4A
    r"\\(?:x..|u....|U........|N\{[^}]*\}|.)|([A-Z])", re.DOTALL
)


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
            pattern = re.compile(source.translate(HANT) if lower_case else source, re.MULTILINE)
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
    named = raw.get("languages")
    if not isinstance(named, list) or not named or not set(named) <= LANGUAGES:
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
        languages=frozenset(named),
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


def _part(
    wanted: frozenset[str], seen: Mapping[str, str], parts: dict[frozenset[str], tuple[str, str]]
) -> tuple[str, str]:
    """The text a rule sees (as is and lower-cased): the whole view, or only the sentences in
    its languages when those are all French, German or Spanish."""
    key = wanted.intersection(seen)
    if key not in parts:
        text = seen["any"] if key & _WHOLE_TEXT else "\n".join(seen[lang] for lang in sorted(key))
        parts[key] = (text, text.lower())
    return parts[key]


def _matches(rule: Rule, view: str, lower: str) -> bool:
    text = view if rule.case_sensitive else lower
    return any(pattern.search(text) for pattern in rule.patterns)


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
        cleaned = clean(text)
        view = folded(cleaned)
        if not view:
            return {}
        seen = languages(view)
        parts: dict[frozenset[str], tuple[str, str]] = {}
        found: dict[str, Rule] = {}
        rules = [r for r in self._plain_rules if not r.languages.isdisjoint(seen)]
        for rule in rules:
            if _matches(rule, *_part(rule.languages, seen, parts)):
                found[rule.id] = rule
        if split := joined(view):
            split_lower = split.lower()
            rest = (r for r in rules if r.id not in found)
            found.update((r.id, r) for r in rest if _matches(r, split, split_lower))
        if depth < _MAX_DEPTH and self._decoder_rules:
            plain = collapse(cleaned)  # decoders need the original case
            for rule in self._decoder_rules:
                if rule.languages.isdisjoint(seen):
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

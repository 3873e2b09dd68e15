"""The translate tool's engine: OPUS-MT translation that honours a custom lexicon exactly.

Lexicon terms never reach the model as words. `protect` swaps each occurrence for a
placeholder such as `⟦1⟧` (longest term first, Latin-script terms on word boundaries, CJK
terms as substrings); the model translates the rest and keeps the placeholders; the
`PlaceholderStream` puts each entry's target back as the tokens arrive. Placeholders the model
drops are reported, never patched in silently. The dev engine cannot translate, so on it the
tool returns the source text with the glossary applied, labelled untranslated.
Term protection lives in `placeholder`, the languages and their detection in `language`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

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
from inference.language import LANGUAGES, detect_language
from inference.placeholder import (
    MAX_TERM_CHARS,
    PLACEHOLDER_CLOSE,
    PLACEHOLDER_OPEN,
    Applied,
    LexiconEntry,
    Placeholder,
    PlaceholderStream,
    fold,
    protect,
    restore,
)

__all__ = [
    "DEV_ENGINE",
    "DEV_NOTE",
    "LANGUAGES",
    "MAX_ENTRIES",
    "MAX_OUTPUT_TOKENS",
    "MAX_SEED",
    "MAX_TERM_CHARS",
    "MAX_TEXT_CHARS",
    "MIN_OUTPUT_TOKENS",
    "OPUS_MT",
    "PLACEHOLDER_CLOSE",
    "PLACEHOLDER_OPEN",
    "TEMPERATURE",
    "Applied",
    "LexiconEntry",
    "Placeholder",
    "PlaceholderStream",
    "TranslateSpec",
    "build_prompt",
    "detect_language",
    "opus_mt_model",
    "protect",
    "restore",
    "translate",
]

# Limits a validation layer documents and enforces; the dataclasses below enforce them too.
MAX_TEXT_CHARS = 10_000
MAX_ENTRIES = 500
MAX_SEED = 2**31 - 1
MIN_OUTPUT_TOKENS = 16
MAX_OUTPUT_TOKENS = 8_192
TEMPERATURE = 0.0  # a translation is wanted faithful, not varied


# `translate(model=OPUS_MT)` routes to the per-pair model; any other name is used as given.
OPUS_MT = "opus-mt"
DEV_ENGINE = "dev-engine"  # the dev engine's name, not imported: it is a peer backend
DEV_NOTE = "dev-engine cannot translate; glossary applied to the source text"


def opus_mt_model(source_lang: str, target_lang: str) -> str:
    """The OPUS-MT model of one language pair, e.g. `opus-mt-en-zh`."""
    return f"{OPUS_MT}-{source_lang}-{target_lang}"


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
            key = fold(entry.source, self.case_sensitive)
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
    tokens = prompt_tokens = 0  # held until restored text can go with them
    async for delta in engine.stream(request):
        tokens += delta.tokens
        prompt_tokens += delta.prompt_tokens
        text = stream.feed(delta.text)
        if text:
            yield Delta(text, tokens=tokens, prompt_tokens=prompt_tokens)
            tokens = prompt_tokens = 0
    rest = stream.flush()
    if rest or tokens or prompt_tokens:
        yield Delta(rest, tokens=tokens, prompt_tokens=prompt_tokens)
    dropped = len(stream.missing)
    lost = f"the model dropped {dropped} lexicon term(s); see missing" if dropped else None
    yield _result(spec, source_lang, chosen, stream, translated=True, note=lost)

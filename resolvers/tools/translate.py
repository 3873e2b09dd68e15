"""The translate tool: OPUS-MT per language pair, with the user's lexicon honoured exactly
(terms protected before the model, restored after) and the applied terms reported (FAST)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field, field_validator

from inference import translate
from inference.base import Engine, Piece
from resolvers.access.auth import Principal
from resolvers.core.errors import InvalidInput
from resolvers.lexicon import get_lexicon
from resolvers.storage.objects import ObjectStore
from resolvers.tools.base import MAX_SEED, Mode, Tool, ToolInput

_LANGUAGES = ", ".join(f"{code} ({name})" for code, name in translate.LANGUAGES.items())


def _known(code: str | None) -> str | None:
    if code is not None and code not in translate.LANGUAGES:
        raise ValueError(f"not a supported language; use one of {', '.join(translate.LANGUAGES)}")
    return code


class TranslateInput(ToolInput):
    """What to translate, into which language, with which lexicon."""

    text: str = Field(
        min_length=1,
        max_length=translate.MAX_TEXT_CHARS,
        description=f"The text, 1 to {translate.MAX_TEXT_CHARS:,} characters.",
    )
    target_lang: str = Field(description=f"Language to translate into: {_LANGUAGES}.")
    source_lang: str | None = Field(
        None, description="Language of the text (same codes); detected when omitted."
    )
    lexicon_id: str | None = Field(
        None,
        description="One of your lexicons: each of its terms found in the text is rendered "
        "exactly as the lexicon says, and the result lists which were applied.",
    )
    case_sensitive: bool = Field(False, description="Match lexicon terms case-sensitively.")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="For reproducible output.")
    max_tokens: int | None = Field(
        None,
        ge=translate.MIN_OUTPUT_TOKENS,
        le=translate.MAX_OUTPUT_TOKENS,
        description=f"Output budget in model tokens, {translate.MIN_OUTPUT_TOKENS} to "
        f"{translate.MAX_OUTPUT_TOKENS}; sized to the text when omitted.",
    )

    _languages = field_validator("target_lang", "source_lang")(_known)


async def _with_lexicon(
    data: dict[str, Any], principal: Principal, _store: ObjectStore
) -> dict[str, Any]:
    """Snapshot the lexicon's terms into the input: the run (and the cache key) use them."""
    entries: list[dict[str, str]] = []
    if data.get("lexicon_id"):
        lexicon = await get_lexicon(principal=principal, lexicon_id=data["lexicon_id"])
        if lexicon.target_lang != data["target_lang"]:
            raise InvalidInput(
                f"lexicon_id: this lexicon translates into {lexicon.target_lang}, "
                f"not {data['target_lang']}",
                field="lexicon_id",
            )
        entries = lexicon.entries
    return {**data, "entries": entries}


def _spec(data: Mapping[str, Any]) -> translate.TranslateSpec:
    return translate.TranslateSpec(
        text=data["text"],
        target_lang=data["target_lang"],
        source_lang=data["source_lang"],
        entries=tuple(
            translate.LexiconEntry(e["source"], e["target"]) for e in data.get("entries", ())
        ),
        case_sensitive=data["case_sensitive"],
        seed=data["seed"],
        max_tokens=data["max_tokens"],
    )


def _run(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    return translate.translate(engine, _spec(data), model=model, request_id=request_id)


TOOL = Tool(
    name="translate",
    description="Translation between 14 languages (OPUS-MT, one model per language pair) that "
    "honours your lexicon exactly: terms are protected before the model and restored after. "
    "Result: source (or detected) and target language, the lexicon terms applied and any the "
    "model dropped. The dev engine cannot translate: it returns the text with the glossary "
    "applied and says so (translated: false).",
    mode=Mode.FAST,
    input_model=TranslateInput,
    run=_run,
    model_setting="translate_model",
    check=_spec,
    prepare=_with_lexicon,
)

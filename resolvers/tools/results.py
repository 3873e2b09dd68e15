"""Typed models of the structured results the tools store on `Creation.result`.

One frozen model per tool that yields a `Structured` piece, its fields named exactly as the
engine's dict keys, for generating GraphQL output types (pydantic `all_fields=True`, as tool
inputs are). `RESULT_MODELS` maps a tool's GraphQL name to its model; write and report yield
no structured result and are absent. `RESULT_ENUMS` documents the enums these models add;
the ones tool inputs already use (CodeLanguage, SocialPlatform, VideoPlatform) are
documented by their tool. Larger tools' models live in `results_swot`, `results_tarot` and
`results_video`.

The types are members of one GraphQL union (`ToolDetails`), so a field name two members share
must have one type in both: else a document selecting every member's fields fails
validation (OverlappingFieldsCanBeMerged). Such a field gets its tool's prefix in the schema
through `alias` (`socialPlatform`, `videoPlatform`), which strawberry takes as the GraphQL
name, while `validation_alias` keeps the stored key.
"""

from __future__ import annotations

from enum import Enum, StrEnum

from pydantic import BaseModel, ConfigDict, Field

from inference import media, translate
from inference.caption import (
    BRIGHT_FROM,
    DARK_BELOW,
    NAMED_COLOURS,
    OPAQUE_FROM,
    SQUARE_TOLERANCE,
    TOP_COLOURS,
    Brightness,
    Orientation,
)
from inference.code import Language as CodeLanguage
from inference.social import PROFILES, TitleRule
from inference.social import Platform as SocialPlatform
from resolvers.tools import results_swot, results_tarot, results_video
from resolvers.tools.base import EnumDoc

# -- translate ---------------------------------------------------------------------------------


class TranslateAppliedTerm(BaseModel):
    """A lexicon entry whose target was put into the output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="The lexicon entry's source term, as the lexicon has it.")
    target: str = Field(description="Its target term, put into the output exactly as written.")
    count: int = Field(ge=1, description="How many times the target was put in, at least 1.")


class TranslateMissingTerm(BaseModel):
    """A lexicon entry the model dropped: its target is missing from the output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    placeholder: str = Field(description="The token that stood for the term, e.g. `⟦1⟧`.")
    source: str = Field(description="The lexicon entry's source term.")
    target: str = Field(description="Its target term, which should have appeared.")
    expected: int = Field(ge=1, description="Occurrences of the term in the source text.")
    found: int = Field(ge=0, description="Occurrences restored in the output, below expected.")


class TranslateResult(BaseModel):
    """A translation's languages and model, and how the lexicon was honoured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_lang: str = Field(
        description=f"Code of the text's language ({', '.join(translate.LANGUAGES)}), as given "
        "or detected."
    )
    detected: bool = Field(description="True when sourceLang was detected, not given.")
    target_lang: str = Field(description="Code of the language translated into (same codes).")
    model: str | None = Field(
        description=f"The model that translated, e.g. `{translate.opus_mt_model('en', 'zh')}`; "
        f"`{translate.DEV_ENGINE}` when the dev engine only applied the glossary; null when "
        "the text was already in the target language and no model was asked."
    )
    translated: bool = Field(
        description="False when no model translated (dev engine, or text already in the target "
        "language): the text is then the source with the glossary applied."
    )
    applied: list[TranslateAppliedTerm] = Field(
        description="Lexicon entries put into the output, in order of their placeholders; "
        "empty without a lexicon or when none of its terms occur."
    )
    missing: list[TranslateMissingTerm] = Field(
        description="Lexicon entries the model dropped (fewer in the output than in the text); "
        "empty when lexiconOk."
    )
    lexicon_ok: bool = Field(description="True when every lexicon term found made it through.")
    note: str | None = Field(
        None,
        description="Why the text is not a faithful model translation: no model translated, or "
        "the model dropped lexicon terms. Null otherwise.",
    )


# -- code --------------------------------------------------------------------------------------


class CodeLanguageCheck(StrEnum):
    """Whether the returned code is in the language asked for."""

    MATCH = "match"
    MISMATCH = "mismatch"
    UNKNOWN = "unknown"


class CodeResult(BaseModel):
    """The code taken from the answer (the creation's text) and what the checks found."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: CodeLanguage = Field(
        alias="codeLanguage", validation_alias="language", description="The language asked for."
    )
    code: str = Field(
        description="The code: the first fenced block tagged with the language, else the first "
        "fenced block, else the whole answer; without its fence lines."
    )
    blocks: int = Field(ge=0, description="Fenced code blocks in the answer; 0 when unfenced.")
    language_check: CodeLanguageCheck = Field(
        description="The detected language against the requested one (JavaScript passes for "
        "TypeScript, C for C++); UNKNOWN when none was detected."
    )
    detected_language: CodeLanguage | None = Field(
        description="The language guessed from syntax markers; null when none stands out."
    )
    syntax_ok: bool | None = Field(
        description="Python only: whether the code parses (it is never run). Null for other "
        "languages and when the parser gives up on very deep nesting."
    )


# -- socialPost --------------------------------------------------------------------------------


def _name(platform: SocialPlatform) -> str:
    return PROFILES[platform].display_name.split()[0]


def _platforms(rule: TitleRule) -> str:
    return ", ".join(_name(p) for p in SocialPlatform if PROFILES[p].title is rule)


_TITLE_LIMITS = ", ".join(
    f"{_name(p)} {PROFILES[p].title_limit}"
    for p in SocialPlatform
    if PROFILES[p].title is not TitleRule.NONE
)
_DIGESTS = ", ".join(_name(p) for p in SocialPlatform if PROFILES[p].digest_limit)
_DIGEST_LIMIT = max(PROFILES[p].digest_limit or 0 for p in SocialPlatform)


class SocialPostResult(BaseModel):
    """The finished post, valid for its platform: title, body and hashtags, and its length."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: SocialPlatform = Field(
        alias="socialPlatform",
        validation_alias="platform",
        description="The platform the post was styled for.",
    )
    title: str | None = Field(
        description=f"The title, at most the platform's title length ({_TITLE_LIMITS} "
        f"characters). Always set on {_platforms(TitleRule.REQUIRED)}; null on platforms "
        f"without titles, and on {_platforms(TitleRule.OPTIONAL)} when neither you nor the "
        "model gave one."
    )
    body: str = Field(description="The post without title and hashtags, cut to fit.")
    hashtags: list[str] = Field(
        description="In the platform's syntax (`#tag#` on Weibo and Xiaohongshu, `#Tag` "
        "elsewhere), requested ones first; may be empty."
    )
    text: str = Field(description="The whole post to paste: title, body, hashtags.")
    length: int = Field(
        ge=0,
        description="Length of body plus hashtags as the platform counts it (X weighs CJK "
        "characters and emoji 2 and links 23; Weibo counts two Latin characters as one); "
        "never above limit.",
    )
    limit: int = Field(ge=1, description="The platform's length limit, e.g. 280 on X.")
    truncated: bool = Field(description="True when the body or hashtags were cut to fit.")
    digest: str | None = Field(
        description=f"{_DIGESTS} only: the share-card summary, at most {_DIGEST_LIMIT} "
        "characters; null on other platforms and for an empty body."
    )
    lora_adapter: str = Field(description="The platform's style adapter, e.g. `x-style-v1`.")


# -- imageCaption ------------------------------------------------------------------------------


class ImageFormat(StrEnum):
    """The decoded image's file format."""

    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    GIF = "gif"


class ImageCaptionColour(BaseModel):
    """One of the image's dominant colours, named from a fixed palette."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        description=f"Nearest of {len(NAMED_COLOURS)} palette names, e.g. `navy blue`, `white`."
    )
    hex: str = Field(description="Mean of the pixels that took this name, as `#rrggbb`.")
    share: float = Field(
        ge=0, le=1, description="Share of the sampled visible pixels, 0 to 1, 3 decimals."
    )


class ImageCaptionResult(BaseModel):
    """Facts measured from the pixels and the caption."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(ge=1, description="Width in pixels (first frame of a GIF).")
    height: int = Field(ge=1, description="Height in pixels.")
    format: ImageFormat = Field(
        alias="imageFormat", validation_alias="format", description="The image's file format."
    )
    orientation: Orientation = Field(
        description=f"Square when the sides are within {SQUARE_TOLERANCE:.0%} of each other."
    )
    aspect: float = Field(gt=0, description="Width divided by height, 3 decimals (1.5 = 3:2).")
    colours: list[ImageCaptionColour] = Field(
        description=f"Up to {TOP_COLOURS} dominant colours, most common first, of the pixels "
        f"with alpha of {OPAQUE_FROM} or more (of all pixels when none is)."
    )
    brightness: Brightness = Field(description="Mean luma of the visible pixels.")
    transparent: bool = Field(description="True when some pixel is not fully opaque.")
    caption: str = Field(
        description="The caption. When modelCaption is false it only states the measured "
        "facts, in English."
    )
    model_caption: bool = Field(
        description="True when a vision model wrote the caption; false with the dev engine."
    )
    note: str | None = Field(
        None, description="Why the caption is not a model's; null when modelCaption is true."
    )


# -- transcribe --------------------------------------------------------------------------------


class AudioFormat(StrEnum):
    """The audio's file format, recognised from its bytes."""

    WAV = "wav"
    MP3 = "mp3"
    FLAC = "flac"
    OGG = "ogg"
    M4A = "m4a"


class TranscribeResult(BaseModel):
    """The transcript and what the audio's headers told."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: str | None = Field(
        alias="audioLanguage",
        validation_alias="language",
        description="The language asked for; null when the model detected it (the detected "
        "language is not reported).",
    )
    duration_seconds: float | None = Field(
        ge=0,
        alias="audioDurationSeconds",
        validation_alias="duration_seconds",
        description="Length in seconds from the headers; null when they do not tell it cheaply "
        "(MP3, some Ogg and M4A files).",
    )
    format: AudioFormat = Field(
        alias="audioFormat", validation_alias="format", description="The audio's file format."
    )
    text: str = Field(
        description="The transcript, trimmed; segments start with [mm:ss] when timestamps were "
        "asked for."
    )


# -- the registry ------------------------------------------------------------------------------

RESULT_MODELS: dict[str, type[BaseModel]] = {
    "translate": TranslateResult,
    "code": CodeResult,
    "socialPost": SocialPostResult,
    "swot": results_swot.SwotResult,
    "tarot": results_tarot.TarotResult,
    "imageCaption": ImageCaptionResult,
    "transcribe": TranscribeResult,
    "videoScript": results_video.VideoScriptResult,
}
"""The result model of each tool that yields a structured result, by the tool's GraphQL name."""

RESULT_ENUMS: dict[type[Enum], EnumDoc] = {
    CodeLanguageCheck: EnumDoc(
        "Whether the returned code is in the language asked for.",
        {
            CodeLanguageCheck.MATCH: "Detected as the requested language (or a subset of it).",
            CodeLanguageCheck.MISMATCH: "Detected as another language.",
            CodeLanguageCheck.UNKNOWN: "No language stands out clearly.",
        },
    ),
    ImageFormat: EnumDoc(
        "An image file format.",
        {f: f"MIME type {media.IMAGE_CONTENT_TYPES[f]}." for f in ImageFormat},
    ),
    Orientation: EnumDoc(
        "The image's shape.",
        {
            Orientation.LANDSCAPE: "Wider than high.",
            Orientation.PORTRAIT: "Higher than wide.",
            Orientation.SQUARE: f"Sides within {SQUARE_TOLERANCE:.0%} of each other.",
        },
        name="ImageOrientation",
    ),
    Brightness: EnumDoc(
        "Mean luma (0-255) of the visible pixels, in three bands.",
        {
            Brightness.DARK: f"Below {DARK_BELOW}.",
            Brightness.MEDIUM: f"{DARK_BELOW} to {BRIGHT_FROM - 1}.",
            Brightness.BRIGHT: f"{BRIGHT_FROM} and above.",
        },
        name="ImageBrightness",
    ),
    AudioFormat: EnumDoc(
        "An audio file format.",
        {f: f"MIME type {media.AUDIO_CONTENT_TYPES[f]}." for f in AudioFormat},
    ),
    **results_swot.ENUMS,
    **results_tarot.ENUMS,
    **results_video.ENUMS,
}
"""How each enum the result models add is documented in the schema."""

"""Every tool's structured result validates against its typed model and round-trips.

Results come from the real engines on the dev engine (or, where the dev engine cannot run a
tool's model path, a scripted stand-in with another name), over varied inputs.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import types
import typing
import wave
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import BaseModel, ValidationError

from inference import (
    caption,
    code,
    media,
    report,
    social,
    swot,
    tarot,
    transcribe,
    translate,
    video,
    write,
)
from inference.base import (
    Completion,
    Delta,
    Engine,
    GenerationRequest,
    ModelUnavailable,
    Piece,
    Structured,
    collect,
)
from inference.dev import DevEngine
from resolvers.tools import TOOLS
from resolvers.tools.results import (
    RESULT_ENUMS,
    RESULT_MODELS,
    AudioFormat,
    CodeLanguageCheck,
    ImageFormat,
)
from resolvers.tools.results_tarot import TarotObservationRule

ROOT = Path(__file__).resolve().parents[3]
DEV = DevEngine(token_delay=0)


class ScriptedEngine:
    """A stand-in for a real model: streams `text` word by word, whatever the prompt."""

    def __init__(self, text: str, *, name: str = "triton") -> None:
        self.text = text
        self.name = name

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        for part in re.findall(r"\s*\S+", self.text):
            yield Delta(part)

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    async def aclose(self) -> None:
        pass


class UppercasingEngine(ScriptedEngine):
    """A stand-in translation model: uppercases the text part of the prompt, keeps `⟦n⟧`
    tokens, and loses the ones starting with `drop`."""

    def __init__(self, *, drop: str | None = None) -> None:
        super().__init__("", name="fake-opus")
        self.drop = drop

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        text = request.prompt[int(request.parameters["text_start"]) :]
        for part in re.findall(r"\S+\s*", text):
            if not (self.drop and part.startswith(self.drop)):
                yield Delta(part if part.startswith("⟦") else part.upper())


async def run(
    tool_run: Callable[..., AsyncIterator[Piece]],
    spec: object,
    engine: Engine = DEV,
    *,
    model: str = "m",
) -> dict[str, Any]:
    """The one structured result of an engine run, as `Creation.result` stores it (JSON)."""
    pieces = tool_run(engine, spec, model=model, request_id="r")
    found = [dict(piece.data) async for piece in pieces if isinstance(piece, Structured)]
    assert len(found) == 1
    stored = json.loads(json.dumps(found[0]))
    assert stored == found[0]  # JSON-ready as yielded (a tuple would come back a list)
    return typing.cast(dict[str, Any], stored)


def check(tool: str, result: Mapping[str, Any]) -> Any:
    """The result as its tool's model, after asserting that it round-trips exactly."""
    model = RESULT_MODELS[tool].model_validate(result)
    assert model.model_dump(mode="json") == result
    return model


def image(size: tuple[int, int], colour: tuple[int, ...], fmt: str = "png") -> bytes:
    """An image of `colour` with a white band on its left third."""
    mode = "RGBA" if len(colour) == 4 else "RGB"
    picture = Image.new(mode, size, colour)
    picture.paste((255, 255, 255, 255)[: len(colour)], (0, 0, size[0] // 3, size[1]))
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt.upper())
    return buffer.getvalue()


def wav(seconds: float, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x01\x00" * int(seconds * rate))
    return buffer.getvalue()


MP3 = b"\xff\xfb\x90\x64" + b"\0" * 413  # one MPEG-1 layer III frame header: no duration


# --- code ------------------------------------------------------------------------------------

FENCED_PYTHON = "Here it is:\n```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n"


@pytest.mark.parametrize(
    ("language", "engine", "check_is", "syntax_ok"),
    [
        (code.Language.PYTHON, ScriptedEngine(FENCED_PYTHON), CodeLanguageCheck.MATCH, True),
        (code.Language.PYTHON, ScriptedEngine("```py\ndef broken(:\n```"), None, False),
        (code.Language.TYPESCRIPT, ScriptedEngine(FENCED_PYTHON), CodeLanguageCheck.MISMATCH, None),
        (code.Language.SQL, DEV, None, None),
        (code.Language.RUST, DEV, None, None),
    ],
)
async def test_code_results(
    language: code.Language,
    engine: Engine,
    check_is: CodeLanguageCheck | None,
    syntax_ok: bool | None,
) -> None:
    spec = code.CodeSpec(language=language, task="add two numbers", max_tokens=60)
    result = check("code", await run(code.code, spec, engine))
    assert result.language is language and result.syntax_ok is syntax_ok
    if check_is is not None:
        assert result.language_check is check_is


# --- socialPost ------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", list(social.Platform))
async def test_social_post_results(platform: social.Platform) -> None:
    spec = social.SocialSpec(
        platform,
        "Weekend coffee shops in Hangzhou for remote workers 杭州周末咖啡",
        keywords=("coffee", "remote work"),
        hashtags=("Hangzhou",),
        seed=7,
    )
    result = check("socialPost", await run(social.social_post, spec))
    profile = social.PROFILES[platform]
    assert result.platform is platform and result.length <= result.limit == profile.limit
    assert (result.digest is not None) == (profile.digest_limit is not None)
    assert (result.title is None) == (profile.title is not social.TitleRule.REQUIRED)


# --- swot ------------------------------------------------------------------------------------

FACTS = (
    "Our engineering team is highly skilled",
    "We have a loyal customer base",
    "Our costs are rising",
    "Demand for e-bikes is growing in Europe",
    "New competitors are entering the market",
    "The weather",
)


@pytest.mark.parametrize(
    ("facts", "template"),
    [
        (FACTS, swot.SwotTemplate(items=1, strategies=1)),
        ((), None),
        (FACTS[:3], swot.SwotTemplate(threats_prompt="Think about regulation", items=8)),
    ],
)
async def test_swot_results(facts: tuple[str, ...], template: swot.SwotTemplate | None) -> None:
    spec = swot.SwotSpec(subject="an e-bike maker", facts=facts, template=template, seed=3)
    result = check("swot", await run(swot.swot, spec))
    chosen = template or swot.SwotTemplate()
    assert len(result.strengths) == len(result.threats) == chosen.items
    assert len(result.strategies.SO) == len(result.strategies.WT) == chosen.strategies
    assert bool(result.unclassified) == ("The weather" in facts)
    assert bool(result.overflow) == (chosen.items == 1 and bool(facts))


# --- tarot -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spread", "allow_reversed", "question"),
    [
        *((spread, True, "Should I move abroad?") for spread in tarot.SPREADS.values()),
        (tarot.Spread.custom(["Me", "You", "Us", "Them", "Next"]), False, ""),
        (tarot.CELTIC_CROSS, False, "What about work?"),
    ],
)
async def test_tarot_results(spread: tarot.Spread, allow_reversed: bool, question: str) -> None:
    spec = tarot.TarotSpec(
        question=question, spread=spread, seed=11, allow_reversed=allow_reversed, max_tokens=16
    )
    result = check("tarot", await run(tarot.tarot, spec))
    assert [draw.position for draw in result.positions] == [p.name for p in spread.positions]
    assert result.observations and result.spread == spread.name


# --- videoScript -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "topic", "seconds", "language"),
    [
        (video.Platform.TIKTOK, "Three ways to brew coffee at home", 5, None),
        (video.Platform.YOUTUBE, "How solar lanterns work", 90, "en"),
        (video.Platform.DOUYIN, "周末在杭州喝咖啡的好去处", 30, None),
        (video.Platform.BILIBILI, "東京の朝ごはん", 45, "ja"),
    ],
)
async def test_video_script_results(
    platform: video.Platform, topic: str, seconds: int, language: str | None
) -> None:
    spec = video.VideoSpec(
        platform, topic, duration_seconds=seconds, language=language, max_tokens_per_scene=32
    )
    result = check("videoScript", await run(video.video_script, spec))
    assert sum(scene.duration for scene in result.scenes) == seconds
    assert len(result.scenes) >= 2 and all(s.words <= s.budget for s in result.scenes)


# --- translate -------------------------------------------------------------------------------

KING = translate.LexiconEntry("Creation King", "创作之王")
APP = translate.LexiconEntry("app", "应用")


async def translated(engine: Engine, text: str, *entries: translate.LexiconEntry) -> Any:
    spec = translate.TranslateSpec(text=text, target_lang="zh", entries=entries)
    return await run(translate.translate, spec, engine, model=translate.OPUS_MT)


async def test_translate_results_on_the_dev_engine_say_nothing_was_translated() -> None:
    result = check(
        "translate", await translated(DEV, "Creation King makes the Creation King app.", KING, APP)
    )
    assert not result.translated and result.model == translate.DEV_ENGINE
    assert [(a.source, a.count) for a in result.applied] == [("Creation King", 2), ("app", 1)]
    assert result.note == translate.DEV_NOTE and result.detected


async def test_translate_results_from_a_model() -> None:
    dropped = check(
        "translate",
        await translated(UppercasingEngine(drop="⟦2"), "Creation King ships an app.", KING, APP),
    )
    assert dropped.model == "opus-mt-en-zh" and not dropped.lexicon_ok
    assert [(m.source, m.expected, m.found) for m in dropped.missing] == [("app", 1, 0)]
    assert dropped.note is not None
    already = check("translate", await translated(UppercasingEngine(), "创作之王发布了新应用。"))
    assert already.model is None and not already.translated and already.note is not None


async def test_a_faithful_translation_omits_the_note_key() -> None:
    """An engine inconsistency the model absorbs: `note` is left out rather than null."""
    result = await translated(UppercasingEngine(), "Creation King ships an app.", KING, APP)
    assert "note" not in result and result["lexicon_ok"]
    model = RESULT_MODELS["translate"].model_validate(result)
    assert model.model_dump(mode="json") == {**result, "note": None}
    assert model.model_dump(mode="json", exclude_unset=True) == result


# --- imageCaption ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "colour", "fmt", "style", "language"),
    [
        ((60, 40), (0, 0, 128), ImageFormat.PNG, caption.CaptionStyle.SHORT, "en"),
        ((32, 32), (255, 0, 0, 100), ImageFormat.PNG, caption.CaptionStyle.DETAILED, "fr"),
        ((30, 90), (20, 20, 20), ImageFormat.JPEG, caption.CaptionStyle.ALT_TEXT, "en"),
        ((50, 50), (0, 128, 0), ImageFormat.GIF, caption.CaptionStyle.SHORT, "en"),
        ((40, 41), (250, 250, 0), ImageFormat.WEBP, caption.CaptionStyle.SHORT, "en"),
    ],
)
async def test_image_caption_results_on_the_dev_engine(
    size: tuple[int, int],
    colour: tuple[int, ...],
    fmt: ImageFormat,
    style: caption.CaptionStyle,
    language: str,
) -> None:
    spec = caption.CaptionSpec(image=image(size, colour, fmt), style=style, language=language)
    result = check("imageCaption", await run(caption.caption, spec))
    assert result.format is fmt and not result.model_caption and result.note
    assert 1 <= len(result.colours) <= caption.TOP_COLOURS


async def test_a_model_caption_omits_the_note_key() -> None:
    """An engine inconsistency the model absorbs: `note` is left out rather than null."""
    spec = caption.CaptionSpec(image=image((60, 40), (0, 0, 128)))
    result = await run(caption.caption, spec, ScriptedEngine("A navy flag with a white band."))
    assert "note" not in result and result["model_caption"]
    model = RESULT_MODELS["imageCaption"].model_validate(result)
    assert model.model_dump(mode="json") == {**result, "note": None}


# --- transcribe ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audio", "language", "fmt", "seconds"),
    [(wav(1.5), "en", AudioFormat.WAV, 1.5), (MP3, None, AudioFormat.MP3, None)],
)
async def test_transcribe_results_from_a_speech_model(
    audio: bytes, language: str | None, fmt: AudioFormat, seconds: float | None
) -> None:
    spec = transcribe.TranscribeSpec(audio=audio, language=language, timestamps=True)
    engine = ScriptedEngine("[00:00] Hello and welcome.")
    result = check("transcribe", await run(transcribe.transcribe, spec, engine))
    assert (result.format, result.duration_seconds, result.language) == (fmt, seconds, language)


async def test_transcribe_on_the_dev_engine_has_no_result_to_check() -> None:
    spec = transcribe.TranscribeSpec(audio=wav(0.5))
    with pytest.raises(ModelUnavailable):
        await run(transcribe.transcribe, spec)


# --- the registry ----------------------------------------------------------------------------


async def test_write_and_report_yield_no_structured_result_and_have_no_model() -> None:
    runs = [
        write.write(DEV, write.WriteSpec("a poem", max_tokens=20), model="m", request_id="r"),
        report.report(DEV, report.ReportSpec("Solar", 2, 10), model="m", request_id="r"),
    ]
    for pieces in runs:
        assert not [piece async for piece in pieces if isinstance(piece, Structured)]
    assert set(TOOLS) - set(RESULT_MODELS) == {"write", "report"}
    assert set(RESULT_MODELS) <= set(TOOLS)


async def sample(tool: str) -> dict[str, Any]:
    """One real result of `tool`."""
    runs: dict[str, tuple[Callable[..., AsyncIterator[Piece]], object, Engine]] = {
        "code": (code.code, code.CodeSpec(code.Language.GO, "add"), ScriptedEngine(FENCED_PYTHON)),
        "socialPost": (social.social_post, social.SocialSpec(social.Platform.X, "lanterns"), DEV),
        "swot": (swot.swot, swot.SwotSpec(subject="an e-bike maker", facts=FACTS), DEV),
        "tarot": (tarot.tarot, tarot.TarotSpec(seed=1), DEV),
        "videoScript": (video.video_script, video.VideoSpec(video.Platform.TIKTOK, "coffee"), DEV),
        "translate": (
            translate.translate,
            translate.TranslateSpec("Creation King!", "zh", entries=(KING,)),
            DEV,
        ),
        "imageCaption": (caption.caption, caption.CaptionSpec(image((8, 8), (0, 0, 0))), DEV),
        "transcribe": (
            transcribe.transcribe,
            transcribe.TranscribeSpec(wav(0.2)),
            ScriptedEngine("Hi."),
        ),
    }
    tool_run, spec, engine = runs[tool]
    return await run(tool_run, spec, engine)


async def test_an_extra_key_is_refused_at_any_depth() -> None:
    for tool in RESULT_MODELS:
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            RESULT_MODELS[tool].model_validate({**await sample(tool), "extra": 1})
    result = await sample("swot")
    result["strategies"]["SO"][0]["score"] = 0.5
    with pytest.raises(ValidationError, match=r"strategies\.SO\.0\.score"):
        RESULT_MODELS["swot"].model_validate(result)


@pytest.mark.parametrize(
    ("tool", "path", "value"),
    [
        ("socialPost", ("length",), "long"),
        ("socialPost", ("platform",), "myspace"),
        ("swot", ("strengths", 0, "confidence"), "high"),
        ("swot", ("overflow",), None),
        ("tarot", ("positions", 0, "index"), "first"),
        ("tarot", ("observations", 0, "rule"), "lucky_day"),
        ("videoScript", ("scenes", 0, "role"), "intro"),
        ("videoScript", ("scenes", 0, "captions"), "one card"),
        ("code", ("blocks",), [1]),
        ("translate", ("applied", 0, "count"), 0),
        ("imageCaption", ("colours", 0, "share"), 1.5),
        ("transcribe", ("format",), "aiff"),
    ],
)
async def test_a_wrong_value_is_refused(
    tool: str, path: tuple[str | int, ...], value: object
) -> None:
    result = await sample(tool)
    RESULT_MODELS[tool].model_validate(result)
    *parents, last = path
    target: Any = result
    for step in parents:
        target = target[step]
    target[last] = value
    with pytest.raises(ValidationError, match=re.escape(".".join(map(str, path)))):
        RESULT_MODELS[tool].model_validate(result)


async def test_a_missing_key_is_refused_and_results_are_frozen() -> None:
    result = await sample("transcribe")
    model = RESULT_MODELS["transcribe"].model_validate(result)
    with pytest.raises(ValidationError, match="frozen"):
        model.text = "changed"  # type: ignore[attr-defined]
    del result["text"]
    with pytest.raises(ValidationError, match="text"):
        RESULT_MODELS["transcribe"].model_validate(result)


# --- fit for the schema ----------------------------------------------------------------------


def _types(annotation: Any) -> Iterator[Any]:
    yield annotation
    for argument in typing.get_args(annotation):
        yield from _types(argument)


def _models() -> dict[str, type[BaseModel]]:
    """Every result model, nested ones included, by class name."""
    found: dict[str, type[BaseModel]] = {}

    def visit(model: type[BaseModel]) -> None:
        assert found.setdefault(model.__name__, model) is model, f"{model.__name__} twice"
        for info in model.model_fields.values():
            for kind in _types(info.annotation):
                if (
                    isinstance(kind, type)
                    and issubclass(kind, BaseModel)
                    and kind not in found.values()
                ):
                    visit(kind)

    for model in RESULT_MODELS.values():
        visit(model)
    return found


def _enums() -> set[type[Enum]]:
    return {
        kind
        for model in _models().values()
        for info in model.model_fields.values()
        for kind in _types(info.annotation)
        if isinstance(kind, type) and issubclass(kind, Enum)
    }


def test_every_model_and_field_is_described_precisely_typed_and_frozen() -> None:
    for name, model in _models().items():
        assert model.__doc__ and "\n" not in model.__doc__.strip(), name
        assert model.model_config.get("extra") == "forbid" and model.model_config.get("frozen")
        for field, info in model.model_fields.items():
            assert info.description and len(info.description) >= 10, f"{name}.{field}"
            kinds = list(_types(info.annotation))
            assert Any not in kinds and dict not in map(typing.get_origin, kinds), f"{name}.{field}"
            if typing.get_origin(info.annotation) in (typing.Union, types.UnionType):
                assert type(None) in typing.get_args(info.annotation), f"{name}.{field}"
                assert len(typing.get_args(info.annotation)) == 2, f"{name}.{field}"


def test_every_enum_is_documented_once_under_a_unique_name() -> None:
    documented = {enum: doc for tool in TOOLS.values() for enum, doc in tool.enums.items()}
    assert not set(documented) & set(RESULT_ENUMS)
    documented |= RESULT_ENUMS
    assert _enums() <= set(documented)
    assert set(RESULT_ENUMS) <= _enums()
    names = [doc.name or enum.__name__ for enum, doc in documented.items()]
    assert len(names) == len(set(names))
    for enum, doc in RESULT_ENUMS.items():
        assert set(doc.values) == set(enum), enum


def test_the_new_enums_match_the_engines_exactly() -> None:
    assert set(ImageFormat) == set(media.IMAGE_CONTENT_TYPES)
    assert set(AudioFormat) == set(media.AUDIO_CONTENT_TYPES)
    detected = [*code.Language, None]
    assert {code.language_check(a, b) for a in code.Language for b in detected} == set(
        CodeLanguageCheck
    )
    rules = re.findall(r'Observation\(\s*"(\w+)"', Path(tarot.__file__).read_text())
    assert set(rules) == set(TarotObservationRule)


def graphql_sdl() -> str:
    """The SDL of a schema whose query returns every result type, generated as tool inputs are
    (strawberry's pydantic integration, all fields); run in a subprocess so the enums'
    strawberry registration cannot leak into other tests."""
    import strawberry
    from strawberry.experimental.pydantic import type as pydantic_type

    for tool in TOOLS.values():
        for enum, doc in tool.enums.items():
            strawberry.enum(enum, name=doc.name, description=doc.description)
    for enum, doc in RESULT_ENUMS.items():
        strawberry.enum(enum, name=doc.name, description=doc.description)
    made: dict[str, Any] = {}
    for name, model in reversed(_models().items()):  # nested models first
        made[name] = pydantic_type(
            model=model, all_fields=True, name=name, description=model.__doc__
        )(type(name, (), {}))
    fields = {tool: made[model.__name__] | None for tool, model in RESULT_MODELS.items()}
    query = strawberry.type(type("Query", (), {"__annotations__": fields, **dict.fromkeys(fields)}))
    return str(strawberry.Schema(query=query).as_str())


def test_the_models_generate_graphql_types() -> None:
    made = subprocess.run(
        [sys.executable, "-c", f"from {__name__} import graphql_sdl; print(graphql_sdl())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    sdl = made.stdout
    for name in _models():
        assert f"\ntype {name} {{" in sdl
    assert "JSON" not in sdl and "lexiconOk: Boolean!" in sdl and "  confidence: Float\n" in sdl
    assert "  rule: TarotObservationRule!" in sdl and "  SO: [SwotStrategy!]!" in sdl

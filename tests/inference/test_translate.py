"""The translate tool: language detection, lexicon protection and restore, and the engine."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator

import pytest

from inference.base import (
    Completion,
    Delta,
    Engine,
    GenerationRequest,
    Piece,
    Stage,
    Structured,
    Usage,
    collect,
    count_tokens,
)
from inference.dev import DevEngine
from inference.translate import (
    DEV_NOTE,
    LANGUAGES,
    MAX_ENTRIES,
    MAX_TERM_CHARS,
    MAX_TEXT_CHARS,
    OPUS_MT,
    LexiconEntry,
    Placeholder,
    PlaceholderStream,
    TranslateSpec,
    detect_language,
    opus_mt_model,
    protect,
    restore,
    translate,
)

E = LexiconEntry
ML_TERMS = (
    E("model", "MODELL"),
    E("machine learning", "ML"),
    E("machine learning model", "ML-Modell"),
)


def protected(
    text: str, *entries: LexiconEntry, case_sensitive: bool = False
) -> tuple[str, tuple[Placeholder, ...]]:
    return protect(text, entries, case_sensitive=case_sensitive)


class UppercasingEngine:
    """A stand-in for a real translation model: it "translates" the text part of the prompt
    by uppercasing words and keeps ⟦n⟧ tokens, one word per delta; `drop` loses a token."""

    name = "fake-opus"

    def __init__(self, *, drop: str | None = None) -> None:
        self.drop = drop
        self.requests: list[GenerationRequest] = []

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self.requests.append(request)
        text = request.prompt[int(request.parameters["text_start"]) :]
        for part in re.findall(r"\S+\s*", text):
            if self.drop and part.startswith(self.drop):
                continue
            yield Delta(part if part.startswith("⟦") else part.upper())

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    async def aclose(self) -> None:
        pass


class ScriptedEngine:
    """Streams fixed deltas, whatever the prompt."""

    name = "scripted"

    def __init__(self, *deltas: str) -> None:
        self.deltas = deltas

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        for text in self.deltas:
            yield Delta(text)

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    async def aclose(self) -> None:
        pass


async def run(spec: TranslateSpec, engine: Engine, model: str = OPUS_MT) -> list[Piece]:
    return [piece async for piece in translate(engine, spec, model=model, request_id="r")]


def text_from(pieces: list[Piece]) -> str:
    return "".join(p.text for p in pieces if isinstance(p, Delta))


def result_of(pieces: list[Piece]) -> dict[str, object]:
    (found,) = [p for p in pieces if isinstance(p, Structured)]
    assert pieces[-1] is found
    return dict(found.data)


# Language detection


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("The weather is nice and the children are playing in the park.", "en"),
        ("Bonjour, je suis très content de vous voir dans la ville.", "fr"),
        ("Der Hund ist nicht hier, und die Katze schläft auf dem Sofa.", "de"),
        ("Straße", "de"),
        ("El perro está en la casa con los niños y la madre.", "es"),
        ("Il cane è nella casa con gli amici e questo mi piace.", "it"),
        ("O cão não está em casa com os amigos, mas eu estou.", "pt"),
        ("Tôi không biết người này là ai.", "vi"),
        ("Saya tidak tahu dengan orang itu dan juga rumahnya.", "id"),
        ("机器学习模型正在训练。", "zh"),
        ("機械学習のモデルを訓練しています。", "ja"),
        ("カタカナ", "ja"),
        ("기계 학습 모델을 훈련하고 있습니다.", "ko"),
        ("Модель машинного обучения обучается.", "ru"),
        ("يتم تدريب نموذج التعلم الآلي.", "ar"),
        ("กำลังฝึกโมเดลการเรียนรู้ของเครื่อง", "th"),
        ("OK 2024!", "en"),
        ("12345 ...", "en"),
        ("我们用 Python 写机器学习代码", "zh"),
    ],
)
def test_detect_language_by_script_and_stop_words(text: str, code: str) -> None:
    assert detect_language(text) == code
    assert code in LANGUAGES


def test_detection_is_deterministic_and_decomposed_vietnamese_still_counts() -> None:
    text = "Tôi không biết người này là ai."
    decomposed = unicodedata.normalize("NFD", text)
    assert decomposed != text
    assert {detect_language(text) for _ in range(5)} == {detect_language(decomposed)} == {"vi"}


# Term protection


@pytest.mark.parametrize("entries", [ML_TERMS, tuple(reversed(ML_TERMS))])
def test_the_longest_overlapping_term_wins_whatever_the_entry_order(
    entries: tuple[LexiconEntry, ...],
) -> None:
    text = "A machine learning model, machine learning, and a model."
    out, placeholders = protect(text, entries, case_sensitive=False)
    assert out == "A ⟦1⟧, ⟦2⟧, and a ⟦3⟧."
    by_token = {p.token: p.entry.source for p in placeholders}
    assert by_token == {
        "⟦1⟧": "machine learning model",
        "⟦2⟧": "machine learning",
        "⟦3⟧": "model",
    }
    assert restore(out, placeholders)[0] == "A ML-Modell, ML, and a MODELL."


def test_matching_is_case_insensitive_when_asked_and_keeps_the_surface() -> None:
    text = "GPU and gpu and Gpu; STRASSE or Straße"
    out, (gpu, street) = protected(text, E("gpu", "GPU"), E("straße", "street"))
    assert out == "⟦1⟧ and ⟦1⟧ and ⟦1⟧; ⟦2⟧ or ⟦2⟧"
    assert gpu.surfaces == ("GPU", "gpu", "Gpu") and gpu.count == 3
    assert street.surfaces == ("STRASSE", "Straße")


def test_matching_is_exact_when_case_sensitive() -> None:
    out, (apple,) = protected(
        "Apple sells apple pie", E("Apple", "Apple Inc."), case_sensitive=True
    )
    assert out == "⟦1⟧ sells apple pie"
    assert apple.surfaces == ("Apple",)
    assert protected("APPLE", E("Apple", "x"), case_sensitive=True) == ("APPLE", ())


def test_latin_terms_match_whole_words_only() -> None:
    text = "cat, category, concat, cats, cat-like, _cat, cat2 and (cat)"
    out, (cat,) = protected(text, E("cat", "Katze"))
    assert out == "⟦1⟧, category, concat, cats, ⟦1⟧-like, _cat, cat2 and (⟦1⟧)"
    assert cat.count == 3
    # A term ending in punctuation needs no boundary after it.
    assert protected("use C++17 now", E("C++", "C-plus-plus"))[0] == "use ⟦1⟧17 now"
    # CJK neighbours do not glue onto a Latin word.
    assert protected("用Python写", E("python", "Py"))[0] == "用⟦1⟧写"


def test_cjk_terms_match_as_substrings() -> None:
    text = "我喜欢机器学习模型和机器学习。"
    out, placeholders = protected(text, E("机器学习", "ML"), E("机器学习模型", "ML model"))
    assert out == "我喜欢⟦1⟧和⟦2⟧。"
    assert [(p.entry.source, p.count) for p in placeholders] == [
        ("机器学习模型", 1),
        ("机器学习", 1),
    ]


def test_repeated_terms_share_one_placeholder_and_are_counted() -> None:
    out, (term,) = protected("token, token, token!", E("token", "jeton"))
    assert out == "⟦1⟧, ⟦1⟧, ⟦1⟧!"
    text, applied, missing = restore(out, (term,))
    assert text == "jeton, jeton, jeton!"
    assert [(a.source, a.target, a.count) for a in applied] == [("token", "jeton", 3)]
    assert missing == ()


def test_text_without_terms_is_unchanged() -> None:
    assert protected("nothing to see", E("model", "x")) == ("nothing to see", ())
    assert restore("nothing to see", ()) == ("nothing to see", (), ())


# Restore


def test_targets_with_regex_special_characters_are_put_back_exactly() -> None:
    targets = [r"\1 $0 \g<0>", "a.*b+?", "(x|y)[z]{2}^", "\\"]
    entries = [E(f"term{n}", target) for n, target in enumerate(targets)]
    out, placeholders = protect("term0 term1 term2 term3", entries, case_sensitive=False)
    text, applied, missing = restore(out.upper(), placeholders)
    assert text == " ".join(targets)
    assert len(applied) == 4 and missing == ()


def test_a_padded_placeholder_is_still_restored() -> None:
    _, placeholders = protected("model", E("model", "Modell"))
    assert restore("Das ⟦ 1 ⟧.", placeholders)[0] == "Das Modell."


def test_dropped_placeholders_are_reported_missing() -> None:
    out, placeholders = protected("cat and dog and cat", E("cat", "Katze"), E("dog", "Hund"))
    assert out == "⟦1⟧ and ⟦2⟧ and ⟦1⟧"
    text, applied, missing = restore("⟦1⟧ UND ⟦7⟧", placeholders)
    # An unknown token is not ours: it passes through, nothing is invented for it.
    assert text == "Katze UND ⟦7⟧"
    assert [(a.source, a.count) for a in applied] == [("cat", 1)]
    assert [(p.token, p.entry.source) for p in missing] == [("⟦1⟧", "cat"), ("⟦2⟧", "dog")]


# Streaming restore


def test_the_stream_never_emits_half_a_placeholder() -> None:
    entries = [E(f"w{n}", f"<{n}>") for n in range(1, 13)]
    source = " ".join(f"w{n}" for n in range(1, 13))
    _, placeholders = protect(source, entries, case_sensitive=False)
    stream = PlaceholderStream(placeholders)
    emitted = [stream.feed(part) for part in ["Vor ⟦", "1", "2⟧ nach"]]
    assert emitted == ["Vor ", "", "<12> nach"]
    assert stream.flush() == ""
    assert [(a.target, a.count) for a in stream.applied] == [("<12>", 1)]


def test_the_stream_releases_text_that_cannot_be_a_placeholder() -> None:
    _, placeholders = protected("cat", E("cat", "Katze"))
    stream = PlaceholderStream(placeholders)
    assert stream.feed("a ⟦") == "a "
    assert stream.feed("x") == "⟦x"  # not a digit: plain text, released at once
    assert stream.feed(" ⟦1") == " "
    assert stream.flush() == "⟦1"  # an unfinished token at the end is shown as it is
    assert [p.token for p in stream.missing] == ["⟦1⟧"]


def test_the_stream_restores_every_split_of_a_text() -> None:
    out, placeholders = protected("cat dog cat", E("cat", "Katze"), E("dog", "Hund"))
    for size in range(1, len(out) + 1):
        stream = PlaceholderStream(placeholders)
        pieces = [stream.feed(out[i : i + size]) for i in range(0, len(out), size)]
        pieces.append(stream.flush())
        assert "".join(pieces) == "Katze Hund Katze", size
        assert not any(
            re.search(r"⟦\d*$", piece) or re.search(r"^\d*⟧", piece) for piece in pieces
        ), size


# The spec


def test_spec_accepts_the_limits() -> None:
    entries = tuple(E(f"t{n}", "x" * MAX_TERM_CHARS) for n in range(MAX_ENTRIES))
    spec = TranslateSpec("a" * MAX_TEXT_CHARS, target_lang="de", entries=entries)
    assert len(spec.entries) == MAX_ENTRIES and spec.source_lang is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": ""}, "text: must be 1 to 10000"),
        ({"text": "a" * (MAX_TEXT_CHARS + 1)}, "text: must be 1 to 10000"),
        ({"text": "keep ⟦1⟧"}, "text: must not contain"),
        ({"target_lang": "xx"}, "target_lang: unsupported language 'xx'"),
        ({"source_lang": "de"}, "source_lang: must differ"),
        ({"entries": (E("a", "b"),) * 2}, "entry 2: the source 'a' is listed twice"),
        ({"entries": (E("Cat", "b"), E("cAT", "c"))}, "entry 2"),
        ({"entries": tuple(E(f"t{n}", "x") for n in range(MAX_ENTRIES + 1))}, "at most 500"),
        ({"max_tokens": 8}, "max_tokens"),
        ({"seed": -1}, "seed"),
    ],
)
def test_spec_refuses_out_of_limits(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"text": "hello", "target_lang": "de"} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        TranslateSpec(**fields)  # type: ignore[arg-type]


def test_same_source_differing_only_in_case_is_allowed_when_case_sensitive() -> None:
    spec = TranslateSpec("x", "de", entries=(E("Cat", "b"), E("cAT", "c")), case_sensitive=True)
    assert len(spec.entries) == 2


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("  ", "x", "lexicon source: must not be blank"),
        ("x" * (MAX_TERM_CHARS + 1), "x", "lexicon source: at most 200"),
        ("x", "⟦2⟧", "lexicon target: must not contain"),
    ],
)
def test_an_invalid_lexicon_entry_is_refused(source: str, target: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        LexiconEntry(source, target)


# The engine


def test_opus_mt_names_one_model_per_pair() -> None:
    assert opus_mt_model("en", "zh") == "opus-mt-en-zh"


async def test_a_real_engine_translates_and_every_lexicon_target_appears_exactly() -> None:
    engine = UppercasingEngine()
    entries = (
        *ML_TERMS,
        E("neural net", "réseau (neuronal) $1"),
        E("GPU", "processeur graphique"),
    )
    text = "Our machine learning model runs on a gpu; the neural net is a model."
    spec = TranslateSpec(text, "fr", source_lang="en", entries=entries, seed=7)
    pieces = await run(spec, engine)

    assert pieces[0] == Stage(0.0, "protecting terms")
    assert pieces[2] == Stage(0.1, "translating")
    (request,) = engine.requests
    assert request.model == "opus-mt-en-fr" and request.seed == 7
    assert request.prompt.endswith("Our ⟦1⟧ runs on a ⟦2⟧; the ⟦3⟧ is a ⟦4⟧.")
    assert "from English to French" in request.prompt.split("\n")[0]
    assert pieces[1] == Usage(prompt_tokens=count_tokens(request.prompt))
    assert request.parameters["source_lang"] == "en"
    assert request.parameters["target_lang"] == "fr"

    text_out = text_from(pieces)
    assert text_out == (
        "OUR ML-Modell RUNS ON A processeur graphique; THE réseau (neuronal) $1 IS A MODELL."
    )
    deltas = [p for p in pieces if isinstance(p, Delta)]
    assert len(deltas) > 5 and not any("⟦" in d.text or "⟧" in d.text for d in deltas)
    words = re.findall(r"\S+\s*", request.prompt[int(request.parameters["text_start"]) :])
    assert sum(d.tokens for d in deltas) == len(words)  # tokens of held deltas are not lost
    result = result_of(pieces)
    assert result == {
        "source_lang": "en",
        "detected": False,
        "target_lang": "fr",
        "model": "opus-mt-en-fr",
        "translated": True,
        "applied": [
            {"source": "machine learning model", "target": "ML-Modell", "count": 1},
            {"source": "GPU", "target": "processeur graphique", "count": 1},
            {"source": "neural net", "target": "réseau (neuronal) $1", "count": 1},
            {"source": "model", "target": "MODELL", "count": 1},
        ],
        "missing": [],
        "lexicon_ok": True,
    }


async def test_a_model_name_other_than_opus_mt_is_used_as_given_and_language_detected() -> None:
    engine = UppercasingEngine()
    spec = TranslateSpec("Der Hund ist nicht hier.", "en", entries=(E("Hund", "dog"),))
    pieces = await run(spec, engine, model="nllb-200")
    assert engine.requests[0].model == "nllb-200"
    assert text_from(pieces) == "DER dog IST NICHT HIER."
    result = result_of(pieces)
    assert (result["source_lang"], result["detected"], result["model"]) == ("de", True, "nllb-200")


async def test_dropped_placeholders_are_reported_not_patched_in() -> None:
    engine = UppercasingEngine(drop="⟦2⟧")
    spec = TranslateSpec(
        "the cat and the dog and the cat",
        "de",
        source_lang="en",
        entries=(E("cat", "Katze"), E("dog", "Hund")),
    )
    pieces = await run(spec, engine)
    assert text_from(pieces) == "THE Katze AND THE AND THE Katze"
    assert "Hund" not in text_from(pieces)
    result = result_of(pieces)
    assert result["lexicon_ok"] is False and result["translated"] is True
    assert result["missing"] == [
        {"placeholder": "⟦2⟧", "source": "dog", "target": "Hund", "expected": 1, "found": 0}
    ]
    assert result["applied"] == [{"source": "cat", "target": "Katze", "count": 2}]
    assert "dropped 1 lexicon term" in str(result["note"])


async def test_the_dev_engine_does_not_pretend_to_translate() -> None:
    spec = TranslateSpec(
        "The machine learning model is ready. Ask the model.",
        "zh",
        entries=(*ML_TERMS, E("ready", "就绪")),
    )
    pieces = await run(spec, DevEngine(token_delay=0))
    assert text_from(pieces) == "The ML-Modell is 就绪. Ask the MODELL."
    assert not any(isinstance(p, Usage) for p in pieces)  # no prompt was sent anywhere
    result = result_of(pieces)
    assert result["translated"] is False
    assert (
        result["note"]
        == DEV_NOTE
        == ("dev-engine cannot translate; glossary applied to the source text")
    )
    assert result["model"] == "dev-engine" and result["lexicon_ok"] is True
    assert result["missing"] == []
    assert result["applied"] == [
        {"source": "machine learning model", "target": "ML-Modell", "count": 1},
        {"source": "ready", "target": "就绪", "count": 1},
        {"source": "model", "target": "MODELL", "count": 1},
    ]


async def test_deltas_split_inside_a_placeholder_keep_their_tokens() -> None:
    spec = TranslateSpec("the cat", "de", source_lang="en", entries=(E("cat", "Katze"),))
    engine = ScriptedEngine("die ", "⟦", "1", "⟧", "!", " ⟦1")
    deltas = [p for p in await run(spec, engine) if isinstance(p, Delta)]
    # The three deltas of `⟦1⟧` arrive as one restored delta carrying their three tokens; an
    # unfinished token at the end is shown as it is.
    assert [(d.text, d.tokens) for d in deltas] == [
        ("die ", 1),
        ("Katze", 3),
        ("!", 1),
        (" ", 1),
        ("⟦1", 0),
    ]


async def test_text_already_in_the_target_language_is_not_sent() -> None:
    engine = UppercasingEngine()
    spec = TranslateSpec("The cat is here.", "en", entries=(E("cat", "Cat™"),))
    pieces = await run(spec, engine)
    assert engine.requests == []
    assert text_from(pieces) == "The Cat™ is here."
    result = result_of(pieces)
    assert (result["translated"], result["model"], result["detected"]) == (False, None, True)
    assert "already in English" in str(result["note"])

"""The local speech model (Whisper tiny.en through faster-whisper), for real, on WAVs spoken by
espeak-ng: it hears the words, stamps segments, refuses other languages and corrupt audio,
stops when its stream is closed, honours max_tokens and queues beyond its concurrency."""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import re
import shutil
import subprocess
import tempfile
import threading
import wave
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from faster_whisper import WhisperModel  # type: ignore[import-untyped]  # ships no type hints

from inference.base import (
    QUEUE_POSITION,
    BadInput,
    Delta,
    GenerationRequest,
    InferenceError,
    ModelUnavailable,
    UnsupportedLanguage,
)
from inference.speech import PINNED_WEIGHTS, LocalSpeech, SpeechConfig, whisper_language
from inference.transcribe import AUTO_LANGUAGE
from tests.conftest import REQUIRED

SENTENCE = "The quick brown fox jumps over the lazy dog."
PROVERBS = (
    "A journey of a thousand miles begins with a single step. The early bird catches the worm. "
    "Actions speak louder than words. Every cloud has a silver lining. Practice makes perfect. "
    "Time and tide wait for no man. Knowledge is power. The pen is mightier than the sword. "
    "All that glitters is not gold. Honesty is the best policy. Rome was not built in a day. "
    "Better late than never. Look before you leap. Two heads are better than one. "
    "The squeaky wheel gets the grease. No man is an island. Fortune favors the bold. "
    "People who live in glass houses should not throw stones. Hope for the best, but prepare "
    "for the worst. A picture is worth a thousand words. There is no such thing as a free "
    "lunch. Where there is smoke, there is fire. Beauty is in the eye of the beholder. "
    "Necessity is the mother of invention. A watched pot never boils. Beggars cannot be "
    "choosers. Easy come, easy go. Good things come to those who wait. Laughter is the best "
    "medicine. Many hands make light work. Out of sight, out of mind. When in Rome, do as the "
    "Romans do. Keep your friends close and your enemies closer. Cleanliness is next to "
    "godliness. Discretion is the better part of valor. If it is not broken, do not fix it."
)
STAMPED_LINE = re.compile(r"\[(\d\d):(\d\d)\] \S")


@functools.cache
def spoken(text: str) -> bytes:
    """A WAV of `text` spoken by espeak-ng (`.ci/run` installs it)."""
    if shutil.which("espeak-ng") is None:
        message = "no espeak-ng on PATH: apt-get install -y espeak-ng"
        if REQUIRED:
            pytest.fail(f"{message} (CK_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
        return path.read_bytes()


def seconds_of(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as reader:
        return float(reader.getnframes() / reader.getframerate())


def request(audio: bytes, *, max_tokens: int = 512, **parameters: str | bool) -> GenerationRequest:
    encoded = base64.b64encode(audio).decode()
    return transcription(encoded, max_tokens=max_tokens, **parameters)


def transcription(
    encoded: str, *, max_tokens: int = 512, **parameters: str | bool
) -> GenerationRequest:
    return GenerationRequest(
        request_id="t",
        model="whisper",
        prompt="Transcribe the audio verbatim in en.",
        max_tokens=max_tokens,
        temperature=0.0,
        parameters={"audio_b64": encoded, "content_type": "audio/wav", **parameters},
    )


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@pytest.fixture
async def speech() -> AsyncIterator[LocalSpeech]:
    engine = LocalSpeech(SpeechConfig(concurrency=1))
    yield engine
    await engine.aclose()


async def deltas(engine: LocalSpeech, req: GenerationRequest) -> list[Delta]:
    return [delta async for delta in engine.stream(req)]


async def test_it_hears_a_spoken_sentence(speech: LocalSpeech) -> None:
    # given an English sentence spoken by espeak-ng
    audio = spoken(SENTENCE)
    # when it is transcribed, streamed and whole
    parts = await deltas(speech, request(audio, language=AUTO_LANGUAGE, timestamps=False))
    whole = await speech.complete(request(audio, language="en"))
    # then most of its words come back, counted in the model's own tokens
    heard = words(whole.text)
    assert len(set(words(SENTENCE)) & set(heard)) >= 6, whole.text  # 8 different words
    assert "".join(d.text for d in parts) == whole.text
    assert whole.usage.completion_tokens == sum(d.tokens for d in parts) >= len(heard)
    assert not whole.text.startswith((" ", "["))


async def test_timestamps_prefix_every_segment_with_its_start(speech: LocalSpeech) -> None:
    audio = spoken(" ".join([SENTENCE, *PROVERBS.split(". ")[:4]]))

    parts = await deltas(speech, request(audio, language="en-US", timestamps=True))

    lines = "".join(d.text for d in parts).split("\n")
    assert len(lines) >= 2, lines
    starts = []
    for line in lines:
        stamp = STAMPED_LINE.match(line)
        assert stamp, line
        starts.append(int(stamp[1]) * 60 + int(stamp[2]))
    assert starts[0] == 0 and starts == sorted(starts) and starts[-1] > 0
    assert starts[-1] < seconds_of(audio)
    assert {"quick", "fox", "journey", "thousand"} <= set(words("".join(lines)))


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (SpeechConfig(weights=(*PINNED_WEIGHTS, ("model.bin", "0" * 64))), "pinned SHA-256"),
        (SpeechConfig(model_dir=Path("/nonexistent/whisper")), "missing"),
    ],
)
async def test_weights_that_are_not_the_pinned_ones_are_never_loaded(
    config: SpeechConfig, reason: str
) -> None:
    engine = LocalSpeech(config)
    with pytest.raises(ModelUnavailable, match=reason):
        await engine.complete(request(spoken(SENTENCE), language="en"))
    await engine.aclose()


@pytest.mark.parametrize(
    ("language", "whisper"), [("en", "en"), ("EN-gb", "en"), ("en_US", "en"), ("auto", None)]
)
def test_english_and_detection_are_understood(language: str, whisper: str | None) -> None:
    assert whisper_language(language, ["en"]) == whisper


async def test_other_languages_are_refused_as_unsupported(speech: LocalSpeech) -> None:
    with pytest.raises(UnsupportedLanguage) as caught:
        await deltas(speech, request(spoken(SENTENCE), language="fr"))

    assert caught.value.code == "UNSUPPORTED_LANGUAGE"
    assert isinstance(caught.value, BadInput)
    assert "only English ('en'), not 'fr'" in str(caught.value)


@pytest.mark.parametrize(
    ("encoded", "reason"),
    [
        (base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEjunk" + b"\x00" * 32).decode(), "decoded"),
        (base64.b64encode(b"hello, this is not audio at all").decode(), "decoded"),
        ("not base64 at all!", "base64"),
        ("", "audio_b64"),
    ],
)
async def test_corrupt_audio_is_a_typed_bad_input(
    speech: LocalSpeech, encoded: str, reason: str
) -> None:
    with pytest.raises(BadInput, match=reason) as caught:
        await deltas(speech, transcription(encoded, language="en"))
    assert isinstance(caught.value, InferenceError) and caught.value.code == "BAD_INPUT"


async def test_max_tokens_cuts_the_transcript(speech: LocalSpeech) -> None:
    parts = await deltas(speech, request(spoken(SENTENCE), max_tokens=4))

    assert sum(d.tokens for d in parts) == 4
    assert 2 <= len(words("".join(d.text for d in parts))) <= 4


class _Pulls:
    """Counts the segments faster-whisper hands out, and notes when their generator closes."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.closed = threading.Event()


@pytest.fixture
def pulls(monkeypatch: pytest.MonkeyPatch) -> _Pulls:
    seen = _Pulls()
    original = WhisperModel.transcribe

    def counted(self: Any, *args: Any, **kwargs: Any) -> tuple[Iterator[Any], Any]:
        segments, info = original(self, *args, **kwargs)

        def watched() -> Generator[Any, None, None]:
            try:
                for segment in segments:
                    seen.ends.append(segment.end)
                    yield segment
            finally:
                seen.closed.set()

        return watched(), info

    monkeypatch.setattr(WhisperModel, "transcribe", counted)
    return seen


async def test_closing_the_stream_stops_the_work_after_the_current_segment(
    speech: LocalSpeech, pulls: _Pulls
) -> None:
    # given 75 s of speech: three of Whisper's 30 s windows
    audio = spoken(f"{SENTENCE} {PROVERBS}")
    assert seconds_of(audio) > 70
    stream = speech.stream(request(audio, language="en"))
    # when the consumer leaves after the first segment
    first = await anext(stream)
    assert not pulls.closed.is_set()  # the first text came before the whole file was done
    await stream.aclose()  # type: ignore[attr-defined]
    # then the worker stops at the next segment instead of decoding the rest
    assert await asyncio.to_thread(pulls.closed.wait, 30)
    assert "fox" in words(first.text)
    assert max(pulls.ends) < 50, pulls.ends
    # and the slot is free again: the next request runs at once
    async with asyncio.timeout(15):
        again = await speech.complete(request(spoken(SENTENCE), language="en"))
    assert "fox" in words(again.text)


async def test_requests_beyond_the_concurrency_wait_and_hear_their_place(
    speech: LocalSpeech,
) -> None:
    # given one transcription running (the long clip: a few seconds of work)
    first = speech.stream(request(spoken(f"{SENTENCE} {PROVERBS}"), language="en"))
    await anext(first)
    heard: list[int] = []
    told = asyncio.Event()

    def report(position: int) -> None:
        heard.append(position)
        told.set()

    async def second() -> str:
        QUEUE_POSITION.set(report)
        return (await speech.complete(request(spoken(SENTENCE), language="en"))).text

    # when another arrives, it waits first in line
    waiting = asyncio.create_task(second())
    await asyncio.wait_for(told.wait(), 60)  # hang guards, generous for a busy CI machine
    assert heard == [1] and not waiting.done()
    # then it runs once the first one is closed
    await first.aclose()  # type: ignore[attr-defined]
    async with asyncio.timeout(120):
        text = await waiting
    assert "fox" in words(text)

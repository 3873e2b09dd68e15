"""Audio validation (media.sniff_audio), the long-audio rule, and the transcribe stream."""

from __future__ import annotations

import base64
import io
import struct
import wave
from collections.abc import AsyncIterator

import pytest

from inference.base import (
    BadInput,
    Completion,
    Delta,
    GenerationRequest,
    ModelUnavailable,
    Piece,
    Stage,
    Structured,
    collect,
)
from inference.dev import DevEngine
from inference.media import MAX_AUDIO_BYTES, AudioInfo, sniff_audio
from inference.transcribe import (
    MAX_TRANSCRIPT_TOKENS,
    MIN_TRANSCRIPT_TOKENS,
    TranscribeSpec,
    is_long,
    token_budget,
    transcribe,
)

MiB = 1024 * 1024


def make_wav(*, rate: int = 16_000, channels: int = 1, width: int = 2, frames: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(b"\x01\x00" * (frames * channels * width // 2))
    return buffer.getvalue()


def float_wav(*, rate: int, channels: int, frames: int) -> bytes:
    """A 32-bit float WAV (format 3), which Python 3.11's `wave` refuses to read."""
    data = b"\0" * (frames * channels * 4)
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * channels * 4, channels * 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data"
    body += struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def id3_tag(size: int) -> bytes:
    synchsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + synchsafe + b"\0" * size


MP3_STEREO_44K = b"\xff\xfb\x90\x64"  # MPEG-1 layer III, 128 kb/s, 44.1 kHz, joint stereo
MP3_MONO_22K = b"\xff\xf3\x90\xc4"  # MPEG-2 layer III, 22.05 kHz, mono


def flac(*, rate: int, channels: int, samples: int) -> bytes:
    info = struct.pack(">HH", 4096, 4096) + b"\0" * 6
    info += ((rate << 44) | ((channels - 1) << 41) | (15 << 36) | samples).to_bytes(8, "big")
    info += b"\0" * 16  # MD5
    return b"fLaC" + b"\x80" + len(info).to_bytes(3, "big") + info + b"\0" * 64


def ogg_page(packet: bytes, granule: int, header_type: int = 0) -> bytes:
    header = b"OggS" + bytes([0, header_type]) + struct.pack("<qIII", granule, 7, 0, 0)
    return header + bytes([1, len(packet)]) + packet


def vorbis_ogg(*, rate: int, channels: int, samples: int) -> bytes:
    ident = b"\x01vorbis" + struct.pack("<IBI", 0, channels, rate) + b"\0" * 12 + b"\xb8\x01"
    return ogg_page(ident, 0, 2) + ogg_page(b"\x05" * 40, samples, 4)


def opus_ogg(*, channels: int, pre_skip: int, samples: int) -> bytes:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, 44_100, 0, 0)
    return ogg_page(head, 0, 2) + ogg_page(b"\x05" * 40, pre_skip + samples, 4)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def m4a(*, scale: int, length: int, brand: bytes = b"M4A ") -> bytes:
    ftyp = box(b"ftyp", brand + b"\0\0\0\0" + brand + b"isom")
    mvhd = box(b"mvhd", b"\0\0\0\0" + struct.pack(">IIII", 0, 0, scale, length) + b"\0" * 80)
    return ftyp + box(b"moov", box(b"mvhd", mvhd[8:])) + box(b"mdat", b"\0" * 32)


class StreamingEngine:
    """A fake speech model: streams `chunks` and records the requests."""

    name = "triton"

    def __init__(self, chunks: tuple[str, ...]) -> None:
        self.chunks = chunks
        self.requests: list[GenerationRequest] = []

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self.requests.append(request)
        for chunk in self.chunks:
            yield Delta(chunk)

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    async def aclose(self) -> None:
        pass


class CountingEngine:
    """Wraps the dev engine under its name and counts every call that would reach it."""

    def __init__(self) -> None:
        self.inner = DevEngine(token_delay=0)
        self.name = self.inner.name
        self.calls = 0

    def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self.calls += 1
        return self.inner.stream(request)

    async def complete(self, request: GenerationRequest) -> Completion:
        self.calls += 1
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        pass


# --- sniff_audio -----------------------------------------------------------------------------


def test_sniff_audio_reads_a_wav_exactly() -> None:
    data = make_wav(rate=16_000, channels=1, frames=24_000)

    info = sniff_audio(data)

    assert info == AudioInfo("wav", 1.5, 16_000, 1, "audio/wav", len(data))


def test_sniff_audio_reads_a_stereo_wav_exactly() -> None:
    info = sniff_audio(make_wav(rate=44_100, channels=2, frames=44_100 * 3))

    assert (info.duration_seconds, info.sample_rate, info.channels) == (3.0, 44_100, 2)


def test_sniff_audio_times_a_cut_off_wav_by_the_frames_present() -> None:
    data = make_wav(rate=16_000, frames=16_000)  # the header says 1 s
    cut = data[: len(data) - 16_000]  # half the samples are gone

    assert sniff_audio(cut).duration_seconds == 0.5


def test_sniff_audio_reads_a_float_wav_that_wave_cannot() -> None:
    info = sniff_audio(float_wav(rate=48_000, channels=2, frames=12_000))

    assert (info.format, info.duration_seconds, info.sample_rate, info.channels) == (
        "wav",
        0.25,
        48_000,
        2,
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the audio is empty"),
        (b"just some text, not audio", "not a WAV, MP3, FLAC, Ogg or M4A"),
        (make_wav(frames=0), "no audio frames"),
        (b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunkjunk", "WAV file is malformed"),
        (id3_tag(20) + b"no frame sync here", "MP3 file has no audio frame"),
        (b"fLaC\x04\x00\x00\x10" + b"\0" * 40, "no STREAMINFO"),
        (m4a(scale=1000, length=5000, brand=b"qt  "), "not M4A audio"),
    ],
)
def test_sniff_audio_refuses_unknown_or_malformed_audio(data: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        sniff_audio(data)


@pytest.mark.parametrize(
    "data",
    [
        make_wav(frames=400),
        float_wav(rate=8_000, channels=1, frames=100),
        flac(rate=8_000, channels=1, samples=10),
        vorbis_ogg(rate=8_000, channels=1, samples=10),
        opus_ogg(channels=1, pre_skip=3, samples=10),
        m4a(scale=10, length=5),
        id3_tag(5) + MP3_STEREO_44K + b"\0" * 50,
    ],
)
def test_every_prefix_of_audio_is_accepted_or_refused_with_bad_input(data: bytes) -> None:
    for end in range(len(data)):
        try:
            info = sniff_audio(data[:end])
        except BadInput:
            continue
        assert info.duration_seconds is None or info.duration_seconds >= 0


def test_sniff_audio_refuses_more_bytes_than_the_limit() -> None:
    data = make_wav(frames=10)
    data += b"\0" * (MAX_AUDIO_BYTES + 1 - len(data))

    with pytest.raises(BadInput, match=r"limit is 52428800 bytes \(50 MiB\)"):
        sniff_audio(data)


@pytest.mark.parametrize(
    ("data", "rate", "channels"),
    [
        (id3_tag(100) + MP3_STEREO_44K + b"\0" * 400, 44_100, 2),
        (MP3_STEREO_44K + b"\0" * 400, 44_100, 2),
        (id3_tag(10) + b"\0" * 30 + MP3_MONO_22K + b"\0" * 200, 22_050, 1),
    ],
)
def test_sniff_audio_reads_mp3_frame_headers(data: bytes, rate: int, channels: int) -> None:
    info = sniff_audio(data)

    assert info == AudioInfo("mp3", None, rate, channels, "audio/mpeg", len(data))


def test_sniff_audio_reads_flac_streaminfo() -> None:
    data = flac(rate=44_100, channels=2, samples=441_000)

    assert sniff_audio(data) == AudioInfo("flac", 10.0, 44_100, 2, "audio/flac", len(data))


def test_sniff_audio_reads_a_vorbis_ogg() -> None:
    data = vorbis_ogg(rate=22_050, channels=1, samples=44_100)

    assert sniff_audio(data) == AudioInfo("ogg", 2.0, 22_050, 1, "audio/ogg", len(data))


def test_sniff_audio_reads_an_opus_ogg_at_48_khz_minus_the_pre_skip() -> None:
    data = opus_ogg(channels=2, pre_skip=312, samples=48_000 * 3)

    assert sniff_audio(data) == AudioInfo("ogg", 3.0, 48_000, 2, "audio/ogg", len(data))


def test_sniff_audio_reads_an_m4a_duration_from_mvhd() -> None:
    data = m4a(scale=1000, length=12_500)

    assert sniff_audio(data) == AudioInfo("m4a", 12.5, None, None, "audio/mp4", len(data))


# --- is_long and the token budget -----------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "size", "expected"),
    [
        (121.0, 1_000, True),
        (120.0, 40 * MiB, False),  # a known duration decides, whatever the size
        (None, 5 * MiB + 1, True),
        (None, 5 * MiB, False),
    ],
)
def test_is_long(duration: float | None, size: int, expected: bool) -> None:
    info = AudioInfo("mp3", duration, None, None, "audio/mpeg", size)

    assert is_long(info) is expected


def test_is_long_on_sniffed_audio() -> None:
    short = sniff_audio(make_wav(rate=8_000, frames=8_000 * 120))
    long = sniff_audio(make_wav(rate=8_000, frames=8_000 * 120 + 1))

    assert (is_long(short), is_long(long)) == (False, True)


def test_token_budget_follows_the_duration_within_bounds() -> None:
    def info(duration: float | None) -> AudioInfo:
        return AudioInfo("wav", duration, None, None, "audio/wav", 100)

    assert token_budget(info(1.0)) == MIN_TRANSCRIPT_TOKENS
    assert token_budget(info(60.0)) == 480
    assert token_budget(info(10_000.0)) == MAX_TRANSCRIPT_TOKENS
    assert token_budget(info(None)) == MAX_TRANSCRIPT_TOKENS


# --- transcribe() ---------------------------------------------------------------------------


async def run(pieces: AsyncIterator[Piece]) -> list[Piece]:
    return [piece async for piece in pieces]


async def test_transcribe_with_the_dev_engine_refuses_instead_of_faking_text() -> None:
    engine = CountingEngine()
    pieces: list[Piece] = []

    with pytest.raises(ModelUnavailable) as caught:
        async for piece in transcribe(
            engine, TranscribeSpec(make_wav(frames=1_600)), model="whisper", request_id="r"
        ):
            pieces.append(piece)

    assert str(caught.value) == (
        "transcription needs a speech model (Whisper on Triton); the dev engine cannot transcribe"
    )
    assert pieces == [Stage(0.0, "decoding")]
    assert engine.calls == 0


async def test_transcribe_validates_the_audio_before_anything_else() -> None:
    engine = StreamingEngine(("never",))

    with pytest.raises(BadInput, match="not a WAV"):
        await run(transcribe(engine, TranscribeSpec(b"nope"), model="w", request_id="r"))
    assert engine.requests == []


async def test_transcribe_with_a_real_engine_sends_the_audio_and_streams_the_text() -> None:
    engine = StreamingEngine(("Hello", " there,", " world. "))
    data = make_wav(rate=16_000, frames=16_000 * 90)
    spec = TranscribeSpec(data, language="en", timestamps=True)

    pieces = await run(transcribe(engine, spec, model="whisper", request_id="t1"))

    [request] = engine.requests
    assert (request.model, request.request_id, request.max_tokens) == ("whisper", "t1", 720)
    assert base64.b64decode(str(request.parameters["audio_b64"])) == data
    assert request.parameters["content_type"] == "audio/wav"
    assert request.parameters["language"] == "en"
    assert request.parameters["timestamps"] is True
    assert "[mm:ss]" in request.prompt
    assert pieces[0] == Stage(0.0, "decoding")
    assert [p.text for p in pieces if isinstance(p, Delta)] == ["Hello", " there,", " world. "]
    assert isinstance(pieces[-1], Structured)
    assert pieces[-1].data == {
        "language": "en",
        "duration_seconds": 90.0,
        "format": "wav",
        "text": "Hello there, world.",
    }


async def test_transcribe_without_a_language_asks_the_model_to_detect_it() -> None:
    engine = StreamingEngine(("Bonjour.",))
    data = flac(rate=44_100, channels=2, samples=441_000)

    pieces = await run(transcribe(engine, TranscribeSpec(data), model="w", request_id="r"))

    [request] = engine.requests
    assert request.parameters["language"] == "auto"
    assert request.parameters["timestamps"] is False
    assert request.parameters["content_type"] == "audio/flac"
    assert "[mm:ss]" not in request.prompt
    assert isinstance(pieces[-1], Structured)
    assert pieces[-1].data["language"] is None
    assert pieces[-1].data["duration_seconds"] == 10.0
    assert pieces[-1].data["text"] == "Bonjour."


def test_sniff_audio_reads_a_64_bit_mvhd() -> None:
    ftyp = box(b"ftyp", b"M4A \0\0\0\0M4A ")
    mvhd = box(b"mvhd", b"\x01\0\0\0" + struct.pack(">QQIQ", 0, 0, 44_100, 44_100 * 7) + b"\0" * 80)

    assert sniff_audio(ftyp + box(b"moov", mvhd)).duration_seconds == 7.0

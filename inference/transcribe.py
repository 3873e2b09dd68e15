"""The transcribe tool's engine: validated audio to text with a speech model (Whisper on Triton,
or Whisper tiny.en on this machine: `inference.speech`).

The audio is sniffed first (format, and duration where the headers tell it), then sent as
base64 in the request's `parameters` (`audio_b64`, `content_type`, `language` or
`AUTO_LANGUAGE`, `timestamps`); the transcript streams back as deltas. Any engine that reads
those parameters can serve it. The dev engine cannot hear, so transcription with it fails with
`ModelUnavailable` rather than faking text. `is_long` lets the routing layer send long audio
to a worker instead of a request.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from inference.base import (
    Engine,
    GenerationRequest,
    ModelUnavailable,
    Piece,
    Stage,
    Structured,
    Usage,
    count_tokens,
    relayed,
)
from inference.dev import NAME as DEV_ENGINE
from inference.media import AudioInfo, Offload, sniff_audio

LONG_AUDIO_SECONDS = 120
LONG_AUDIO_BYTES = 5 * 1024 * 1024  # the rule when the duration is unknown
AUTO_LANGUAGE = "auto"  # sent when no language is given: the model detects it
# Speech runs at about 3 words (4 tokens) a second; twice that leaves room for timestamps.
TOKENS_PER_SECOND = 8
MIN_TRANSCRIPT_TOKENS = 64
MAX_TRANSCRIPT_TOKENS = 16_384


@dataclass(frozen=True)
class TranscribeSpec:
    """A validated transcription request; `language` None lets the model detect it."""

    audio: bytes
    language: str | None = None
    timestamps: bool = False


def is_long(info: AudioInfo) -> bool:
    """Whether the audio should go to a worker: over 120 s, or over 5 MiB when the duration
    is unknown."""
    if info.duration_seconds is None:
        return info.size_bytes > LONG_AUDIO_BYTES
    return info.duration_seconds > LONG_AUDIO_SECONDS


def token_budget(info: AudioInfo) -> int:
    """The transcript's token allowance, from the duration when known."""
    if info.duration_seconds is None:
        return MAX_TRANSCRIPT_TOKENS
    wanted = math.ceil(info.duration_seconds * TOKENS_PER_SECOND)
    return max(MIN_TRANSCRIPT_TOKENS, min(MAX_TRANSCRIPT_TOKENS, wanted))


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_prompt(spec: TranscribeSpec) -> str:
    """The instruction sent beside the audio."""
    language = spec.language or "the spoken language (detect it)"
    stamps = " Prefix each segment with its [mm:ss] start time." if spec.timestamps else ""
    return f"Transcribe the audio verbatim in {language}.{stamps}"


async def transcribe(
    engine: Engine,
    spec: TranscribeSpec,
    *,
    model: str,
    request_id: str,
    offload: Offload = asyncio.to_thread,
) -> AsyncIterator[Piece]:
    """Validate the audio (through `offload`, off the event loop: up to 50 MiB), stream its
    transcript from the speech model, then a structured result; `ModelUnavailable` with the
    dev engine, which cannot transcribe, and `UnsupportedLanguage` from a model that does not
    know `spec.language`."""
    yield Stage(0.0, "decoding")
    info = await offload(sniff_audio, spec.audio)
    if engine.name == DEV_ENGINE:
        raise ModelUnavailable(
            "transcription needs a speech model (Whisper on Triton); "
            "the dev engine cannot transcribe"
        )
    yield Stage(0.1, "transcribing")
    prompt = build_prompt(spec)
    yield Usage(prompt_tokens=count_tokens(prompt))
    request = GenerationRequest(
        request_id=request_id,
        model=model,
        prompt=prompt,
        max_tokens=token_budget(info),
        temperature=0.0,
        parameters={
            "audio_b64": await offload(_base64, spec.audio),
            "content_type": info.content_type,
            "language": spec.language or AUTO_LANGUAGE,
            "timestamps": spec.timestamps,
        },
    )
    parts: list[str] = []
    async with relayed(engine, request, parts) as deltas:
        async for delta in deltas:
            yield delta
    yield Structured(
        {
            "language": spec.language,
            "duration_seconds": info.duration_seconds,
            "format": info.format,
            "text": "".join(parts).strip(),
        }
    )

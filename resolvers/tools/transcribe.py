"""The transcribe tool: audio to text (Whisper on Triton); long audio runs on a worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field, field_validator

from inference import media, transcribe
from inference.base import Engine, Piece
from resolvers.tools.base import Mode, Tool, ToolInput
from resolvers.tools.media import (
    MAX_INLINE_BASE64,
    MAX_INLINE_BYTES,
    check_inline,
    decode_inline,
)


class TranscribeInput(ToolInput):
    """The audio to transcribe."""

    audio_base64: str = Field(
        min_length=4,
        max_length=MAX_INLINE_BASE64,
        description=f"The audio (WAV, MP3, FLAC, Ogg or M4A), base64, at most "
        f"{MAX_INLINE_BYTES:,} bytes decoded.",
    )
    language: str | None = Field(
        None, min_length=2, max_length=16, description="Spoken language; detected if omitted."
    )
    timestamps: bool = Field(False, description="Ask for segment timestamps.")

    @field_validator("audio_base64")
    @classmethod
    def _audio(cls, value: str) -> str:
        return check_inline(value, media.sniff_audio)


def _spec(data: Mapping[str, Any]) -> transcribe.TranscribeSpec:
    return transcribe.TranscribeSpec(
        audio=decode_inline(data["audio_base64"]),
        language=data["language"],
        timestamps=data["timestamps"],
    )


def _long(data: Mapping[str, Any]) -> bool:
    return transcribe.is_long(media.sniff_audio(decode_inline(data["audio_base64"])))


def _run(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    return transcribe.transcribe(engine, _spec(data), model=model, request_id=request_id)


TOOL = Tool(
    name="transcribe",
    description="Speech to text (Whisper on Triton in production); audio over two minutes "
    "runs on a worker. With only the dev engine it ends with CreationFailed "
    "MODEL_UNAVAILABLE: it never invents text.",
    mode=Mode.FAST,
    input_model=TranscribeInput,
    run=_run,
    model_setting="transcribe_model",
    check=_spec,
    long_when=_long,
)

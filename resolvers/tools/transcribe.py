"""The transcribe tool: audio to text (Whisper on Triton); long audio runs on a worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from inference import media, transcribe
from inference.base import Engine, Piece
from resolvers.core import cpu
from resolvers.core.models import UploadKind
from resolvers.tools.base import Mode, Tool, ToolInput
from resolvers.tools.media import (
    MAX_INLINE_BASE64,
    MAX_INLINE_BYTES,
    UPLOAD_ID_LENGTH,
    check_inline,
    decode_inline,
    load_upload,
    media_bytes,
    one_source,
    upload_prepare,
)


class TranscribeInput(ToolInput):
    """The audio to transcribe."""

    audio_base64: str | None = Field(
        None,
        min_length=4,
        max_length=MAX_INLINE_BASE64,
        description=f"The audio (WAV, MP3, FLAC, Ogg or M4A), base64, at most "
        f"{MAX_INLINE_BYTES:,} bytes decoded. Give this or uploadId.",
    )
    upload_id: str | None = Field(
        None,
        min_length=UPLOAD_ID_LENGTH,
        max_length=UPLOAD_ID_LENGTH,
        description=f"An AUDIO upload (Mutation.createUpload) whose bytes were PUT to its URL: "
        f"up to {media.MAX_AUDIO_BYTES:,} bytes. Give this or audioBase64.",
    )
    language: str | None = Field(
        None, min_length=2, max_length=16, description="Spoken language; detected if omitted."
    )
    timestamps: bool = Field(False, description="Ask for segment timestamps.")

    @field_validator("audio_base64")
    @classmethod
    def _audio(cls, value: str | None) -> str | None:
        return None if value is None else check_inline(value, media.sniff_audio)

    @model_validator(mode="after")
    def _one_audio(self) -> TranscribeInput:
        one_source(self.audio_base64, self.upload_id, "audioBase64")
        return self


def _spec(data: Mapping[str, Any]) -> transcribe.TranscribeSpec:
    return transcribe.TranscribeSpec(
        audio=media_bytes(data, "audio_base64"),
        language=data["language"],
        timestamps=data["timestamps"],
    )


def _long(data: Mapping[str, Any]) -> bool:
    if data.get("upload") is not None:
        return bool(data["upload"]["long"])
    return transcribe.is_long(media.sniff_audio(decode_inline(data["audio_base64"])))


def _audio_facts(info: media.AudioInfo) -> dict[str, Any]:
    return {"duration_seconds": info.duration_seconds, "long": transcribe.is_long(info)}


def _run(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    return transcribe.transcribe(
        engine, _spec(data), model=model, request_id=request_id, offload=cpu.run
    )


TOOL = Tool(
    name="transcribe",
    description="Speech to text (Whisper on Triton in production); audio over two minutes "
    "runs on a worker. With only the dev engine it ends with CreationFailed "
    "MODEL_UNAVAILABLE: it never invents text.",
    mode=Mode.FAST,
    input_model=TranscribeInput,
    run=_run,
    model_setting="transcribe_model",
    prepare=upload_prepare(UploadKind.AUDIO, _audio_facts),
    load=load_upload,
    long_when=_long,
    budget=lambda _data: transcribe.MAX_TRANSCRIPT_TOKENS,
)

"""The imageCaption tool: an image to a caption (CLIP on Triton), honest on the dev engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from inference import caption, media
from inference.base import Engine, Piece
from resolvers.core import cpu
from resolvers.core.models import UploadKind
from resolvers.tools.base import EnumDoc, Mode, Tool, ToolInput
from resolvers.tools.media import (
    MAX_INLINE_BASE64,
    MAX_INLINE_BYTES,
    UPLOAD_ID_LENGTH,
    check_inline,
    load_upload,
    media_bytes,
    one_source,
    upload_prepare,
)


class ImageCaptionInput(ToolInput):
    """The image to caption."""

    image_base64: str | None = Field(
        None,
        min_length=4,
        max_length=MAX_INLINE_BASE64,
        description=f"The image (PNG, JPEG, WebP or GIF), base64, at most {MAX_INLINE_BYTES:,} "
        f"bytes decoded and {media.MAX_IMAGE_PIXELS:,} pixels (4096×4096; WebP "
        f"{media.MAX_WEBP_PIXELS:,}, 2048×2048). Give this or uploadId.",
    )
    upload_id: str | None = Field(
        None,
        min_length=UPLOAD_ID_LENGTH,
        max_length=UPLOAD_ID_LENGTH,
        description=f"An IMAGE upload (Mutation.createUpload) whose bytes were PUT to its URL: "
        f"up to {media.MAX_IMAGE_BYTES:,} bytes and {media.MAX_IMAGE_PIXELS:,} pixels "
        f"({media.MAX_WEBP_PIXELS:,} for WebP). Give this or imageBase64.",
    )
    style: caption.CaptionStyle = Field(caption.CaptionStyle.SHORT, description="Caption kind.")
    language: str = Field("en", min_length=2, max_length=16, description="Caption language.")
    max_tokens: int = Field(
        caption.DEFAULT_CAPTION_TOKENS, ge=8, le=1_024, description="Length, 8 to 1024 tokens."
    )

    @field_validator("image_base64")
    @classmethod
    def _an_image(cls, value: str | None) -> str | None:
        # Headers only here (a bomb is refused before any decode); `prepare` decodes.
        return None if value is None else check_inline(value, media.probe_image)

    @model_validator(mode="after")
    def _one_image(self) -> ImageCaptionInput:
        one_source(self.image_base64, self.upload_id, "imageBase64")
        return self


def _spec(data: Mapping[str, Any]) -> caption.CaptionSpec:
    return caption.CaptionSpec(
        image=media_bytes(data, "image_base64"),
        style=caption.CaptionStyle(data["style"]),
        language=data["language"],
        max_tokens=data["max_tokens"],
    )


def _run(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    return caption.caption(engine, _spec(data), model=model, request_id=request_id, offload=cpu.run)


TOOL = Tool(
    name="imageCaption",
    description="Image caption (CLIP on Triton in production). The image's size, orientation, "
    "dominant colours and brightness are measured; the dev engine, which cannot see, "
    "captions from those measurements only and says so (model_caption: false).",
    mode=Mode.FAST,
    input_model=ImageCaptionInput,
    run=_run,
    model_setting="caption_model",
    prepare=upload_prepare(UploadKind.IMAGE, inline=("image_base64", media.sniff_image)),
    load=load_upload,
    enums={
        caption.CaptionStyle: EnumDoc(
            "How to caption an image.",
            {
                caption.CaptionStyle.SHORT: "One line.",
                caption.CaptionStyle.DETAILED: "A fuller description.",
                caption.CaptionStyle.ALT_TEXT: "Accessible alt text.",
            },
        )
    },
)

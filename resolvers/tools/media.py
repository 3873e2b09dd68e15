"""Inline media for the imageCaption and transcribe tools: bounded base64 in the input."""

from __future__ import annotations

import base64
import binascii

# Inline uploads travel in the GraphQL request, whose body is limited to 1 MiB.
MAX_INLINE_BYTES = 512 * 1024
MAX_INLINE_BASE64 = (MAX_INLINE_BYTES + 2) // 3 * 4


def decode_inline(value: str) -> bytes:
    """The bytes of a base64 field; ValueError (an input error) when it is not base64."""
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
    if not data:
        raise ValueError("is empty")
    return data

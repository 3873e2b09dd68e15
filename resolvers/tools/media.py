"""Inline media for the imageCaption and transcribe tools: bounded base64 in the input."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from inference.base import BadInput

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


def check_inline(value: str, sniff: Callable[[bytes], object]) -> str:
    """Validate a base64 field with a media sniffer; its BadInput becomes an input error."""
    try:
        sniff(decode_inline(value))
    except BadInput as exc:  # pydantic reports ValueErrors as input errors
        raise ValueError(str(exc)) from None
    return value

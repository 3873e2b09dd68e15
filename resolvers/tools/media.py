"""Media for the imageCaption and transcribe tools: bounded base64 in the input, or an
upload (see resolvers/upload.py) checked when the creation starts and fetched for its run.

Input validation runs on the event loop, so it stays cheap (an image's header; at most 512 KiB
of audio); a decoding image check runs in `prepare`, in the CPU pool, still before anything
is stored or any quota is reserved."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

from inference.base import BadInput
from resolvers.access.auth import Principal
from resolvers.core import cpu
from resolvers.core.errors import InvalidInput
from resolvers.core.models import UploadKind
from resolvers.storage.objects import ObjectStore
from resolvers.tools.base import Prepare
from resolvers.upload import fetch, receive

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
    """Validate a base64 field with a cheap media check (it runs on the event loop: headers,
    or a pass over at most 512 KiB); its BadInput becomes an input error."""
    try:
        sniff(decode_inline(value))
    except BadInput as exc:  # pydantic reports ValueErrors as input errors
        raise ValueError(str(exc)) from None
    return value


UPLOAD_ID_LENGTH = 36  # a UUID
_LOADED = "_media_bytes"  # the fetched upload, added to the input for the run only


def one_source(inline: str | None, upload_id: str | None, inline_name: str) -> None:
    """Refuse an input that gives both or neither of the inline bytes and an upload."""
    if (inline is None) == (upload_id is None):
        raise ValueError(f"give exactly one of {inline_name} or uploadId")


def upload_prepare(
    kind: UploadKind,
    facts: Callable[[Any], dict[str, Any]] | None = None,
    *,
    inline: tuple[str, Callable[[bytes], object]] | None = None,
) -> Prepare:
    """A tool's `prepare`: check the caller's upload and keep a reference to it (plus any
    `facts` about the media, e.g. whether audio is long) in the creation's input. `inline`
    names a base64 field and the decoding check its bytes get in the CPU pool."""

    async def prepare(
        data: dict[str, Any], principal: Principal, store: ObjectStore
    ) -> dict[str, Any]:
        if inline is not None and data.get(inline[0]) is not None:
            await _sniff_inline(data[inline[0]], inline[0], inline[1])
        if data.get("upload_id") is None:
            return data
        received = await receive(
            principal=principal, upload_id=data["upload_id"], kind=kind, store=store
        )
        reference = received.reference()
        if facts is not None:
            reference |= facts(received.info)
        return {**data, "upload": reference}

    return prepare


async def _sniff_inline(value: str, field: str, sniff: Callable[[bytes], object]) -> None:
    try:
        await cpu.run(sniff, decode_inline(value))
    except (BadInput, ValueError) as exc:
        raise InvalidInput(f"{field}: {exc}", field=field) from None


async def load_upload(data: Mapping[str, Any], store: ObjectStore) -> Mapping[str, Any]:
    """A tool's `load`: fetch the upload the input refers to, as it was checked."""
    if data.get("upload") is None:
        return data
    return {**data, _LOADED: await fetch(data["upload"], store)}


def media_bytes(data: Mapping[str, Any], inline_field: str) -> bytes:
    """The media of a run: the loaded upload, or the inline base64."""
    loaded = data.get(_LOADED)
    if isinstance(loaded, bytes):
        return loaded
    return decode_inline(data[inline_field])

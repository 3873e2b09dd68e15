"""Uploads: images and audio sent to object storage through a short-lived URL, used by id.

The client declares kind, content type and size; `create_upload` answers with the URL to
PUT the bytes to. Nothing is trusted until the upload is first used: then the bytes are
read back (at most the declared size), sniffed for what they claim to be, and the upload is
marked READY or REJECTED (and its bytes deleted).

A PENDING upload holds one of the user's MAX_PENDING slots only while its URL is live
(`upload_url_ttl_seconds`); it may still be used for USE_GRACE_SECONDS after that (bytes
sent just before the URL expired), then it is deleted with its bytes, lazily, at the user's
next `create_upload`. Uploads count
against the user's `upload_quota_bytes`: READY ones by the bytes received, PENDING ones with
a live URL by the bytes declared. `delete_upload` frees the space.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from inference import media
from inference.base import BadInput
from resolvers.access import scopes
from resolvers.access.auth import Principal, require_user
from resolvers.core import cpu
from resolvers.core.errors import InvalidInput, NotFound, ServiceUnavailable
from resolvers.core.models import Upload, UploadKind, UploadStatus, User
from resolvers.storage.objects import ObjectMissing, ObjectStore, UploadTarget

log = logging.getLogger(__name__)

# Declared content types each kind accepts; the bytes are sniffed again on first use.
CONTENT_TYPES: dict[UploadKind, frozenset[str]] = {
    UploadKind.IMAGE: frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"}),
    UploadKind.AUDIO: frozenset(
        {
            "audio/wav",
            "audio/x-wav",
            "audio/wave",
            "audio/mpeg",
            "audio/flac",
            "audio/x-flac",
            "audio/ogg",
            "audio/mp4",
            "audio/x-m4a",
            "audio/m4a",
        }
    ),
}
MAX_BYTES: dict[UploadKind, int] = {
    UploadKind.IMAGE: media.MAX_IMAGE_BYTES,
    UploadKind.AUDIO: media.MAX_AUDIO_BYTES,
}
_SNIFF: dict[UploadKind, Callable[[bytes], Any]] = {
    UploadKind.IMAGE: media.sniff_image,
    UploadKind.AUDIO: media.sniff_audio,
}


MAX_PENDING = 50  # uploads asked for, not used yet and whose URL is live, per user
USE_GRACE_SECONDS = 300  # a PENDING upload may still be used this long after its URL expired
_CLEANUP_BATCH = 100  # expired uploads deleted per create_upload call


class UploadQuotaExceeded(InvalidInput):
    """The caller's uploads hold too many bytes for one more of the size asked."""

    def __init__(self, *, used: int, allowed: int, size: int) -> None:
        super().__init__(
            f"size: your uploads hold {used:,} of your {allowed:,} bytes and this one needs "
            f"{size:,} more; delete uploads you no longer need (deleteUpload), or wait for "
            "unused ones to expire",
            field="size",
        )
        self.used, self.allowed = used, allowed


@dataclass(frozen=True)
class UploadTicket:
    """A new upload and where to send its bytes."""

    upload: Upload
    target: UploadTarget


@dataclass(frozen=True)
class Received:
    """A checked upload: its bytes and what the media sniffer found in them."""

    upload: Upload
    data: bytes
    info: Any  # media.ImageInfo or media.AudioInfo

    def reference(self) -> dict[str, Any]:
        """What a creation's input keeps of it: enough to fetch and re-check the bytes."""
        return {
            "id": str(self.upload.id),
            "key": self.upload.key,
            "size": len(self.data),
            "sha256": self.upload.sha256,
            "content_type": self.info.content_type,
        }


async def create_upload(
    *,
    principal: Principal | None,
    kind: UploadKind,
    content_type: str,
    size: int,
    store: ObjectStore,
    base_url: str,
    expires_in: int,
    quota_bytes: int = 0,
) -> UploadTicket:
    """Record a pending upload and make the URL its bytes go to; first delete the caller's
    expired pending uploads. Refused over MAX_PENDING live pending uploads, or when it would
    take the caller's uploads over `quota_bytes` (0: no quota)."""
    user = require_user(principal, scopes.UPLOADS_WRITE)
    content_type = content_type.strip().lower()
    if content_type not in CONTENT_TYPES[kind]:
        allowed = ", ".join(sorted(CONTENT_TYPES[kind]))
        raise InvalidInput(f"contentType: {kind} uploads take {allowed}", field="contentType")
    limit = MAX_BYTES[kind]
    if not 1 <= size <= limit:
        raise InvalidInput(f"size: must be 1 to {limit} bytes for {kind}", field="size")
    now = datetime.now(UTC)
    await _delete_expired(user.user_id, store, now - timedelta(seconds=expires_in))
    upload_id = uuid.uuid4()
    key = f"uploads/{user.user_id}/{upload_id}"
    target = store.upload_target(
        key, content_type=content_type, size=size, expires_in=expires_in, base_url=base_url
    )
    live = now - timedelta(seconds=expires_in)  # pending uploads asked for since still count
    async with in_transaction():
        # The user's row lock orders their uploads on every replica (as resolvers.access.limits
        # does for tokens): the counts and the insert commit together.
        await User.filter(id=user.user_id).select_for_update(no_key=True).only("id")
        pending = Upload.filter(
            owner_id=user.user_id, status=UploadStatus.PENDING, created_at__gte=live
        )
        if await pending.count() >= MAX_PENDING:
            raise InvalidInput(
                f"you have {MAX_PENDING} uploads not used yet; use them first, or wait for "
                "their URLs to expire",
                field="kind",
            )
        if quota_bytes > 0:
            used = await _held_bytes(user.user_id, live)
            if used + size > quota_bytes:
                raise UploadQuotaExceeded(used=used, allowed=quota_bytes, size=size)
        upload = await Upload.create(
            id=upload_id,
            owner_id=user.user_id,
            kind=kind,
            content_type=content_type,
            size=size,
            key=key,
        )
    return UploadTicket(upload=upload, target=target)


async def delete_upload(
    *, principal: Principal | None, upload_id: str, store: ObjectStore
) -> Upload:
    """Delete one of the caller's uploads and its bytes; returns it as it was. Creations
    that used it keep their results; one that has not started yet fails (its bytes are
    gone)."""
    upload = await get_upload(principal=principal, upload_id=upload_id)
    await store.delete(upload.key)
    await upload.delete()
    return upload


async def _held_bytes(user_id: str, live_since: datetime) -> int:
    """The bytes the user's uploads hold: READY ones as received, PENDING ones with a live
    URL as declared (REJECTED ones have lost their bytes; expired ones are about to)."""
    rows = await (
        Upload.filter(
            Q(status=UploadStatus.READY)
            | Q(status=UploadStatus.PENDING, created_at__gte=live_since),
            owner_id=user_id,
        )
        .annotate(held=Sum("size"))
        .values("held")
    )
    return int(rows[0]["held"] or 0) if rows else 0


async def _delete_expired(user_id: str, store: ObjectStore, url_expired_before: datetime) -> None:
    """Delete the user's PENDING uploads past their grace, bytes first (an upload whose
    bytes cannot be deleted now stays, and is tried again next time)."""
    cutoff = url_expired_before - timedelta(seconds=USE_GRACE_SECONDS)
    expired = (
        await Upload.filter(owner_id=user_id, status=UploadStatus.PENDING, created_at__lt=cutoff)
        .order_by("created_at")
        .limit(_CLEANUP_BATCH)
    )
    deleted = []
    for upload in expired:
        try:
            await store.delete(upload.key)
        except ServiceUnavailable as exc:
            log.warning("could not delete an expired upload's bytes (retried later): %s", exc)
            break
        deleted.append(upload.id)
    if deleted:
        await Upload.filter(id__in=deleted, status=UploadStatus.PENDING).delete()


async def get_upload(*, principal: Principal | None, upload_id: str) -> Upload:
    """The caller's upload (an admin: anyone's); NotFound otherwise (also for other users'
    uploads)."""
    user = require_user(principal, scopes.UPLOADS_WRITE)
    try:
        key = uuid.UUID(upload_id)
    except ValueError:
        raise NotFound(f"no upload {upload_id}") from None
    upload = await Upload.filter(id=key, **user.owner_filter()).first()
    if upload is None:
        raise NotFound(f"no upload {upload_id}")
    return upload


async def receive(
    *, principal: Principal | None, upload_id: str, kind: UploadKind, store: ObjectStore
) -> Received:
    """Read back and check one of the caller's uploads; InvalidInput when it cannot be used."""
    upload = await get_upload(principal=principal, upload_id=upload_id)
    if upload.kind is not kind:
        raise InvalidInput(
            f"uploadId: upload {upload_id} is {upload.kind}, not {kind}", field="uploadId"
        )
    if upload.status is UploadStatus.REJECTED:
        raise InvalidInput(
            f"uploadId: upload {upload_id} was rejected: {upload.reason}", field="uploadId"
        )
    try:
        data = await store.get(upload.key, limit=upload.size)
    except ObjectMissing:
        raise InvalidInput(
            f"uploadId: upload {upload_id} has not been received; PUT the file to its URL first",
            field="uploadId",
        ) from None
    except InvalidInput:
        await _reject(upload, store, f"larger than the declared {upload.size} bytes")
        raise
    try:
        info, sha256 = await cpu.run(_check, kind, data)
    except BadInput as exc:
        await _reject(upload, store, str(exc))
        raise InvalidInput(f"uploadId: {exc}", field="uploadId") from None
    if upload.status is UploadStatus.PENDING:
        upload.status, upload.size = UploadStatus.READY, len(data)
        upload.sha256 = sha256
        await upload.save(update_fields=["status", "size", "sha256"])
    elif sha256 != upload.sha256:
        await _reject(upload, store, "its bytes changed after it was first used")
        raise InvalidInput(
            f"uploadId: upload {upload_id} changed after first use", field="uploadId"
        )
    return Received(upload=upload, data=data, info=info)


async def fetch(reference: dict[str, Any], store: ObjectStore) -> bytes:
    """The bytes a creation's input refers to, as they were when checked; BadInput otherwise
    (a run that starts after the upload was deleted or replaced)."""
    try:
        data = await store.get(reference["key"], limit=int(reference["size"]))
    except (ObjectMissing, InvalidInput):
        raise BadInput(f"upload {reference['id']} is no longer available") from None
    if await cpu.run(_digest, data) != reference["sha256"]:
        raise BadInput(f"upload {reference['id']} changed after it was checked")
    return data


def _check(kind: UploadKind, data: bytes) -> tuple[Any, str]:
    """Sniff and hash up to 50 MiB: CPU work for the pool, never the event loop."""
    return _SNIFF[kind](data), _digest(data)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _reject(upload: Upload, store: ObjectStore, reason: str) -> None:
    upload.status, upload.reason = UploadStatus.REJECTED, reason[:200]
    await upload.save(update_fields=["status", "reason"])
    await store.delete(upload.key)

"""Object storage for uploads and large outputs: S3 (boto3) in production, a folder embedded.

Clients never send large files through GraphQL: `createUpload` hands out a short-lived URL
the client PUTs the bytes to. On S3 that is a presigned URL; embedded, it is this server's
own `PUT /uploads/{ticket}`, whose ticket is signed with the JWT secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jwt import JWTClaimsRegistry

from resolvers.core.errors import InvalidInput, ServiceUnavailable

if TYPE_CHECKING:
    from resolvers.core.settings import Settings

_TICKET_AUDIENCE = "creation-king/upload"


@dataclass(frozen=True)
class UploadTarget:
    """Where and how a client sends an upload's bytes."""

    url: str
    method: str
    headers: dict[str, str]
    expires_in: int


@dataclass(frozen=True)
class StoredObject:
    """What the store knows of an object without reading it."""

    size: int
    content_type: str | None


class ObjectMissing(LookupError):
    """No object under this key (an upload not sent yet, or a deleted output)."""


class ObjectStore(Protocol):
    """The operations the application needs; every error but ObjectMissing and
    InvalidInput is a ServiceUnavailable."""

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str, *, limit: int) -> bytes:
        """The object's bytes; InvalidInput when it is larger than `limit`."""
        ...

    async def stat(self, key: str) -> StoredObject | None: ...

    async def delete(self, key: str) -> None: ...

    def upload_target(
        self, key: str, *, content_type: str, size: int, expires_in: int, base_url: str
    ) -> UploadTarget:
        """A URL the client PUTs exactly `size` bytes of `content_type` to."""
        ...


def _too_large(size: int, limit: int) -> InvalidInput:
    return InvalidInput(f"the upload is {size} bytes; the limit is {limit} bytes", field="upload")


class LocalStore:
    """Embedded mode: objects are files under `root`; uploads go to this server."""

    def __init__(self, root: Path, *, secret: str) -> None:
        self._root = root.resolve()
        # A key of its own: an upload ticket can never pass for an access token.
        self._key = OctKey.import_key(hashlib.sha256(b"upload-ticket\0" + secret.encode()).digest())
        self._claims = JWTClaimsRegistry(
            aud={"essential": True, "value": _TICKET_AUDIENCE}, exp={"essential": True}
        )

    def _path(self, key: str) -> Path:
        path = (self._root / key).resolve()
        if not path.is_relative_to(self._root) or path == self._root:
            raise ValueError(f"object key {key!r} leaves the store")
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, key: str, *, limit: int) -> bytes:
        path = self._path(key)
        stat = await self.stat(key)
        if stat is None:
            raise ObjectMissing(key)
        if stat.size > limit:
            raise _too_large(stat.size, limit)
        return await asyncio.to_thread(path.read_bytes)

    async def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        return StoredObject(size=size, content_type=None)

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def upload_target(
        self, key: str, *, content_type: str, size: int, expires_in: int, base_url: str
    ) -> UploadTarget:
        claims = {
            "aud": _TICKET_AUDIENCE,
            "key": key,
            "ct": content_type,
            "size": size,
            "exp": int(time.time()) + expires_in,
            "jti": uuid.uuid4().hex,
        }
        ticket = jwt.encode({"alg": "HS256"}, claims, self._key)
        return UploadTarget(
            url=f"{base_url.rstrip('/')}/uploads/{ticket}",
            method="PUT",
            headers={"Content-Type": content_type},
            expires_in=expires_in,
        )

    def read_ticket(self, ticket: str) -> tuple[str, str, int]:
        """The key, content type and size a ticket allows; InvalidInput when it does not hold."""
        try:
            token = jwt.decode(ticket, self._key, algorithms=["HS256"])
            self._claims.validate(token.claims)
            claims = token.claims
            key, content_type, size = claims["key"], claims["ct"], claims["size"]
        except (JoseError, KeyError, ValueError) as exc:
            raise InvalidInput("the upload URL is invalid or has expired", field="url") from exc
        if not (isinstance(key, str) and isinstance(content_type, str) and isinstance(size, int)):
            raise InvalidInput("the upload URL is invalid", field="url")
        return key, content_type, size


class S3Store:
    """Production: one S3 (or S3-compatible, e.g. MinIO) bucket; boto3 calls run in threads."""

    def __init__(self, client: Any, bucket: str, *, presigner: Any | None = None) -> None:
        self._client = client
        self._bucket = bucket
        # Presigned URLs are fetched by browsers: they may need another host than ours.
        self._presigner = presigner or client

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        import boto3  # lazily: only S3 users pay for importing boto3
        from botocore.config import Config

        assert settings.s3_bucket is not None

        def client_for(endpoint: str | None) -> Any:
            return boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name=settings.s3_region,
                aws_access_key_id=settings.s3_access_key_id,
                aws_secret_access_key=settings.s3_secret_access_key.get_secret_value()
                if settings.s3_secret_access_key
                else None,
                config=Config(
                    signature_version="s3v4",
                    connect_timeout=5,
                    read_timeout=30,
                    retries={"max_attempts": 3, "mode": "standard"},
                    s3={"addressing_style": "path"} if endpoint else None,
                ),
            )

        client = client_for(settings.s3_endpoint_url)
        presigner = None
        if settings.s3_public_endpoint_url:
            presigner = client_for(settings.s3_public_endpoint_url)
        return cls(client, settings.s3_bucket, presigner=presigner)

    async def _call(self, name: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(getattr(self._client, name), **params)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if status == 404 or code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectMissing(params.get("Key", "")) from exc
            raise ServiceUnavailable("object storage refused the request") from exc
        except BotoCoreError as exc:
            raise ServiceUnavailable("object storage is unreachable") from exc

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._call(
            "put_object", Bucket=self._bucket, Key=key, Body=data, ContentType=content_type
        )

    async def get(self, key: str, *, limit: int) -> bytes:
        stat = await self.stat(key)
        if stat is None:
            raise ObjectMissing(key)
        if stat.size > limit:
            raise _too_large(stat.size, limit)
        # Ask for no more than the limit even if the object grew since the HEAD.
        response = await self._call(
            "get_object", Bucket=self._bucket, Key=key, Range=f"bytes=0-{limit}"
        )
        data: bytes = await asyncio.to_thread(response["Body"].read)
        if len(data) > limit:
            raise _too_large(len(data), limit)
        return data

    async def stat(self, key: str) -> StoredObject | None:
        try:
            head = await self._call("head_object", Bucket=self._bucket, Key=key)
        except ObjectMissing:
            return None
        return StoredObject(size=int(head["ContentLength"]), content_type=head.get("ContentType"))

    async def delete(self, key: str) -> None:
        await self._call("delete_object", Bucket=self._bucket, Key=key)

    def upload_target(
        self, key: str, *, content_type: str, size: int, expires_in: int, base_url: str
    ) -> UploadTarget:
        # ContentType and ContentLength are signed: S3 refuses any other type or length.
        url = self._presigner.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": size,
            },
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        return UploadTarget(
            url=url, method="PUT", headers={"Content-Type": content_type}, expires_in=expires_in
        )


def make_store(settings: Settings) -> ObjectStore:
    """S3 when a bucket is configured, else the data folder."""
    if settings.s3_bucket:
        return S3Store.from_settings(settings)
    return LocalStore(settings.data_dir / "objects", secret=settings.signing_secret())

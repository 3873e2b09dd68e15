"""Upload fields: ask for an upload URL, then use the upload by id in imageCaption/transcribe."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated

import strawberry
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from resolvers import upload as use_cases
from resolvers.core import models
from resolvers.core.errors import CreationKingError, InvalidInput
from resolvers.core.settings import Settings
from resolvers.resources import Core
from resolvers.storage.objects import LocalStore
from schema.context import Info
from schema.types.errors import (
    AuthError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
    from_exception_as,
)


@strawberry.enum(description="What an upload is for.")
class UploadKind(Enum):
    IMAGE = strawberry.enum_value(
        "IMAGE",
        description="An image for imageCaption: PNG, JPEG, WebP or GIF, up to 10 MiB and "
        "4096×4096 pixels (WebP: 2048×2048).",
    )
    AUDIO = strawberry.enum_value(
        "AUDIO",
        description="Audio for transcribe: WAV, MP3, FLAC, Ogg or M4A, up to 50 MiB.",
    )


@strawberry.enum(description="Where an upload stands.")
class UploadStatus(Enum):
    PENDING = strawberry.enum_value(
        "PENDING", description="Waiting for its bytes, or not used yet: checked on first use."
    )
    READY = strawberry.enum_value("READY", description="Checked: it is what it claimed to be.")
    REJECTED = strawberry.enum_value(
        "REJECTED", description="Not what it claimed (see `reason`); its bytes were deleted."
    )


@strawberry.type(description="A file you sent to object storage, used by id in tool inputs.")
class Upload:
    id: strawberry.ID = strawberry.field(description="Pass as `uploadId` in a tool's input.")
    kind: UploadKind = strawberry.field(description="What it is for.")
    content_type: str = strawberry.field(description="Its declared MIME type.")
    size: int = strawberry.field(
        description="Bytes: as declared until it is checked, then as received."
    )
    status: UploadStatus = strawberry.field(description="Where it stands.")
    reason: str | None = strawberry.field(description="Why it was rejected, when REJECTED.")
    created_at: datetime = strawberry.field(description="When it was requested (UTC).")

    @classmethod
    def from_model(cls, row: models.Upload) -> Upload:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=UploadKind(row.kind.value),
            content_type=row.content_type,
            size=row.size,
            status=UploadStatus(row.status.value),
            reason=row.reason,
            created_at=row.created_at,
        )


@strawberry.type(description="An HTTP header the upload request must carry.")
class UploadHeader:
    name: str = strawberry.field(description="Header name.")
    value: str = strawberry.field(description="Header value.")


@strawberry.type(
    description="A new upload and where to send it: `method` the exact bytes to `url` with "
    "`headers` before `expiresAt`, then use `upload.id`."
)
class UploadTicket:
    upload: Upload = strawberry.field(description="The upload, PENDING until used.")
    url: str = strawberry.field(
        description="Where to send the bytes: a presigned S3 URL, or this server's "
        "/uploads/ endpoint in embedded mode (at CK_PUBLIC_URL, else the address the server "
        "was reached on). Needs no Authorization header; keep it secret until it expires."
    )
    method: str = strawberry.field(description="The HTTP method: PUT.")
    headers: list[UploadHeader] = strawberry.field(description="Headers to send with it.")
    expires_at: datetime = strawberry.field(description="When the URL stops accepting (UTC).")


@strawberry.input(description="The upload you are about to send.")
class CreateUploadInput:
    kind: UploadKind = strawberry.field(description="What it is for.")
    content_type: str = strawberry.field(
        description="Its MIME type, e.g. image/png or audio/wav; the bytes are checked "
        "against it on first use."
    )
    size: int = strawberry.field(
        description="Its exact size in bytes; at most 10 MiB for IMAGE, 50 MiB for AUDIO."
    )


CreateUploadResult = Annotated[
    UploadTicket | InvalidInputError | AuthError | UnavailableError,
    strawberry.union("CreateUploadResult", description="The upload ticket, or why not."),
]
DeleteUploadResult = Annotated[
    Upload | AuthError | NotFoundError | UnavailableError,
    strawberry.union("DeleteUploadResult", description="The deleted upload, or why not."),
]


def upload_base_url(settings: Settings, connection: HTTPConnection) -> str:
    """The base of embedded upload URLs: `public_url` when set, else the address the server
    itself was reached on (the ASGI scope's `server`, its socket's own address), never the
    Host header: a forged one would point the capability URL at another host. Behind a
    proxy or a port mapping, set CK_PUBLIC_URL. Production presigns S3 URLs instead (its
    settings require CK_S3_BUCKET), where no base URL is used."""
    if settings.public_url:
        return settings.public_url
    scheme = "https" if connection.scope.get("scheme") in ("https", "wss") else "http"
    server = connection.scope.get("server")
    if not server:  # a Unix socket: no address of ours to name
        return f"{scheme}://localhost"
    host, port = str(server[0]), server[1]
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


@strawberry.type
class UploadQuery:
    @strawberry.field(
        description="One of your uploads; null with a NOT_FOUND error otherwise "
        "(UNAUTHENTICATED when signed out)."
    )
    async def upload(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The upload's id.")],
    ) -> Upload | None:
        row = await use_cases.get_upload(principal=info.context.user(), upload_id=id)
        return Upload.from_model(row)


@strawberry.type
class UploadMutation:
    @strawberry.mutation(
        description="Start an upload: returns a short-lived URL to PUT the file to. Images "
        "and audio too large for a base64 field go this way. Refused (INVALID_INPUT) with 50 "
        "unused uploads whose URLs are still live, or when your uploads would hold more than "
        "the server's upload quota (the message says how much they hold and may). An unused "
        "upload is deleted a few minutes after its URL expires."
    )
    async def create_upload(
        self,
        info: Info,
        input: Annotated[CreateUploadInput, strawberry.argument(description="The file.")],
    ) -> CreateUploadResult:
        ctx = info.context
        settings = ctx.core.settings
        try:
            ticket = await use_cases.create_upload(
                principal=ctx.user(),
                kind=models.UploadKind(input.kind.name),
                content_type=input.content_type,
                size=input.size,
                store=ctx.core.outputs.store,
                base_url=upload_base_url(settings, ctx.request),
                expires_in=settings.upload_url_ttl_seconds,
                quota_bytes=settings.upload_quota_bytes,
            )
        except CreationKingError as exc:
            return from_exception_as(exc, InvalidInputError, AuthError)
        target = ticket.target
        return UploadTicket(
            upload=Upload.from_model(ticket.upload),
            url=target.url,
            method=target.method,
            headers=[UploadHeader(name=k, value=v) for k, v in target.headers.items()],
            expires_at=ticket.upload.created_at + timedelta(seconds=target.expires_in),
        )

    @strawberry.mutation(
        description="Delete one of your uploads and its bytes, freeing its share of your "
        "upload quota; returns it as it was. Creations that used it keep their results."
    )
    async def delete_upload(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The upload's id.")],
    ) -> DeleteUploadResult:
        ctx = info.context
        try:
            row = await use_cases.delete_upload(
                principal=ctx.user(), upload_id=id, store=ctx.core.outputs.store
            )
        except CreationKingError as exc:
            return from_exception_as(exc, AuthError, NotFoundError)
        return Upload.from_model(row)


def _refused(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)


async def receive_upload(request: Request) -> Response:
    """PUT /uploads/{ticket}: embedded mode's stand-in for a presigned S3 URL."""
    core: Core = request.app.state.core
    store = core.outputs.store
    if not isinstance(store, LocalStore):
        return _refused(404, "uploads go to object storage; use the URL createUpload gave")
    try:
        key, content_type, size = store.read_ticket(request.path_params["ticket"])
    except InvalidInput as exc:
        return _refused(403, exc.message)
    sent_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if sent_type != content_type:
        return _refused(400, f"Content-Type must be {content_type}, as declared")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > size:
            return _refused(413, f"more than the declared {size} bytes")
    if len(body) != size:
        return _refused(400, f"expected the declared {size} bytes, got {len(body)}")
    await store.put(key, bytes(body), content_type)
    return Response(status_code=200)

"""Tortoise models: the rows we keep in Postgres (SQLite when embedded)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

from tortoise import fields
from tortoise.models import Model


class CreationStatus(StrEnum):
    """Lifecycle of a creation; the last three are terminal."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (CreationStatus.COMPLETED, CreationStatus.FAILED, CreationStatus.CANCELLED)


class Role(StrEnum):
    """What an account may do: admins read and manage everyone's objects."""

    USER = "USER"
    ADMIN = "ADMIN"


class User(Model):
    """An account, its e-mail stored lower-cased."""

    id = fields.UUIDField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharEnumField(Role, max_length=8, default=Role.USER)
    # Set for accounts that sign in through an external OIDC issuer: "<issuer>|<subject>".
    external_id = fields.CharField(max_length=300, null=True, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"


class Creation(Model):
    """One run of a creation tool: its input, its output and what it cost."""

    id = fields.UUIDField(primary_key=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="creations", on_delete=fields.CASCADE
    )
    owner_id: str
    tool = fields.CharField(max_length=32)
    input: dict[str, Any] = fields.JSONField()
    status = fields.CharEnumField(CreationStatus, max_length=16, default=CreationStatus.QUEUED)
    output = fields.TextField(default="")
    result: dict[str, Any] | None = fields.JSONField(null=True)
    model = fields.CharField(max_length=128, default="")  # the backend: local, triton, ...
    model_name = fields.CharField(max_length=200, default="")  # the model on that backend
    variant = fields.CharField(max_length=40, null=True)  # the routing variant that served it
    prompt_tokens = fields.IntField(default=0)
    completion_tokens = fields.IntField(default=0)
    error_code = fields.CharField(max_length=64, null=True)
    error_message = fields.TextField(null=True)
    last_seq = fields.IntField(default=0)
    # Cache hits and requests identical to one in flight copy another creation's generation.
    source: fields.ForeignKeyNullableRelation[Creation] = fields.ForeignKeyField(
        "models.Creation", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    source_id: UUID | None
    cache_key = fields.CharField(max_length=64, null=True)
    # Personal data masked before the model: field, kind, placeholder, count (no values).
    masked: list[dict[str, Any]] = fields.JSONField(default=list)
    # Tokens reserved from the owner's quota at admission; the unused part is refunded.
    reserved_tokens = fields.IntField(default=0)
    # Outputs over CK_OUTPUT_INLINE_BYTES live in object storage; `output` keeps their start.
    output_key = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "creations"
        indexes = (("owner_id", "created_at"),)


class Lexicon(Model):
    """A user's glossary for one language pair: terms a translation must render exactly."""

    id = fields.UUIDField(primary_key=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="lexicons", on_delete=fields.CASCADE
    )
    owner_id: UUID
    name = fields.CharField(max_length=100)
    source_lang = fields.CharField(max_length=8)
    target_lang = fields.CharField(max_length=8)
    entries: list[dict[str, str]] = fields.JSONField(default=list)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "lexicons"
        unique_together = (("owner_id", "name"),)


class Preset(Model):
    """A user's saved settings for a tool: a SWOT template or a tarot spread."""

    id = fields.UUIDField(primary_key=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="presets", on_delete=fields.CASCADE
    )
    owner_id: UUID
    tool = fields.CharField(max_length=32)
    name = fields.CharField(max_length=100)
    data: dict[str, Any] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "presets"
        unique_together = (("owner_id", "tool", "name"),)


class UploadKind(StrEnum):
    """What an upload is for: images feed imageCaption, audio feeds transcribe."""

    IMAGE = "IMAGE"
    AUDIO = "AUDIO"


class UploadStatus(StrEnum):
    """PENDING until first used, then READY (checked) or REJECTED (not what it claimed)."""

    PENDING = "PENDING"
    READY = "READY"
    REJECTED = "REJECTED"


class Upload(Model):
    """A file a user sends to object storage through a short-lived URL, then uses by id."""

    id = fields.UUIDField(primary_key=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="uploads", on_delete=fields.CASCADE
    )
    owner_id: UUID
    kind = fields.CharEnumField(UploadKind, max_length=8)
    content_type = fields.CharField(max_length=64)
    size = fields.BigIntField()  # declared by the client, then the size received
    key = fields.CharField(max_length=200, unique=True)
    status = fields.CharEnumField(UploadStatus, max_length=10, default=UploadStatus.PENDING)
    sha256 = fields.CharField(max_length=64, null=True)
    reason = fields.CharField(max_length=200, null=True)  # why it was rejected
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "uploads"
        indexes = (("owner_id", "created_at"),)


class RefreshToken(Model):
    """One link in the chain of rotating refresh tokens of a sign-in session (hash only).

    Every refresh replaces the token with a new one of the same family (the session). Using
    a replaced token again means it was stolen: the whole family is revoked."""

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="refresh_tokens", on_delete=fields.CASCADE
    )
    user_id: UUID
    family = fields.UUIDField(db_index=True)  # the session id, also in its access tokens
    token_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    replaced_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "refresh_tokens"


class ApiKey(Model):
    """A partner credential acting for its owner within its scopes (hash only).

    Used directly as a bearer token, or as the client id and secret of the OAuth2
    client-credentials flow."""

    id = fields.UUIDField(primary_key=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="api_keys", on_delete=fields.CASCADE
    )
    owner_id: UUID
    name = fields.CharField(max_length=100)
    prefix = fields.CharField(max_length=16, unique=True)  # shown in lists, finds the row
    secret_hash = fields.CharField(max_length=64)
    scopes: list[str] = fields.JSONField(default=list)
    expires_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "api_keys"


class AuditEntry(Model):
    """Who did what, when, from where, and how it ended. Rows are never changed or deleted
    (the database refuses UPDATE and DELETE on this table)."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(auto_now_add=True, db_index=True)
    actor_id = fields.UUIDField(null=True, db_index=True)  # null: anonymous
    key_id = fields.UUIDField(null=True)  # the API key acting for the actor
    operation = fields.CharField(max_length=64, db_index=True)
    tool = fields.CharField(max_length=32, null=True)
    object_ids: list[str] = fields.JSONField(default=list)
    outcome = fields.CharField(max_length=40)  # OK or an error code
    detail = fields.CharField(max_length=300, null=True)  # never user content or secrets
    client = fields.CharField(max_length=100, null=True)  # the caller's address

    class Meta:
        table = "audit_log"

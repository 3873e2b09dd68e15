"""API keys for partners: shown once, stored hashed, scoped, expiring, revocable.

A key reads `ck_<prefix>_<secret>`. The prefix finds the row; only the SHA-256 of the whole
key is stored (the secret is 256 random bits, so a fast hash is safe). A key is used as a
bearer token, or as the client secret of the OAuth2 client-credentials flow, whose client
id is `ck_<prefix>`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from resolvers.access.auth import Principal, require_person
from resolvers.access.scopes import check_scopes
from resolvers.access.sockets import announce_revoked
from resolvers.core.errors import InvalidInput, NotAuthenticated, NotFound
from resolvers.core.models import ApiKey, Role

KEY_PREFIX = "ck_"
MAX_KEYS = 20  # live keys per user
MAX_NAME = 100
MAX_DAYS = 366
_TOUCH_SECONDS = 60  # last_used_at is written at most this often per key


@dataclass(frozen=True)
class NewKey:
    """A key just made: `secret` is shown this once and never again."""

    key: ApiKey
    secret: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def client_id_of(key: ApiKey) -> str:
    """The OAuth2 client id of a key."""
    return KEY_PREFIX + key.prefix


def looks_like_key(token: str) -> bool:
    """Whether a bearer token is an API key rather than a JWT."""
    return token.startswith(KEY_PREFIX) and token.count("_") >= 2 and "." not in token


async def create_api_key(
    *,
    principal: Principal | None,
    name: str,
    scopes: Iterable[str],
    expires_in_days: int | None,
    tools: Iterable[str],
) -> NewKey:
    """Make a key for the caller with the given scopes (and lifetime, in days)."""
    user = require_person(principal)
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME or not name.isprintable():
        raise InvalidInput(f"name: must be 1 to {MAX_NAME} printable characters", field="name")
    chosen = check_scopes(scopes, tools)
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_DAYS:
        raise InvalidInput(f"expiresInDays: must be 1 to {MAX_DAYS}", field="expiresInDays")
    live = ApiKey.filter(owner_id=user.user_id, revoked_at=None)
    if await live.count() >= MAX_KEYS:
        raise InvalidInput(f"you already have {MAX_KEYS} keys; revoke one first", field="name")
    prefix = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    expires = None
    if expires_in_days is not None:
        expires = datetime.now(UTC) + timedelta(days=expires_in_days)
    key = await ApiKey.create(
        owner_id=user.user_id,
        name=name,
        prefix=prefix,
        secret_hash=_hash(secret),
        scopes=sorted(chosen),
        expires_at=expires,
    )
    return NewKey(key=key, secret=secret)


async def list_api_keys(*, principal: Principal | None) -> list[ApiKey]:
    """The caller's own keys, newest first (revoked ones too, marked)."""
    user = require_person(principal)
    return await ApiKey.filter(owner_id=user.user_id).order_by("-created_at").limit(200)


async def revoke_api_key(*, principal: Principal | None, key_id: str, redis: Redis) -> ApiKey:
    """Revoke one of the caller's keys (an admin: anyone's); it stops working at once, also
    the OAuth tokens issued for it, and the sockets opened with either close everywhere."""
    user = require_person(principal)
    try:
        wanted = uuid.UUID(key_id)
    except ValueError:
        raise NotFound(f"no API key {key_id}") from None
    key = await ApiKey.filter(id=wanted, **user.owner_filter()).first()
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await key.save(update_fields=["revoked_at"])
    await announce_revoked(redis, key_id=str(key.id))
    return key


async def verify_api_key(secret: str, *, ttl_seconds: int) -> Principal:
    """The principal an API key stands for; NotAuthenticated for anything wrong with it.
    A key's principal lives `ttl_seconds` at most (it is checked again on every request)."""
    key = await find_key(secret)
    expires = int(time.time()) + ttl_seconds
    if key.expires_at is not None:
        expires = min(expires, int(key.expires_at.timestamp()))
    await _touch(key)
    return Principal(
        user_id=str(key.owner_id),
        expires_at=expires,
        role=Role.USER,
        scopes=frozenset(key.scopes),
        key_id=str(key.id),
    )


async def check_key(key_id: str) -> None:
    """NotAuthenticated unless the key is still live: for what was issued or opened with it
    (an OAuth token, a socket) after the key itself was checked."""
    key = await ApiKey.get_or_none(id=key_id)
    if key is None or key.revoked_at is not None:
        raise NotAuthenticated("this API key was revoked")
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        raise NotAuthenticated("this API key has expired")


async def find_key(secret: str, client_id: str | None = None) -> ApiKey:
    """The live key `secret` is (and whose client id is `client_id`, when given)."""
    parts = secret.strip().split("_", 2)
    if len(parts) != 3 or f"{parts[0]}_" != KEY_PREFIX:
        raise NotAuthenticated("invalid API key")
    key = await ApiKey.get_or_none(prefix=parts[1])
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(secret.strip())):
        raise NotAuthenticated("invalid API key")
    if client_id is not None and not hmac.compare_digest(client_id, client_id_of(key)):
        raise NotAuthenticated("invalid client credentials")
    if key.revoked_at is not None:
        raise NotAuthenticated("this API key was revoked")
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        raise NotAuthenticated("this API key has expired")
    return key


async def _touch(key: ApiKey) -> None:
    now = datetime.now(UTC)
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > _TOUCH_SECONDS:
        await ApiKey.filter(id=key.id).update(last_used_at=now)

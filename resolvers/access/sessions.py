"""Sign-in sessions: short-lived access tokens plus rotating, revocable refresh tokens.

A session is a family of refresh tokens. Each refresh replaces the presented token with a
new one and issues a fresh access token; presenting a replaced token again means it was
copied, so the whole family is revoked. Logout revokes the family and puts the session id
on a denylist in Redis that access tokens are checked against until they expire, and
announces it so that every replica closes the session's open sockets. An external OIDC
token counts as a session of its own (resolvers.access.identity), so logout works for it too.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from resolvers.access.auth import Auth, Principal, require_person, require_user
from resolvers.access.sockets import announce_revoked
from resolvers.core import keys
from resolvers.core.errors import NotAuthenticated, ServiceUnavailable
from resolvers.core.models import RefreshToken, User

REFRESH_PREFIX = "ckr_"
_DENY_CACHE_SECONDS = 2.0  # a revoked session is refused everywhere within this


@dataclass(frozen=True)
class SignedIn:
    """What a client keeps after signing in or refreshing."""

    user: User
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    """Starts, refreshes and ends sign-in sessions."""

    def __init__(self, auth: Auth, redis: Redis, *, refresh_ttl_seconds: int) -> None:
        self._auth = auth
        self._redis = redis
        self._refresh_ttl = refresh_ttl_seconds
        self._denied: dict[str, tuple[bool, float]] = {}  # sid -> (revoked, checked at)

    async def start(self, user: User) -> SignedIn:
        """A new session for `user`."""
        return await self._issue(user, uuid.uuid4())

    async def refresh(self, token: str) -> SignedIn:
        """Replace a refresh token with a new one and a fresh access token."""
        token = token.strip()
        if not token.isascii() or not token.isprintable():
            raise NotAuthenticated("this refresh token is not valid; sign in again")
        row = await RefreshToken.get_or_none(token_hash=_hash(token))
        now = datetime.now(UTC)
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            raise NotAuthenticated("this refresh token is not valid; sign in again")
        # Conditional: of two refreshes racing with one token, only one wins.
        won = await RefreshToken.filter(id=row.id, replaced_at=None).update(replaced_at=now)
        if not won:
            await self._revoke_family(str(row.family))
            raise NotAuthenticated("this refresh token was already used; the session is ended")
        user = await User.get_or_none(id=row.user_id)
        if user is None:
            raise NotAuthenticated("this account no longer exists")
        session = await self._issue(user, row.family)
        # A replay racing this refresh may have revoked the family before our new token was
        # stored: check after storing it, so one of the two always sees the other.
        revoked = RefreshToken.filter(family=row.family, revoked_at__isnull=False)
        if await revoked.exists():
            await self._revoke_family(str(row.family))
            raise NotAuthenticated("this refresh token was already used; the session is ended")
        return session

    async def logout(self, principal: Principal | None) -> None:
        """End the caller's session: its refresh tokens and its access tokens stop working.
        An external issuer's token is its own session: it stops working until it expires."""
        user = require_user(principal)
        if user.session_id is None:
            require_person(user)  # an API key or OAuth client: Forbidden
            raise NotAuthenticated("this token does not belong to a session")
        await self._revoke_family(user.session_id, until=user.expires_at)

    async def check(self, principal: Principal) -> Principal:
        """The principal, unless its session was ended (NotAuthenticated)."""
        sid = principal.session_id
        if sid is None:
            return principal
        cached = self._denied.get(sid)
        now = time.monotonic()
        if cached is None or now - cached[1] > _DENY_CACHE_SECONDS:
            try:
                revoked = bool(await self._redis.exists(keys.revoked_session(sid)))
            except (redis_errors.RedisError, OSError) as exc:
                raise ServiceUnavailable("cannot check the session right now") from exc
            if len(self._denied) > 10_000:
                self._denied.clear()
            self._denied[sid] = cached = (revoked, now)
        if cached[0]:
            raise NotAuthenticated("this session has ended; sign in again")
        return principal

    async def _issue(self, user: User, family: uuid.UUID) -> SignedIn:
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        await RefreshToken.create(
            user_id=user.id,
            family=family,
            token_hash=_hash(token),
            expires_at=datetime.now(UTC) + timedelta(seconds=self._refresh_ttl),
        )
        access = self._auth.issue(str(user.id), role=user.role, session_id=str(family))
        return SignedIn(user, access, token, self._auth.ttl_seconds)

    async def _revoke_family(self, family: str, *, until: int = 0) -> None:
        """Revoke a session; its access tokens are refused until `until` (epoch seconds) and
        at least one access token lifetime, plus a minute of leeway."""
        await RefreshToken.filter(family=family, revoked_at=None).update(
            revoked_at=datetime.now(UTC)
        )
        deny = max(self._auth.ttl_seconds, until - int(time.time())) + 60
        try:
            await self._redis.set(keys.revoked_session(family), "1", ex=deny)
        except (redis_errors.RedisError, OSError) as exc:
            raise ServiceUnavailable("could not end the session everywhere; retry") from exc
        self._denied[family] = (True, time.monotonic())
        await announce_revoked(self._redis, session_id=family)

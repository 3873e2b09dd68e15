"""Accounts and access tokens: argon2 password hashes, HS256 JWTs through joserfc.

Hashing runs in the bounded CPU pool (resolvers/core/cpu.py): each hash takes its memory cost, so
a burst of logins queues there, or is refused as busy, instead of growing without bound."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jwt import JWTClaimsRegistry
from tortoise.exceptions import IntegrityError

from resolvers.access.scopes import scope_allows
from resolvers.access.throttle import Throttle, account_of
from resolvers.core import cpu
from resolvers.core.db import OUTAGES
from resolvers.core.errors import (
    EmailTaken,
    Forbidden,
    InvalidCredentials,
    InvalidInput,
    NotAuthenticated,
)
from resolvers.core.models import Role, User

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 128
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, until when, with what powers.

    `scopes` None is a person's own session (everything a user may do); an API key or an
    OAuth client carries the scopes it was given. Only a person's session can be an admin.
    """

    user_id: str
    expires_at: int
    role: Role = Role.USER
    scopes: frozenset[str] | None = None
    key_id: str | None = None  # the API key (or OAuth client) acting for the user
    session_id: str | None = None  # the sign-in session (or external token), ended by logout
    client: str | None = None  # the caller's address, for the audit log

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at

    @property
    def admin(self) -> bool:
        """True for an admin's own session: it may read and manage everyone's objects."""
        return self.role is Role.ADMIN and self.scopes is None

    def allows(self, scope: str) -> bool:
        """Whether this principal may do what `scope` names."""
        return self.scopes is None or scope_allows(self.scopes, scope)

    def owner_filter(self) -> dict[str, str]:
        """The owner condition of a lookup: none for an admin, else the caller's objects."""
        return {} if self.admin else {"owner_id": self.user_id}


def require_user(principal: Principal | None, scope: str | None = None) -> Principal:
    """The principal, or NotAuthenticated when the call is anonymous or the token expired,
    or Forbidden when its credentials lack `scope`."""
    if principal is None or principal.expired:
        raise NotAuthenticated("sign in first: this operation needs an access token")
    if scope is not None and not principal.allows(scope):
        raise Forbidden(f"this key or client lacks the scope {scope!r}")
    return principal


async def require_account(user_id: str) -> None:
    """NotAuthenticated when the account a valid token names was deleted since it was issued.

    Asked where an operation failed on the missing account (an insert naming it as owner), not
    on every request: a deleted user's reads find nothing of theirs, and an outage of the
    database must not turn into refused sign-ins. A database that cannot say counts as yes.
    """
    try:
        exists = await User.exists(id=uuid.UUID(user_id))
    except ValueError:
        exists = False
    except OUTAGES:
        return
    if not exists:
        raise NotAuthenticated("this account no longer exists")


def require_person(principal: Principal | None) -> Principal:
    """A person's own session: API keys and OAuth clients cannot manage credentials."""
    user = require_user(principal)
    if user.scopes is not None:
        raise Forbidden("only a signed-in person can do this, not an API key or client")
    return user


def require_admin(principal: Principal | None) -> Principal:
    """An admin's own session; Forbidden otherwise."""
    user = require_person(principal)
    if not user.admin:
        raise Forbidden("this operation is for admins")
    return user


class Auth:
    """Registers, logs in, issues and verifies access tokens."""

    def __init__(
        self, *, secret: str, issuer: str, ttl_seconds: int, time_cost: int, memory_kib: int
    ) -> None:
        self._key = OctKey.import_key(secret)
        self._issuer = issuer
        self._ttl = ttl_seconds
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        self._claims = JWTClaimsRegistry(
            leeway=5,
            iss={"essential": True, "value": issuer},
            sub={"essential": True},
            exp={"essential": True},
        )
        # Hashing for unknown e-mails too keeps login time from revealing which exist.
        self._dummy_hash = self._hasher.hash("not-a-real-password")

    @property
    def ttl_seconds(self) -> int:
        """How long an access token lives."""
        return self._ttl

    def issue(
        self,
        user_id: str,
        *,
        role: Role = Role.USER,
        session_id: str | None = None,
        scopes: frozenset[str] | None = None,
        key_id: str | None = None,
    ) -> str:
        """A signed access token for `user_id`, valid for the configured TTL."""
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self._issuer,
            "sub": user_id,
            "iat": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,
            "role": role.value,
        }
        if session_id is not None:
            claims["sid"] = session_id
        if scopes is not None:
            claims["scope"] = " ".join(sorted(scopes))
        if key_id is not None:
            claims["cid"] = key_id
        return jwt.encode({"alg": _ALGORITHM}, claims, self._key, algorithms=[_ALGORITHM])

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; raises NotAuthenticated otherwise."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=[_ALGORITHM])
            self._claims.validate(decoded.claims)
            claims = decoded.claims
            scope = claims.get("scope")
            return Principal(
                user_id=str(claims["sub"]),
                expires_at=int(claims["exp"]),
                role=Role(claims.get("role", Role.USER.value)),
                scopes=None if scope is None else frozenset(str(scope).split()),
                key_id=None if claims.get("cid") is None else str(claims["cid"]),
                session_id=None if claims.get("sid") is None else str(claims["sid"]),
            )
        except (JoseError, ValueError, TypeError) as exc:
            raise NotAuthenticated("invalid or expired access token") from exc

    def principal_from_header(self, value: str | None) -> Principal | None:
        """Parse `Bearer <token>`; None when absent, NotAuthenticated when malformed."""
        if not value:
            return None
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("expected 'Authorization: Bearer <token>'")
        return self.verify(token.strip())

    async def register(self, email: str, password: str) -> User:
        """Create an account (sign it in with resolvers.access.sessions)."""
        email = _normalise_email(email)
        _check_password(password)
        password_hash = await cpu.run(self._hasher.hash, password)
        try:
            user = await User.create(email=email, password_hash=password_hash)
        except IntegrityError as exc:
            raise EmailTaken("an account with this e-mail exists") from exc
        return user

    async def login(
        self,
        email: str,
        password: str,
        *,
        throttle: Throttle | None = None,
        address: str | None = None,
    ) -> User:
        """The account these credentials open; the same error for every mismatch. With a
        throttle, Locked after too many failures for this account or `address`."""
        email = email.strip().lower()[:254]
        if not _is_text(email) or not _is_text(password):
            raise InvalidCredentials("wrong e-mail or password")
        if throttle is None:
            return await self._check(email, password)
        async with throttle.attempt(account_of(email), address):
            return await self._check(email, password)

    async def _check(self, email: str, password: str) -> User:
        user = await User.get_or_none(email=email)
        stored = user.password_hash if user else self._dummy_hash
        try:
            await cpu.run(self._hasher.verify, stored, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError) as exc:
            raise InvalidCredentials("wrong e-mail or password") from exc
        if user is None:
            raise InvalidCredentials("wrong e-mail or password")
        return user


def _normalise_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email) or not _is_text(email):
        raise InvalidInput("email: not a valid e-mail address", field="email")
    return email


def _is_text(value: str) -> bool:
    return (
        "\x00" not in value
        and value.isprintable()
        and value.encode("utf-8", "replace") == (value.encode("utf-8", "surrogatepass"))
    )


def _check_password(password: str) -> None:
    if not _is_text(password):
        raise InvalidInput("password: must be printable Unicode text", field="password")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(
            f"password: must be {MIN_PASSWORD} to {MAX_PASSWORD} characters", field="password"
        )

"""Accounts and access tokens: argon2 password hashes, HS256 JWTs through joserfc."""

from __future__ import annotations

import asyncio
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

from resolvers.errors import EmailTaken, InvalidCredentials, InvalidInput, NotAuthenticated
from resolvers.models import User

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 128
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user id and when their token expires (epoch seconds)."""

    user_id: str
    expires_at: int

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


def require_user(principal: Principal | None) -> Principal:
    """The principal, or NotAuthenticated when the call is anonymous or the token expired."""
    if principal is None or principal.expired:
        raise NotAuthenticated("sign in first: this operation needs an access token")
    return principal


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

    def issue(self, user_id: str) -> str:
        """A signed access token for `user_id`, valid for the configured TTL."""
        now = int(time.time())
        claims = {
            "iss": self._issuer,
            "sub": user_id,
            "iat": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode({"alg": _ALGORITHM}, claims, self._key, algorithms=[_ALGORITHM])

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; raises NotAuthenticated otherwise."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=[_ALGORITHM])
            self._claims.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise NotAuthenticated("invalid or expired access token") from exc
        return Principal(user_id=str(decoded.claims["sub"]), expires_at=int(decoded.claims["exp"]))

    def principal_from_header(self, value: str | None) -> Principal | None:
        """Parse `Bearer <token>`; None when absent, NotAuthenticated when malformed."""
        if not value:
            return None
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("expected 'Authorization: Bearer <token>'")
        return self.verify(token.strip())

    async def register(self, email: str, password: str) -> tuple[User, str]:
        """Create an account and log it in."""
        email = _normalise_email(email)
        _check_password(password)
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        try:
            user = await User.create(email=email, password_hash=password_hash)
        except IntegrityError as exc:
            raise EmailTaken("an account with this e-mail exists") from exc
        return user, self.issue(str(user.id))

    async def login(self, email: str, password: str) -> tuple[User, str]:
        """Check the password and issue a token; the same error for every mismatch."""
        email = email.strip().lower()[:254]
        if not _is_text(email) or not _is_text(password):
            raise InvalidCredentials("wrong e-mail or password")
        user = await User.get_or_none(email=email)
        stored = user.password_hash if user else self._dummy_hash
        try:
            await asyncio.to_thread(self._hasher.verify, stored, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError) as exc:
            raise InvalidCredentials("wrong e-mail or password") from exc
        if user is None:
            raise InvalidCredentials("wrong e-mail or password")
        return user, self.issue(str(user.id))


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

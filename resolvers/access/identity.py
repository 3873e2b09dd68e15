"""Who is calling: one entry point for every kind of credential a request may carry.

`Authorization: Bearer <token>` holds one of: our own access token (a person's session, or
an OAuth client's token), an API key (`ck_...`), or an access token from the configured
external OIDC issuer (RS256, checked against its JWKS). `X-API-Key: ck_...` works too.

A token outlives nothing it stands for: a session's token is refused once its session ended
or its account was deleted, an OAuth client's once its key was revoked (a key dies with its
account), an issuer's token once it logged out (it is its own session, see `_external`).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
import uuid
from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError

from resolvers.access.apikeys import check_key, looks_like_key, verify_api_key
from resolvers.access.auth import Auth, Principal
from resolvers.access.scopes import external_scopes
from resolvers.access.sessions import Sessions
from resolvers.core.errors import NotAuthenticated, ServiceUnavailable
from resolvers.core.models import Role, User

if TYPE_CHECKING:
    from resolvers.access.oidc import OIDCVerifier


_MAX_TOKEN = 8_192


class Identity:
    """Turns request credentials into a Principal (or None for an anonymous call)."""

    def __init__(
        self,
        auth: Auth,
        sessions: Sessions,
        *,
        oidc: OIDCVerifier | None = None,
        oidc_issuer: str | None = None,
    ) -> None:
        self._auth = auth
        self._sessions = sessions
        self._oidc = oidc
        self._oidc_issuer = oidc_issuer

    async def principal(
        self, authorization: str | None, api_key: str | None = None, client: str | None = None
    ) -> Principal | None:
        """The caller; NotAuthenticated when a credential is present but not valid."""
        token = None
        if authorization:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise NotAuthenticated("expected 'Authorization: Bearer <token>'")
            token = value.strip()
        elif api_key:
            token = api_key.strip()
        if token is None:
            return None
        if not token.isascii() or not token.isprintable() or len(token) > _MAX_TOKEN:
            raise NotAuthenticated("the credentials are malformed")
        principal = await self._verify(token)
        return dataclasses.replace(principal, client=client) if client else principal

    async def recheck(self, principal: Principal) -> Principal:
        """The principal of a long-lived connection, unless its session has ended or its API
        key was revoked since it connected (NotAuthenticated)."""
        if principal.session_id is not None:
            await self._sessions.check(principal)
        if principal.key_id is not None:
            await check_key(principal.key_id)
        return principal

    async def _verify(self, token: str) -> Principal:
        if looks_like_key(token):
            return await verify_api_key(token, ttl_seconds=self._auth.ttl_seconds)
        if self._oidc is not None and _same_issuer(_issuer(token), self._oidc_issuer):
            return await self._external(token)
        principal = await self._sessions.check(self._auth.verify(token))
        if principal.key_id is not None:
            # An OAuth client's token outlives nothing: its key is checked on every request.
            await check_key(principal.key_id)
        return principal

    async def _external(self, token: str) -> Principal:
        from resolvers.access.oidc import ExternalTokenError, IssuerUnavailable

        assert self._oidc is not None
        try:
            identity = await self._oidc.verify(token)
        except IssuerUnavailable as exc:
            raise ServiceUnavailable("the identity provider cannot be reached") from exc
        except ExternalTokenError as exc:
            raise NotAuthenticated(str(exc)) from exc
        # Only an address the issuer verified may label the account (never link to one).
        email = identity.email if identity.email_verified else None
        user = await _user_for(identity.issuer, identity.subject, email)
        principal = Principal(
            user_id=str(user.id),
            expires_at=identity.expires_at,
            role=user.role,
            scopes=external_scopes(identity.scopes),
            # The token is its own session: `logout` revokes it until it expires, and its
            # sockets are indexed under it to close then.
            session_id=external_session_id(token),
        )
        return await self._sessions.check(principal)


def external_session_id(token: str) -> str:
    """The session id an issuer's token stands for: a UUID made from its hash."""
    return str(uuid.UUID(bytes=hashlib.sha256(token.encode()).digest()[:16]))


def _issuer(token: str) -> str | None:
    """The unverified `iss` of a JWT, to pick its verifier (then verified in full)."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 8_192:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


def _same_issuer(seen: str | None, configured: str | None) -> bool:
    """Route a token to the OIDC verifier despite a trailing-slash difference; the verifier
    then checks `iss` exactly and says so when it differs."""
    return (
        seen is not None and configured is not None and seen.rstrip("/") == configured.rstrip("/")
    )


async def _user_for(issuer: str, subject: str, email: str | None) -> User:
    """The account of an external identity, made on its first visit; `email` (verified by
    the issuer, or None) labels a new account unless a local one has it."""
    external_id = f"{issuer}|{subject}"[:300]
    user = await User.get_or_none(external_id=external_id)
    if user is not None:
        return user
    # The e-mail is only a label here: the issuer vouches for the subject, not for an
    # existing local account with the same address, so it never links to one.
    label = f"{secrets.token_hex(8)}@external.invalid"
    if email and not await User.exists(email=email.lower()):
        label = email.lower()[:254]
    try:
        return await User.create(
            email=label, password_hash="!external", external_id=external_id, role=Role.USER
        )
    except IntegrityError:  # a concurrent first visit made it
        made = await User.get_or_none(external_id=external_id)
        if made is None:
            raise
        return made

"""Account fields: who am I, register, log in."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket

from resolvers.access.auth import require_user
from resolvers.access.sessions import SignedIn
from resolvers.access.throttle import Locked, Throttle
from resolvers.core.errors import CreationKingError, NotAuthenticated
from resolvers.core.models import User as UserRow
from resolvers.resources import Core
from schema.context import Info
from schema.types.auth import (
    AuthResult,
    AuthSession,
    LoggedOut,
    LoginInput,
    LogoutResult,
    RegisterInput,
)
from schema.types.errors import auth_failure
from schema.types.user import User


@strawberry.type
class AuthQuery:
    @strawberry.field(
        description="The signed-in user; null, with no error, for a request without "
        "credentials. An invalid, expired or revoked credential makes it null with an "
        "UNAUTHENTICATED error; the query's other fields are unaffected either way."
    )
    async def me(self, info: Info) -> User | None:
        principal = info.context.user()
        if principal is None:
            return None
        require_user(principal)  # an expired token is an error, not "signed out"
        row = await info.context.loaders.user_by_id.load(principal.user_id)
        if row is None:
            raise NotAuthenticated("this account no longer exists")
        return User.from_model(row)


def signin_throttle(core: Core) -> Throttle:
    """The sign-in throttle of password logins and OAuth client secrets alike."""
    settings = core.settings
    return Throttle(
        core.redis,
        allowed=settings.login_failures_allowed,
        lock_seconds=settings.login_lock_seconds,
    )


def client_address(request: Request | WebSocket) -> str | None:
    """The caller's address: the socket peer (behind a proxy, the proxy's)."""
    return request.client.host if request.client else None


async def _signed_in(info: Info, call: Awaitable[UserRow]) -> AuthResult:
    """Open a session for the account `call` returns. A locked sign-in is raised, not
    returned: it becomes a RATE_LIMITED error with `retryAfter`."""
    try:
        session = await info.context.core.sessions.start(await call)
    except Locked:
        raise
    except CreationKingError as exc:
        return auth_failure(exc)
    return _session(session)


def _session(session: SignedIn) -> AuthSession:
    return AuthSession(
        access_token=session.access_token,
        refresh_token=session.refresh_token,
        expires_in=session.expires_in,
        user=User.from_model(session.user),
    )


@strawberry.type
class AuthMutation:
    @strawberry.mutation(description="Create an account and sign in.")
    async def register(
        self,
        info: Info,
        input: Annotated[RegisterInput, strawberry.argument(description="The new account.")],
    ) -> AuthResult:
        return await _signed_in(info, info.context.core.auth.register(input.email, input.password))

    # The description cannot say so until schema/schema.graphql is regenerated: after too
    # many wrong passwords, login answers a RATE_LIMITED error with `retryAfter` instead.
    @strawberry.mutation(description="Sign in with e-mail and password.")
    async def login(
        self,
        info: Info,
        input: Annotated[LoginInput, strawberry.argument(description="The credentials.")],
    ) -> AuthResult:
        core = info.context.core
        call = core.auth.login(
            input.email,
            input.password,
            throttle=signin_throttle(core),
            address=client_address(info.context.request),
        )
        return await _signed_in(info, call)

    @strawberry.mutation(
        description="Trade a refresh token for a new access token and a new refresh token. "
        "A refresh token used twice ends its session (it was copied)."
    )
    async def refresh_session(
        self,
        info: Info,
        refresh_token: Annotated[
            str, strawberry.argument(description="The latest refresh token of the session.")
        ],
    ) -> AuthResult:
        try:
            session = await info.context.core.sessions.refresh(refresh_token[:200])
        except CreationKingError as exc:
            return auth_failure(exc)
        return _session(session)

    @strawberry.mutation(
        description="End the caller's session: its refresh tokens and access tokens stop "
        "working (other sessions of the account are untouched)."
    )
    async def logout(self, info: Info) -> LogoutResult:
        try:
            await info.context.core.sessions.logout(info.context.user())
        except CreationKingError as exc:
            return auth_failure(exc)
        return LoggedOut(ok=True)

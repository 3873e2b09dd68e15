"""Account fields: who am I, register, log in."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

import strawberry

from resolvers.auth import require_user
from resolvers.errors import CreationKingError, NotAuthenticated
from resolvers.models import User as UserRow
from schema.context import Info
from schema.types.auth import AuthResult, AuthSession, LoginInput, RegisterInput
from schema.types.errors import auth_failure
from schema.types.user import User


@strawberry.type
class AuthQuery:
    @strawberry.field(description="The signed-in user. Errors with UNAUTHENTICATED otherwise.")
    async def me(self, info: Info) -> User:
        principal = require_user(info.context.user())
        row = await info.context.loaders.user_by_id.load(principal.user_id)
        if row is None:
            raise NotAuthenticated("this account no longer exists")
        return User.from_model(row)


async def _signed_in(call: Awaitable[tuple[UserRow, str]]) -> AuthResult:
    try:
        row, token = await call
    except CreationKingError as exc:
        return auth_failure(exc)
    return AuthSession(access_token=token, user=User.from_model(row))


@strawberry.type
class AuthMutation:
    @strawberry.mutation(description="Create an account and sign in.")
    async def register(
        self,
        info: Info,
        input: Annotated[RegisterInput, strawberry.argument(description="The new account.")],
    ) -> AuthResult:
        return await _signed_in(info.context.core.auth.register(input.email, input.password))

    @strawberry.mutation(description="Sign in with e-mail and password.")
    async def login(
        self,
        info: Info,
        input: Annotated[LoginInput, strawberry.argument(description="The credentials.")],
    ) -> AuthResult:
        return await _signed_in(info.context.core.auth.login(input.email, input.password))

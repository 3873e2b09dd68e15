"""API key fields: partners' credentials, made and revoked by a signed-in person."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated

import strawberry

from resolvers.access import apikeys as use_cases
from resolvers.access.scopes import AREA_SCOPES, tool_scope
from resolvers.core import models
from resolvers.core.errors import CreationKingError
from resolvers.tools import TOOLS
from schema.context import Info
from schema.types.errors import (
    AuthError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
    from_exception_as,
)


@strawberry.type(description="An API key, as listed (its secret is never shown again).")
class ApiKey:
    id: strawberry.ID = strawberry.field(description="Stable key id (UUID).")
    name: str = strawberry.field(description="Your label for it.")
    client_id: str = strawberry.field(
        description="Its OAuth2 client id (`ck_<prefix>`), also the start of the key."
    )
    scopes: list[str] = strawberry.field(description="What it may do (see Query.scopes).")
    expires_at: datetime | None = strawberry.field(description="When it stops working (UTC).")
    revoked_at: datetime | None = strawberry.field(description="When it was revoked (UTC).")
    last_used_at: datetime | None = strawberry.field(
        description="Roughly when it was last used (UTC; updated at most once a minute)."
    )
    created_at: datetime = strawberry.field(description="When it was made (UTC).")

    @classmethod
    def from_model(cls, row: models.ApiKey) -> ApiKey:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            client_id=use_cases.client_id_of(row),
            scopes=list(row.scopes),
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
            created_at=row.created_at,
        )


@strawberry.type(description="A new API key with its secret: store the secret now.")
class NewApiKey:
    key: ApiKey = strawberry.field(description="The key as it will be listed.")
    secret: str = strawberry.field(
        description="The key itself (`ck_...`), shown only this once. Send it as "
        "`Authorization: Bearer <secret>` or `X-API-Key`, or use it as the client secret of "
        "POST /oauth/token (grant_type=client_credentials) with `key.clientId`."
    )


@strawberry.type(description="A scope a key can be given.")
class Scope:
    name: str = strawberry.field(description="The scope string.")
    description: str = strawberry.field(description="What it allows.")


@strawberry.input(description="A new API key.")
class CreateApiKeyInput:
    name: str = strawberry.field(description="Your label, 1 to 100 characters.")
    scopes: list[str] = strawberry.field(
        description="What it may do: names from Query.scopes, e.g. `tools:translate`, "
        "`tools:*`, `creations:read`."
    )
    expires_in_days: int | None = strawberry.field(
        default=90, description="Lifetime in days, 1 to 366; null: until revoked."
    )


NewApiKeyResult = Annotated[
    NewApiKey | InvalidInputError | AuthError | UnavailableError,
    strawberry.union("NewApiKeyResult", description="The new key, or why not."),
]
ApiKeyResult = Annotated[
    ApiKey | AuthError | NotFoundError | UnavailableError,
    strawberry.union("ApiKeyResult", description="The key, or why the call failed."),
]


async def _key_result(
    call: Awaitable[models.ApiKey],
) -> ApiKey | AuthError | NotFoundError | UnavailableError:
    try:
        return ApiKey.from_model(await call)
    except CreationKingError as exc:
        return from_exception_as(exc, AuthError, NotFoundError)


@strawberry.type
class ApiKeyQuery:
    @strawberry.field(
        description="Your API keys, newest first. Needs a person's session: null with an "
        "UNAUTHENTICATED or FORBIDDEN error otherwise."
    )
    async def api_keys(self, info: Info) -> list[ApiKey] | None:
        rows = await use_cases.list_api_keys(principal=info.context.user())
        return [ApiKey.from_model(row) for row in rows]

    @strawberry.field(description="Every scope an API key or OAuth client can hold.")
    def scopes(self) -> list[Scope]:
        tools = [
            Scope(name=tool_scope(name), description=f"Start creations with {name}.")
            for name in TOOLS
        ]
        return [Scope(name=k, description=v) for k, v in AREA_SCOPES.items()] + tools


@strawberry.type
class ApiKeyMutation:
    @strawberry.mutation(
        description="Make an API key for a partner integration; its secret is returned once."
    )
    async def create_api_key(
        self,
        info: Info,
        input: Annotated[CreateApiKeyInput, strawberry.argument(description="The key.")],
    ) -> NewApiKeyResult:
        try:
            made = await use_cases.create_api_key(
                principal=info.context.user(),
                name=input.name,
                scopes=input.scopes,
                expires_in_days=input.expires_in_days,
                tools=TOOLS,
            )
        except CreationKingError as exc:
            return from_exception_as(exc, InvalidInputError, AuthError)
        return NewApiKey(key=ApiKey.from_model(made.key), secret=made.secret)

    @strawberry.mutation(description="Revoke an API key: it stops working at once.")
    async def revoke_api_key(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The key's id.")],
    ) -> ApiKeyResult:
        revoked = use_cases.revoke_api_key(
            principal=info.context.user(), key_id=id, redis=info.context.core.redis
        )
        return await _key_result(revoked)

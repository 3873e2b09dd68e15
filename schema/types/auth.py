"""Register and log in."""

from __future__ import annotations

from typing import Annotated

import strawberry

from schema.types.errors import AuthError, InvalidInputError, UnavailableError
from schema.types.user import User


@strawberry.input(description="A new account.")
class RegisterInput:
    email: str = strawberry.field(description="Login e-mail, at most 254 characters.")
    password: str = strawberry.field(description="8 to 128 characters.")


@strawberry.input(description="Credentials of an existing account.")
class LoginInput:
    email: str = strawberry.field(description="Login e-mail (case-insensitive).")
    password: str = strawberry.field(description="The account's password.")


@strawberry.type(description="A signed-in session.")
class AuthSession:
    access_token: str = strawberry.field(
        description="JWT for `Authorization: Bearer <token>` (HTTP) or the websocket "
        'connection_init payload `{"Authorization": "Bearer <token>"}`.'
    )
    refresh_token: str = strawberry.field(
        description="Trade it for a new session with Mutation.refreshSession before it "
        "expires (30 days by default). Each refresh token works once: keep the new one."
    )
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")
    user: User = strawberry.field(description="The signed-in user.")


AuthResult = Annotated[
    AuthSession | InvalidInputError | AuthError | UnavailableError,
    strawberry.union("AuthResult", description="A session, or why none was opened."),
]


@strawberry.type(description="The session has ended.")
class LoggedOut:
    ok: bool = strawberry.field(description="Always true.")


LogoutResult = Annotated[
    LoggedOut | InvalidInputError | AuthError | UnavailableError,
    strawberry.union("LogoutResult", description="Logged out, or why not."),
]

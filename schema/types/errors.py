"""Expected errors as schema types: mutation results are unions of success and these."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar, overload

import strawberry

from resolvers.core import errors
from schema.tool_inputs import api_path


@strawberry.enum(description="Stable machine-readable error codes.")
class ErrorCode(Enum):
    INVALID_INPUT = strawberry.enum_value(
        "INVALID_INPUT", description="A field is out of its documented range; see `field`."
    )
    UNAUTHENTICATED = strawberry.enum_value(
        "UNAUTHENTICATED", description="No, an invalid or an expired access token."
    )
    INVALID_CREDENTIALS = strawberry.enum_value(
        "INVALID_CREDENTIALS", description="E-mail and password do not match an account."
    )
    EMAIL_TAKEN = strawberry.enum_value(
        "EMAIL_TAKEN", description="An account with this e-mail already exists."
    )
    BLOCKED = strawberry.enum_value(
        "BLOCKED",
        description="The input looks like a prompt injection; nothing was run (see field).",
    )
    FORBIDDEN = strawberry.enum_value(
        "FORBIDDEN",
        description="Signed in, but the key, client or role lacks the permission needed.",
    )
    RATE_LIMITED = strawberry.enum_value(
        "RATE_LIMITED", description="Over a request rate or token quota; see retryAfter."
    )
    NOT_FOUND = strawberry.enum_value(
        "NOT_FOUND", description="No such object, or it is not yours."
    )
    ALREADY_FINISHED = strawberry.enum_value(
        "ALREADY_FINISHED", description="The creation has ended and cannot be cancelled."
    )
    SERVICE_UNAVAILABLE = strawberry.enum_value(
        "SERVICE_UNAVAILABLE", description="A backing service failed; retry later."
    )
    EVENTS_LOST = strawberry.enum_value(
        "EVENTS_LOST",
        description="A subscription's events after its cursor were lost by the event store "
        "and cannot be told apart: follow again with after: 0 (the whole text so far).",
    )


@strawberry.interface(description="An expected failure of a mutation.")
class Error:
    code: ErrorCode = strawberry.field(description="What went wrong, machine-readable.")
    message: str = strawberry.field(description="What went wrong, for humans (English).")


@strawberry.type(description="The input was rejected; nothing was stored.")
class InvalidInputError(Error):
    field: str | None = strawberry.field(
        description="The input field at fault, as the API names it (`lexiconId`; `facts.2` "
        "in lists), when one is."
    )


@strawberry.type(
    description="Authentication failed or is missing (UNAUTHENTICATED, INVALID_CREDENTIALS, "
    "EMAIL_TAKEN), or the credentials lack a permission (FORBIDDEN)."
)
class AuthError(Error):
    pass


@strawberry.type(description="Over a limit; nothing was started or stored.")
class RateLimitedError(Error):
    retry_after: int = strawberry.field(description="Seconds to wait before trying again.")


@strawberry.type(description="The object does not exist or belongs to someone else.")
class NotFoundError(Error):
    pass


@strawberry.type(description="The creation already ended.")
class AlreadyFinishedError(Error):
    pass


@strawberry.type(description="A backing service is down; the request may be retried.")
class UnavailableError(Error):
    pass


ErrorType = (
    InvalidInputError
    | AuthError
    | NotFoundError
    | AlreadyFinishedError
    | RateLimitedError
    | UnavailableError
)


def from_exception(exc: errors.CreationKingError) -> ErrorType:
    """The schema type of a domain error."""
    code = ErrorCode(exc.code)
    if isinstance(exc, errors.InvalidInput):
        field = api_path(exc.field) if exc.field is not None else None
        return InvalidInputError(code=code, message=exc.message, field=field)
    if isinstance(
        exc,
        errors.NotAuthenticated | errors.InvalidCredentials | errors.EmailTaken | errors.Forbidden,
    ):
        return AuthError(code=code, message=exc.message)
    if isinstance(exc, errors.RateLimited):
        return RateLimitedError(code=code, message=exc.message, retry_after=exc.retry_after)
    if isinstance(exc, errors.NotFound):
        return NotFoundError(code=code, message=exc.message)
    if isinstance(exc, errors.AlreadyFinished):
        return AlreadyFinishedError(code=code, message=exc.message)
    return UnavailableError(code=ErrorCode.SERVICE_UNAVAILABLE, message=exc.message)


_A = TypeVar("_A", bound=Error)
_B = TypeVar("_B", bound=Error)
_C = TypeVar("_C", bound=Error)


@overload
def from_exception_as(exc: errors.CreationKingError, a: type[_A], /) -> _A | UnavailableError: ...
@overload
def from_exception_as(
    exc: errors.CreationKingError, a: type[_A], b: type[_B], /
) -> _A | _B | UnavailableError: ...
@overload
def from_exception_as(
    exc: errors.CreationKingError, a: type[_A], b: type[_B], c: type[_C], /
) -> _A | _B | _C | UnavailableError: ...
def from_exception_as(exc: errors.CreationKingError, *allowed: type[Error]) -> Error:
    """The schema type of a domain error, if it is one of `allowed` (the types a field's
    result union holds); any other error becomes UnavailableError, which is always allowed."""
    error = from_exception(exc)
    if isinstance(error, (*allowed, UnavailableError)):
        return error
    return UnavailableError(code=ErrorCode.SERVICE_UNAVAILABLE, message=exc.message)


def auth_failure(exc: errors.CreationKingError) -> InvalidInputError | AuthError | UnavailableError:
    """The schema type of an error from registering or logging in."""
    return from_exception_as(exc, InvalidInputError, AuthError)

"""Domain errors: what a client may see, each with a stable `code`.

    CreationKingError
     ├── InvalidInput          a field failed validation (`field` names it)
     │    └── Blocked          the prompt-injection shield refused the input
     ├── NotAuthenticated      no or an invalid/expired token
     ├── InvalidCredentials    wrong e-mail or password
     ├── EmailTaken            register with an e-mail that exists
     ├── Forbidden             the credentials lack a scope or role the operation needs
     ├── NotFound              unknown id, or an object the caller may not see
     ├── RateLimited           over a request rate or token quota (`retry_after` seconds)
     ├── AlreadyFinished       cancel of a creation that has ended
     ├── ServiceUnavailable    a backing service (database, Redis, model) failed
     └── EventsLost           the event log no longer holds the events a follower asked for

Third-party errors are translated into these at the boundary (`raise X(...) from exc`).
"""

from __future__ import annotations

from typing import Any


class CreationKingError(Exception):
    """Base of every expected error; its message is safe to show to the caller."""

    code = "ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def extensions(self) -> dict[str, Any]:
        """What GraphQL errors built from this one carry (graphql-core copies it)."""
        return {"code": self.code}


class InvalidInput(CreationKingError):
    """A field of the input is out of its documented range."""

    code = "INVALID_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    @property
    def extensions(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field}


class Blocked(InvalidInput):
    """The input looks like an attempt to take over the model; nothing was run."""

    code = "BLOCKED"


class NotAuthenticated(CreationKingError):
    """The operation needs a valid access token."""

    code = "UNAUTHENTICATED"


class InvalidCredentials(CreationKingError):
    """E-mail and password do not match an account."""

    code = "INVALID_CREDENTIALS"


class EmailTaken(CreationKingError):
    """An account with this e-mail exists."""

    code = "EMAIL_TAKEN"


class Forbidden(CreationKingError):
    """The caller is known but its key, client or role does not allow this."""

    code = "FORBIDDEN"


class RateLimited(CreationKingError):
    """Too many requests or tokens for now; `retry_after` says when to try again."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))

    @property
    def extensions(self) -> dict[str, Any]:
        return {"code": self.code, "retryAfter": self.retry_after}


class NotFound(CreationKingError):
    """No such object, or it belongs to someone else (we do not tell which)."""

    code = "NOT_FOUND"


class AlreadyFinished(CreationKingError):
    """The creation has ended; it cannot be cancelled any more."""

    code = "ALREADY_FINISHED"


class ServiceUnavailable(CreationKingError):
    """A backing service failed; retrying later may succeed."""

    code = "SERVICE_UNAVAILABLE"


class EventsLost(CreationKingError):
    """The event log lost the events after `after` (Redis restarted empty, or the log expired
    or was trimmed) and they cannot be told apart from the text around them. `chars` is how
    much text the follower delivered since seq 0, when it followed from there."""

    code = "EVENTS_LOST"

    def __init__(self, creation_id: str, *, after: int, chars: int | None) -> None:
        super().__init__(
            f"the events of creation {creation_id} after seq {after} are no longer in its "
            "event log; follow it again with after: 0 for the whole text so far, or read its "
            "output once it has ended"
        )
        self.after = after
        self.chars = chars

"""Schema extensions: per-operation DataLoaders and masking of unexpected errors."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator

from asyncpg.exceptions import InterfaceError, PostgresConnectionError
from graphql import GraphQLError
from redis import exceptions as redis_errors
from strawberry.extensions import MaskErrors, SchemaExtension
from tortoise.exceptions import DBConnectionError

from resolvers.errors import CreationKingError
from resolvers.loaders import Loaders
from schema.context import current_loaders

log = logging.getLogger("creation_king.graphql")
# Failures of the services under us, not of our code: answered SERVICE_UNAVAILABLE.
_OUTAGES = (
    DBConnectionError,
    PostgresConnectionError,
    InterfaceError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    ConnectionError,
    TimeoutError,
)


class LoadersPerOperation(SchemaExtension):
    """Fresh DataLoaders for every operation, also on long-lived websockets."""

    def on_operation(self) -> Iterator[None]:
        token = current_loaders.set(Loaders())
        try:
            yield
        finally:
            # A subscription's stream may be closed by another task than the one that ran it
            # (a client's stop, a finaliser): there the variable is not ours to reset.
            with contextlib.suppress(ValueError):
                current_loaders.reset(token)


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    # graphql-core's own errors (a variable that does not coerce) are the client's mistakes.
    return original is not None and not isinstance(original, CreationKingError | GraphQLError)


class MaskUnexpectedErrors(MaskErrors):
    """Hide unexpected errors behind a reference id; log them with the operation name."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="Unexpected error.")

    def _process_result(self, result: object) -> None:
        # Not the base class's isinstance() against a runtime-checkable Protocol: that costs
        # more than the rest of this hook, and it runs for every event of every subscriber.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        reference = uuid.uuid4().hex[:12]
        if isinstance(error.original_error, _OUTAGES):
            # A backing service failed (database, Redis, network): retryable, not a bug.
            log.warning(
                "service outage in operation %s (reference %s): %r",
                self.execution_context.operation_name,
                reference,
                error.original_error,
            )
            return GraphQLError(
                message=f"A backing service is unavailable; retry later (reference {reference}).",
                nodes=error.nodes,
                path=error.path,
                extensions={"code": "SERVICE_UNAVAILABLE", "reference": reference},
            )
        log.error(
            "unexpected error in operation %s (reference %s)",
            self.execution_context.operation_name,
            reference,
            exc_info=error.original_error,
        )
        return GraphQLError(
            message=f"Unexpected error (reference {reference}).",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL", "reference": reference},
        )

"""Schema extensions: per-operation state, cached parsing and validation, and masking of
unexpected errors."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from functools import lru_cache

from asyncpg.exceptions import InterfaceError, PostgresConnectionError
from graphql import ASTValidationRule, GraphQLError, parse
from redis import exceptions as redis_errors
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.schema.schema import validate_document
from tortoise.exceptions import DBConnectionError

from resolvers import metrics
from resolvers.errors import CreationKingError
from resolvers.loaders import Loaders
from resolvers.logcontext import OPERATION
from schema.context import current_loaders
from schema.observe import kind_and_root

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


class OperationScope(SchemaExtension):
    """What every operation gets, in one extension (strawberry runs every extension's hook
    lookup for every streamed event, so each one costs on each delivery):

    - fresh DataLoaders, also on long-lived websockets;
    - its name in the log context;
    - its latency, by operation type, root field and outcome.
    """

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        loaders = current_loaders.set(Loaders())
        operation = OPERATION.set(context.operation_name)
        began = time.perf_counter()
        try:
            yield
        finally:
            # A subscription's stream may be closed by another task than the one that ran it
            # (a client's stop, a finaliser): there the variables are not ours to reset.
            with contextlib.suppress(ValueError):
                current_loaders.reset(loaders)
            with contextlib.suppress(ValueError):
                OPERATION.reset(operation)
            errors = getattr(context.result, "errors", None)
            kind, root = kind_and_root(context)
            metrics.OPERATION_SECONDS.labels(kind, root, "error" if errors else "ok").observe(
                time.perf_counter() - began
            )


class PreparedOperations(SchemaExtension):
    """Parsing and validation, each once per distinct document, with a cap on the document's
    tokens and our guard rules: strawberry's MaxTokensLimiter, AddValidationRules,
    ParserCache and ValidationCache in one extension (see OperationScope for why one)."""

    def __init__(self, rules: tuple[type[ASTValidationRule], ...], max_tokens: int) -> None:
        self._rules = rules
        self._max_tokens = max_tokens

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self._max_tokens
        context.validation_rules = context.validation_rules + self._rules
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.graphql_document = parse_cached(context.query, **context.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.pre_execution_errors = validate_cached(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        yield


PARSE_CACHE_SIZE = 512
VALIDATION_CACHE_SIZE = 512
parse_cached = lru_cache(maxsize=PARSE_CACHE_SIZE)(parse)
validate_cached = lru_cache(maxsize=VALIDATION_CACHE_SIZE)(validate_document)


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

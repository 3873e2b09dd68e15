"""Schema extensions: per-operation state, cached parsing and validation, and masking of
unexpected errors."""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Literal, TypeAlias

from graphql import ASTValidationRule, DocumentNode, GraphQLError, parse
from redis import exceptions as redis_errors
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import InvalidOperationTypeError

from resolvers.core import metrics
from resolvers.core.db import OUTAGES
from resolvers.core.errors import CreationKingError, InvalidInput
from resolvers.core.loaders import Loaders
from resolvers.core.logcontext import OPERATION
from schema.context import current_loaders
from schema.documents import TrustedDocuments
from schema.observe import kind_and_root
from schema.parsing import MAX_ANONYMOUS_CHARS, parse_cached, validate_cached
from schema.strings import invalid_string, refusal, variable_errors
from schema.tool_inputs import api_path

log = logging.getLogger("creation_king.graphql")
Introspection: TypeAlias = Literal["public", "signed-in", "off"]
# Failures of the services under us, not of our code: answered SERVICE_UNAVAILABLE.
_OUTAGES = (*OUTAGES, redis_errors.ConnectionError, redis_errors.TimeoutError)


def mask_unexpected(errors: list[GraphQLError], operation_name: str | None) -> None:
    """Hide unexpected errors behind a reference id, logged with the operation's name, and
    name input fields in errors as the API does; in place, so the result that holds the
    list carries the masked errors. Masked errors are left as they are (masking twice
    changes nothing)."""
    for index, error in enumerate(errors):
        if _is_unexpected(error):
            errors[index] = _anonymised(error, operation_name)
            continue
        log.debug("operation error: %s", error.message)
        # An input error names its field as the API does (`maxTokens`), as the
        # InvalidInputError union member does. (Errors of the boundary checks, such as
        # schema.strings, name them as sent already.)
        field = (error.extensions or {}).get("field")
        if isinstance(field, str) and isinstance(error.original_error, InvalidInput):
            error.extensions["field"] = api_path(field)  # type: ignore[index]


def _anonymised(error: GraphQLError, operation_name: str | None) -> GraphQLError:
    if isinstance(error.original_error, InvalidOperationTypeError):
        # The legacy graphql-ws protocol runs subscriptions only: the client's mistake.
        return GraphQLError(
            f"this transport does not run {error.original_error.operation_type.value} "
            "operations; send them over HTTP or graphql-transport-ws",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "BAD_REQUEST"},
        )
    reference = uuid.uuid4().hex[:12]
    if isinstance(error.original_error, _OUTAGES):
        # A backing service failed (database, Redis, network): retryable, not a bug.
        log.warning(
            "service outage in operation %s (reference %s): %r",
            operation_name,
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
        operation_name,
        reference,
        exc_info=error.original_error,
    )
    return GraphQLError(
        message=f"Unexpected error (reference {reference}).",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": "INTERNAL", "reference": reference},
    )


class PreparedOperations(SchemaExtension):
    """Parsing and validation, each once per distinct document, with a cap on the document's
    tokens and our guard rules: strawberry's MaxTokensLimiter, AddValidationRules,
    ParserCache and ValidationCache in one class; the schema runs it as part of
    OperationScope (see there for why one extension).

    It also holds, on every transport, who may introspect (`introspection`: public,
    signed-in or off), that callers without credentials send small documents only, and,
    in trusted-documents mode, that only listed documents run. Strings in the variables
    are checked here too (`schema.strings`; literals by its validation rule), so that no
    resolver ever sees a NUL or a lone surrogate."""

    def __init__(
        self,
        rules: tuple[type[ASTValidationRule], ...],
        max_tokens: int,
        introspection: Introspection = "public",
        trusted: TrustedDocuments | None = None,
        hide_suggestions: bool = False,
    ) -> None:
        self._rules = rules
        self._hide_suggestions = hide_suggestions
        self._max_tokens = max_tokens
        self._introspection = introspection
        self._trusted = trusted
        self._refusal: GraphQLError | None = None

    def on_parse(self) -> Iterator[None]:
        # Set here, not in an `on_operation` hook: that one would stay open (a generator and
        # its context manager) for the whole life of every subscription.
        context = self.execution_context
        context.parse_options["max_tokens"] = self._max_tokens
        context.validation_rules = context.validation_rules + self._rules
        query = context.query or ""
        name = context.operation_name
        if isinstance(name, str) and (reason := refusal(name)) is not None:
            # Refused before strawberry looks the name up (and echoes it, unencodable);
            # strawberry 0.341 has no setter for the name it was given.
            self._refusal = invalid_string("operationName", reason)
            context._provided_operation_name = None
            context.graphql_document = _stand_in(query, None)
        elif len(query) > MAX_ANONYMOUS_CHARS and self._principal() is None:
            # Not parsed at all; a stand-in of the same kind and name lets strawberry go on
            # to validation, where the refusal is reported on every transport.
            self._refusal = GraphQLError(
                f"a document from a caller without credentials may hold at most "
                f"{MAX_ANONYMOUS_CHARS:,} characters; this one has {len(query):,}",
                extensions={"code": "DOCUMENT_TOO_LARGE"},
            )
            context.graphql_document = _stand_in(query, context.operation_name)
        else:
            context.graphql_document = parse_cached(query, self._max_tokens)
        yield

    def on_validate(self) -> Iterator[None]:
        # Refusals are validation errors, not exceptions: strawberry's streaming path (the
        # websockets) lets an exception from a hook escape instead of answering with it.
        context = self.execution_context
        if self._refusal is not None:
            context.pre_execution_errors = [self._refusal]
            yield
            return
        errors, introspects = validate_cached(
            context.schema._schema,
            context.query or "",
            self._max_tokens,
            context.validation_rules,
            hide_suggestions=self._hide_suggestions,
        )
        if self._trusted is not None and not self._trusted.allows(context.query or ""):
            errors = [
                GraphQLError(
                    "this server runs only its trusted documents; this one is not listed",
                    extensions={"code": "QUERY_NOT_IN_SAFELIST"},
                )
            ]
        elif not errors and introspects and not self._may_introspect():
            errors = [self._introspection_refused()]
        if not errors:
            errors = variable_errors(context.variables)
        context.pre_execution_errors = errors
        yield

    def _principal(self) -> object:
        return getattr(self.execution_context.context, "principal", None)

    def _may_introspect(self) -> bool:
        if self._introspection == "signed-in":
            return self._principal() is not None
        return self._introspection == "public"

    def _introspection_refused(self) -> GraphQLError:
        if self._introspection == "off":
            return GraphQLError(
                "introspection is off on this server (CK_INTROSPECTION=off)",
                extensions={"code": "FORBIDDEN"},
            )
        return GraphQLError(
            "introspection needs a signed-in caller on this server (CK_INTROSPECTION=signed-in)",
            extensions={"code": "UNAUTHENTICATED"},
        )


class OperationScope(PreparedOperations):
    """What every operation gets, in the schema's one extension (strawberry keeps each
    extension's `on_operation` open for the life of a subscription, and asks every extension
    for its hooks and results on every streamed event, so each one costs on every socket and
    every delivery):

    - parsing and validation (PreparedOperations);
    - fresh DataLoaders, also on long-lived websockets;
    - its name in the log context;
    - its latency, by operation type, root field and outcome.

    Unexpected errors are masked by `mask_unexpected`, from the schema's `process_errors`,
    which strawberry calls for every result with errors before it leaves (streamed ones
    included): not in an `on_stream_result` hook, which strawberry would set up for every
    event of every subscriber.
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


_OPERATION_KIND = re.compile(r"^(?:\s|,|#[^\n]*)*(query|mutation|subscription)\b")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


def _stand_in(query: str, operation_name: str | None) -> DocumentNode:
    """A tiny document of the same operation kind and name as `query` (read without
    parsing it), for strawberry to check the operation type against."""
    found = _OPERATION_KIND.match(query[:4096])
    kind = found.group(1) if found else "query"
    name = operation_name if operation_name and _NAME.fullmatch(operation_name) else ""
    return parse(f"{kind} {name} {{ __typename }}")


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    # graphql-core's own errors (a variable that does not coerce) are the client's mistakes.
    return original is not None and not isinstance(original, CreationKingError | GraphQLError)

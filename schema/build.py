"""The Strawberry schema: root types composed from the per-domain field classes."""

from __future__ import annotations

from pathlib import Path

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from resolvers.core import tracing
from schema.apikeys import ApiKeyMutation, ApiKeyQuery
from schema.audit import Audited, AuditQuery
from schema.auth import AuthMutation, AuthQuery
from schema.creations import CreationMutation, CreationQuery, CreationSubscription
from schema.documents import TrustedDocuments
from schema.extensions import (
    Introspection,
    OperationScope,
    mask_unexpected,
)
from schema.fanout import SharedEventExecutor
from schema.guards import OperationShape
from schema.lexicons import LexiconMutation, LexiconQuery
from schema.observe import TraceOperations
from schema.parsing import MAX_TOKENS
from schema.presets import PresetMutation, PresetQuery
from schema.strings import PlainStrings
from schema.tool_fields import build_tool_types
from schema.types.events import EVENT_TYPES
from schema.uploads import UploadMutation, UploadQuery

SDL_PATH = Path(__file__).with_name("schema.graphql")

# The rule classes are part of the validation cache's key: the same tuple every time.
_GUARD_RULES: tuple[type[ASTValidationRule], ...] = (OperationShape, PlainStrings)

ToolMutation, ToolSubscription = build_tool_types()
Query = merge_types(
    "Query",
    (AuthQuery, CreationQuery, LexiconQuery, PresetQuery, UploadQuery, ApiKeyQuery, AuditQuery),
)
Mutation = merge_types(
    "Mutation",
    (
        AuthMutation,
        ToolMutation,
        CreationMutation,
        LexiconMutation,
        PresetMutation,
        UploadMutation,
        ApiKeyMutation,
    ),
)
for _field in Mutation.__strawberry_definition__.fields:  # type: ignore[attr-defined]
    _field.extensions.append(Audited())  # every mutation lands in the audit log
Subscription = merge_types("Subscription", (ToolSubscription, CreationSubscription))


class _Schema(strawberry.Schema):
    """Masks unexpected errors where strawberry hands every result's errors over, before
    the result leaves (`mask_unexpected`); expected ones (bad input, no token) are client
    mistakes, logged at debug level only."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        name = execution_context.operation_name if execution_context is not None else None
        mask_unexpected(errors, name)


def build_schema(
    introspection: Introspection = "public",
    trusted: TrustedDocuments | None = None,
    *,
    hide_suggestions: bool = False,
) -> strawberry.Schema:
    """The schema with its guards on; extensions are factories (one instance per operation).
    Operations are traced when a tracer provider is installed (`resolvers.core.tracing`).
    `introspection` says who may introspect; with `trusted`, only its documents run;
    `hide_suggestions` drops graphql-core's "Did you mean" hints from validation errors."""
    return _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=EVENT_TYPES,
        execution_context_class=SharedEventExecutor,
        extensions=[
            lambda: OperationScope(
                _GUARD_RULES,
                max_tokens=MAX_TOKENS,
                introspection=introspection,
                trusted=trusted,
                hide_suggestions=hide_suggestions,
            ),
            *([TraceOperations] if tracing.enabled() else []),
        ],
    )


def export_sdl() -> str:
    """The schema in SDL, as committed in schema/schema.graphql."""
    return build_schema().as_str() + "\n"

"""Schema extensions: per-operation DataLoaders and masking of unexpected errors."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from resolvers.errors import CreationKingError
from resolvers.loaders import Loaders
from schema.context import current_loaders

log = logging.getLogger("creation_king.graphql")


class LoadersPerOperation(SchemaExtension):
    """Fresh DataLoaders for every operation, also on long-lived websockets."""

    def on_operation(self) -> Iterator[None]:
        token = current_loaders.set(Loaders())
        try:
            yield
        finally:
            current_loaders.reset(token)


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, CreationKingError)


class MaskUnexpectedErrors(MaskErrors):
    """Hide unexpected errors behind a reference id; log them with the operation name."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="Unexpected error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        reference = uuid.uuid4().hex[:12]
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

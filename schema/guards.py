"""A validation rule bounding each operation's depth, aliases and size.

Introspection (`__schema`, `__type`) is measured apart from data fields: graphql-js's standard
introspection query, which partners' codegen, GraphiQL and gql all send, nests `ofType` deeper
than any data query may go, so it has its own depth bound, and an operation may introspect
only a few times (repeated `__type` fields are a way to multiply work).

It replaces strawberry's depth and alias limiters, which walk every fragment spread again
each time it is spread: a 1 KB document whose fragments each spread the one before twice
cost them 2**n steps and blocked the event loop for minutes. Here each fragment is measured
once (memoised), so checking any document is linear in its length, and the expanded size
(what execution would really select) is bounded too: that is the query cost limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_FIELDS = 2_000  # fields selected once fragments are expanded
# graphql-js's getIntrospectionQuery (v16 and v17, every option on) is 15 deep: __schema,
# types, fields, args, type, nine levels of ofType and their leaves. The margin lets a client
# ask for a few more levels (graphql-js 17's `typeDepth`); a 30-deep chain is refused.
MAX_INTROSPECTION_DEPTH = 20
MAX_INTROSPECTION_FIELDS = 3  # `__schema` and `__type` fields in one operation
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


@dataclass(frozen=True)
class _Shape:
    depth: int = 0  # of data fields only
    aliases: int = 0
    fields: int = 0
    introspection_depth: int = 0  # the deepest `__schema`/`__type` subtree, itself included
    introspections: int = 0  # how many `__schema`/`__type` fields


class OperationShape(ValidationRule):
    """Refuse operations deeper than MAX_DEPTH, with more than MAX_ALIASES aliases or more
    than MAX_FIELDS fields once their fragments are expanded."""

    def enter_document(self, node: Any, *_args: Any) -> None:
        fragments = {
            d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)
        }
        measure = _Measure(fragments)
        for definition in node.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            shape = measure.selections(definition.selection_set)
            name = definition.name.value if definition.name else "anonymous"
            if shape.depth > MAX_DEPTH:
                self._refuse(f"'{name}' exceeds maximum operation depth of {MAX_DEPTH}", definition)
            if shape.aliases > MAX_ALIASES:
                self._refuse(
                    f"{shape.aliases} aliases found; the limit is {MAX_ALIASES}", definition
                )
            if shape.introspection_depth > MAX_INTROSPECTION_DEPTH:
                self._refuse(
                    f"'{name}' introspects {shape.introspection_depth} levels deep; the limit "
                    f"is {MAX_INTROSPECTION_DEPTH} (the standard introspection query fits)",
                    definition,
                )
            if shape.introspections > MAX_INTROSPECTION_FIELDS:
                self._refuse(
                    f"'{name}' selects {shape.introspections} introspection fields "
                    f"(__schema, __type); the limit is {MAX_INTROSPECTION_FIELDS}",
                    definition,
                )
            if shape.fields > MAX_FIELDS:
                self._refuse(
                    f"'{name}' selects {shape.fields} fields once fragments are expanded; "
                    f"the limit is {MAX_FIELDS}",
                    definition,
                )

    def _refuse(self, message: str, node: OperationDefinitionNode) -> None:
        self.report_error(GraphQLError(message, [node]))


def introspects(document: DocumentNode) -> bool:
    """Whether any operation of the document selects `__schema` or `__type` (only the root
    type has them, so root selections, fragments included, are all there is to look at)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    seen: set[str] = set()

    def roots(selection_set: SelectionSetNode) -> bool:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value in INTROSPECTION_ROOTS:
                    return True
            elif isinstance(selection, InlineFragmentNode):
                if roots(selection.selection_set):
                    return True
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in seen and name in fragments:
                    seen.add(name)
                    if roots(fragments[name].selection_set):
                        return True
        return False

    return any(
        roots(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )


class _Measure:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments
        self._done: dict[str, _Shape] = {}
        self._visiting: set[str] = set()

    def selections(self, selection_set: SelectionSetNode | None) -> _Shape:
        if selection_set is None:
            return _Shape()
        depth = aliases = fields = introspection_depth = introspections = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                inner = self.selections(selection.selection_set)
                if selection.name.value in INTROSPECTION_ROOTS:
                    # Only the root type has these, so everything under them is introspection.
                    introspection_depth = max(introspection_depth, inner.depth + 1)
                    introspections += 1
                else:
                    depth = max(depth, inner.depth + 1)
                introspection_depth = max(introspection_depth, inner.introspection_depth)
                introspections += inner.introspections
                aliases += inner.aliases + (1 if selection.alias else 0)
                fields += inner.fields + 1
            else:
                if isinstance(selection, FragmentSpreadNode):
                    inner = self._fragment(selection.name.value)
                elif isinstance(selection, InlineFragmentNode):
                    inner = self.selections(selection.selection_set)
                else:  # pragma: no cover - graphql has no other selection kinds
                    continue
                depth = max(depth, inner.depth)
                aliases += inner.aliases
                fields += inner.fields
                introspection_depth = max(introspection_depth, inner.introspection_depth)
                introspections += inner.introspections
        return _Shape(depth, aliases, fields, introspection_depth, introspections)

    def _fragment(self, name: str) -> _Shape:
        if name in self._done:
            return self._done[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in self._visiting:
            return _Shape()  # unknown or cyclic: other rules report those
        self._visiting.add(name)
        shape = self.selections(fragment.selection_set)
        self._visiting.discard(name)
        self._done[name] = shape
        return shape

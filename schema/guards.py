"""A validation rule bounding each operation's depth, aliases and size.

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


@dataclass(frozen=True)
class _Shape:
    depth: int = 0
    aliases: int = 0
    fields: int = 0


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
            if shape.fields > MAX_FIELDS:
                self._refuse(
                    f"'{name}' selects {shape.fields} fields once fragments are expanded; "
                    f"the limit is {MAX_FIELDS}",
                    definition,
                )

    def _refuse(self, message: str, node: OperationDefinitionNode) -> None:
        self.report_error(GraphQLError(message, [node]))


class _Measure:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments
        self._done: dict[str, _Shape] = {}
        self._visiting: set[str] = set()

    def selections(self, selection_set: SelectionSetNode | None) -> _Shape:
        if selection_set is None:
            return _Shape()
        depth = aliases = fields = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                inner = self.selections(selection.selection_set)
                depth = max(depth, inner.depth + 1)
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
        return _Shape(depth, aliases, fields)

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

"""The committed SDL against the released one: breaking changes fail unless intended."""

from __future__ import annotations

from graphql import REMOVE, FieldDefinitionNode, Visitor, parse, print_ast, visit

from schema import contract
from schema.build import export_sdl

RELEASED = """
type Query {
  me: User!
  tools: [String!]!
}
type User { id: ID! email: String! }
"""


def test_a_removed_field_and_a_looser_output_type_are_breaking() -> None:
    current = RELEASED.replace("  tools: [String!]!\n", "").replace("me: User!", "me: User")

    changes = contract.breaking_changes(RELEASED, current)

    assert changes == [
        "FIELD_CHANGED_KIND: Field Query.me changed type from User! to User.",
        "FIELD_REMOVED: Field Query.tools was removed.",
    ]


def test_additions_are_not_breaking() -> None:
    current = RELEASED.replace("email: String!", "email: String! name: String")

    assert contract.breaking_changes(RELEASED, current) == []


def test_intended_changes_are_read_without_comments() -> None:
    text = "# header\nFIELD_REMOVED: Field Query.tools was removed. # renamed, see #10\n\n"

    assert contract.intended(text) == {"FIELD_REMOVED: Field Query.tools was removed."}


def test_the_live_schema_breaks_nothing_unintended() -> None:
    assert contract.unintended_changes(export_sdl()) == []


def test_an_unlisted_breaking_change_fails_the_check() -> None:
    class DropTools(Visitor):
        def enter_field_definition(self, node: FieldDefinitionNode, *_: object) -> object:
            return REMOVE if node.name.value == "tools" else None

    without_tools = print_ast(visit(parse(export_sdl()), DropTools()))

    assert "FIELD_REMOVED: Field Query.tools was removed." in contract.unintended_changes(
        without_tools
    )

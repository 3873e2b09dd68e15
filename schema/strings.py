"""Every string a client sends is checked once, here, before any resolver runs.

Refused: NUL (Postgres cannot store it), lone surrogates (no UTF-8 encoding exists for
them: SQLite, logs and JSON replies fail on them), and the other C0 control characters
except tab, line feed and carriage return (they corrupt logs and terminals and no text
tool needs them; a form feed or vertical tab pasted from a PDF or a word processor must be
replaced by the client). The answer is an INVALID_INPUT error naming the argument or
variable (`input.facts.2`, `$input.facts.2`), never echoing the value.

GraphQL strings reach us two ways, and each is checked where it is cheapest:
- literals in the document, by the validation rule `PlainStrings` (cached with the
  document's validation, so a repeated document costs nothing);
- variables, including strings nested in input objects, lists and JSON scalars (keys too),
  by `variable_errors`, which the schema extension (PreparedOperations) calls on every
  transport.
Other boundaries (form fields, file names) call `refusal` themselves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    GraphQLError,
    ListValueNode,
    Node,
    ObjectFieldNode,
    StringValueNode,
    ValidationRule,
    VariableDefinitionNode,
)

# C0 controls but tab, LF and CR; the whole surrogate block (a Python str holds a lone
# surrogate when JSON escaped one: `"\ud800"`; a correct pair is decoded to one code point).
_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_MAX_DEPTH = 64  # nesting of variable values walked; deeper values are refused as such
_SAFE_KEY = re.compile(r"[_A-Za-z0-9-]{1,64}")


def refusal(text: str) -> str | None:
    """Why `text` may not enter (the offending code point and its position), or None."""
    found = _REFUSED.search(text)
    if found is None:
        return None
    point = ord(found.group())
    kind = (
        "a NUL character"
        if point == 0
        else "a lone surrogate"
        if 0xD800 <= point <= 0xDFFF
        else "a control character"
    )
    return (
        f"contains {kind} (U+{point:04X}) at position {found.start()}; text may hold any "
        "Unicode character except NUL, lone surrogates and control characters other than "
        "tab, line feed and carriage return"
    )


def invalid_string(field: str, reason: str) -> GraphQLError:
    """The error for a refused string at `field`, coded as every input error is."""
    return GraphQLError(f"{field}: {reason}", extensions={"code": "INVALID_INPUT", "field": field})


def variable_errors(variables: Mapping[str, Any] | None) -> list[GraphQLError]:
    """One error for the first refused string in the variables (keys included), or none."""
    if not variables:
        return []
    for name, value in variables.items():
        found = _first_refused(value, f"${_key(name)}", 0)
        if found is None and isinstance(name, str):
            reason = refusal(name)
            found = (f"${_key(name)}", reason) if reason else None
        if found is not None:
            return [invalid_string(*found)]
    return []


def _first_refused(value: Any, path: str, depth: int) -> tuple[str, str] | None:
    if isinstance(value, str):
        reason = refusal(value)
        return (path, reason) if reason else None
    if depth > _MAX_DEPTH:
        return (path, f"nests deeper than {_MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        for key, item in value.items():
            inner = f"{path}.{_key(key)}"
            if isinstance(key, str) and (reason := refusal(key)):
                return (inner, f"a key {reason}")
            found = _first_refused(item, inner, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_refused(item, f"{path}.{index}", depth + 1)
            if found is not None:
                return found
    return None


def _key(key: object) -> str:
    # A path names keys as sent when they are plain; anything else (it may be the very
    # character refused) is shown escaped, so the reply and the log stay valid UTF-8.
    text = str(key)
    if _SAFE_KEY.fullmatch(text):
        return text
    return text.encode("unicode_escape").decode("ascii")[:64]


class PlainStrings(ValidationRule):
    """Refuse string literals (arguments, input object fields, list items, variable
    defaults) that `refusal` refuses, naming where they stand: `input.facts.2`."""

    def enter_string_value(
        self, node: StringValueNode, _key: object, _parent: object, path: Any, ancestors: Any
    ) -> None:
        reason = refusal(node.value)
        if reason is not None and ancestors:
            field = _literal_path(ancestors[0], path)
            self.report_error(
                GraphQLError(
                    f"{field}: {reason}",
                    [node],
                    extensions={"code": "INVALID_INPUT", "field": field},
                )
            )


def _literal_path(document: Node, path: list[str | int]) -> str:
    """`argument.field.index` of a literal: the visitor's path keys followed down from the
    document, keeping argument, input field and variable names and list indices."""
    parts: list[str] = []
    node: Any = document
    holder: Any = None  # the node whose attribute `node` is (for a tuple of items)
    for key in path:
        if isinstance(node, ArgumentNode | ObjectFieldNode):
            parts.append(node.name.value)
        elif isinstance(node, VariableDefinitionNode):
            parts.append(f"${node.variable.name.value}")
        if isinstance(key, int):
            if isinstance(holder, ListValueNode):
                parts.append(str(key))
            node = node[key]
        else:
            holder, node = node, getattr(node, key)
    return ".".join(parts) or "argument"

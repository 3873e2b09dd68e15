"""A creation's stored input in the API's own names, as `Creation.input` returns it.

The application layer stores a tool's input as its pydantic model dumps it (snake_case keys,
enum values in lower case). Clients sent it through the tool's GraphQL input type, so the
input is read back through that type: its field names, its enum value names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry
from strawberry.types.base import (
    StrawberryList,
    StrawberryObjectDefinition,
    StrawberryOptional,
    get_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition
from strawberry.utils.str_converters import to_camel_case


def api_path(path: str) -> str:
    """An input field's path in the API's names: `lexicon_id` is `lexiconId`, `facts.2`
    stays `facts.2`, a name already in camelCase stays as it is."""
    return ".".join(to_camel_case(part) for part in path.split("."))


def input_type_name(tool: str) -> str:
    """The GraphQL input type of a tool: `write` takes a `WriteInput`."""
    return tool[0].upper() + tool[1:] + "Input"


def sent_input(schema: strawberry.Schema, tool: str, stored: Mapping[str, Any]) -> Any:
    """`stored` in the names of the tool's input type. Keys the type lacks (what the server
    added, such as an upload's stored copy) are left out; an unknown tool's input is
    returned as stored."""
    definition = schema.get_type_by_name(input_type_name(tool))
    if not isinstance(definition, StrawberryObjectDefinition):
        return dict(stored)
    return _fields(schema, definition, stored)


def _fields(
    schema: strawberry.Schema, definition: StrawberryObjectDefinition, value: Mapping[str, Any]
) -> dict[str, Any]:
    names = schema.config.name_converter
    return {
        names.get_graphql_name(field): _value(schema, field.type, value[field.python_name])
        for field in definition.fields
        if field.python_name in value
    }


def _value(schema: strawberry.Schema, kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, StrawberryOptional):
        return _value(schema, kind.of_type, value)
    if isinstance(kind, StrawberryList) and isinstance(value, list):
        return [_value(schema, kind.of_type, item) for item in value]
    if isinstance(kind, StrawberryEnumDefinition):
        return next((v.name for v in kind.values if v.value == value), value)
    definition = get_object_definition(kind)
    if definition is not None and isinstance(value, Mapping):
        return _fields(schema, definition, value)
    return value

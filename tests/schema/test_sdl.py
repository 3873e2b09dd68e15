"""The committed SDL matches the code, and partners get a description for everything."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
)

from schema.build import SDL_PATH, build_schema, export_sdl


def test_committed_sdl_is_current() -> None:
    assert SDL_PATH.read_text() == export_sdl(), (
        "schema/schema.graphql is stale: run `make schema` (creation-king export-schema)"
    )


def test_every_type_field_argument_and_enum_value_is_described() -> None:
    schema = build_schema()._schema
    missing = []
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not graphql_type.description:
            missing.append(name)
        if isinstance(graphql_type, GraphQLEnumType):
            missing += [f"{name}.{v}" for v, d in graphql_type.values.items() if not d.description]
        if isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType):
            if name in {"Query", "Mutation", "Subscription"}:
                missing = [m for m in missing if m != name]
            for field_name, field in graphql_type.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                missing += [
                    f"{name}.{field_name}({arg})"
                    for arg, definition in field.args.items()
                    if not definition.description
                ]
        if isinstance(graphql_type, GraphQLInputObjectType):
            missing += [f"{name}.{f}" for f, d in graphql_type.fields.items() if not d.description]
        if isinstance(graphql_type, GraphQLUnionType) and not graphql_type.description:
            missing.append(name)
    assert missing == []

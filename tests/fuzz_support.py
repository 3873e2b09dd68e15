"""Operations for the GraphQL fuzz run, generated from the live schema.

`Operation` is one request: a GraphQL document with variables and a caller, or a raw HTTP
body. The strategies below make them (hypothesis-graphql for schema-valid and one-violation
documents, our own for variables, broken documents and raw bodies); `draw` turns a strategy
into a fixed, reproducible list. The oracle that judges the answers is in test_fuzz.py.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import string
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import graphql
import hypothesis_graphql as hgql
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes

T = TypeVar("T")
Strategy = st.SearchStrategy

# Who sends operations, dealt out in turn by `spread` (hypothesis would favour the first):
# mostly the owner of the seeded objects; sometimes another user, nobody, or a bad token.
CALLERS = ("owner",) * 12 + ("other",) * 2 + ("anonymous",) * 3 + ("forged", "garbage", "basic")
# Websockets: callers, protocols and client cancels, in cycles of coprime lengths.
SOCKET_CALLERS = ("owner",) * 4 + ("other", "anonymous")
PROTOCOLS = ("graphql-transport-ws",) * 5 + ("graphql-ws",) * 2
CANCEL_AFTER = (1, 4, None, None, None)
NAME = st.from_regex(r"[_A-Za-z][_0-9A-Za-z]{0,11}", fullmatch=True)
INT32 = (-(2**31), 2**31 - 1)
# Fragment fan-out doubles per level; past this, known bug fragment-fan-out-exponential
# stalls the server for seconds to minutes.
MAX_FAN_OUT = 14


@dataclasses.dataclass(frozen=True)
class Operation:
    """One request of the run: `query` and `variables`, or a raw `body` (then `method`...)."""

    category: str
    query: str | None = None
    variables: Any = None
    caller: str = "owner"
    body: bytes | None = None
    method: str = "POST"
    content_type: str = "application/json"
    params: tuple[tuple[str, str], ...] = ()
    protocol: str = "graphql-transport-ws"
    cancel_after: int | None = None  # subscriptions: events before the client completes it

    def content(self) -> bytes:
        """The HTTP body: the raw one, or the JSON envelope (NaN allowed: clients send it)."""
        if self.body is not None:
            return self.body
        envelope: dict[str, Any] = {"query": self.query}
        if self.variables is not None:
            envelope["variables"] = self.variables
        return json.dumps(envelope).encode()

    def describe(self, limit: int = 600) -> str:
        """A reproduction, shortened to `limit` characters per part."""

        def cut(text: str) -> str:
            return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"

        parts = [f"[{self.category}] as {self.caller}"]
        if self.body is not None:
            parts.append(f"{self.method} {self.content_type!r} body={cut(repr(self.body))}")
        else:
            parts.append(f"query={cut(self.query or '')!r}")
            if self.variables is not None:
                parts.append(f"variables={cut(json.dumps(self.variables))}")
        if self.params:
            parts.append(f"params={cut(repr(self.params))}")
        return " ".join(parts)


def draw(strategy: Strategy[T], count: int) -> list[T]:
    """`count` examples of `strategy`, the same ones on every run (derandomized, no database)."""
    examples: list[T] = []

    @hypothesis_settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: T) -> None:
        examples.append(example)

    collect()
    return examples


# --- custom scalars ------------------------------------------------------------------------

_JSON_LEAVES: Strategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers(*INT32)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES: Strategy[Any] = st.recursive(
    _JSON_LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(NAME, children, max_size=4),
    max_leaves=10,
)
# Plain values (for variables) of every scalar Strawberry ships; a new one fails `check_scalars`.
SCALAR_VALUES: dict[str, Strategy[Any]] = {
    "JSON": JSON_VALUES,
    "DateTime": st.datetimes().map(lambda value: value.isoformat()),
    "Date": st.dates().map(lambda value: value.isoformat()),
    "Time": st.times().map(lambda value: value.isoformat()),
    "Decimal": st.decimals(allow_nan=False, allow_infinity=False).map(str),
    "UUID": st.uuids().map(str),
    "Base64": st.binary(max_size=64).map(lambda raw: base64.b64encode(raw).decode()),
}


def _value_node(value: Any) -> graphql.ValueNode:
    """The GraphQL literal of a plain JSON value."""
    if value is None:
        return nodes.Null
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    if isinstance(value, str):
        return nodes.String(value)
    if isinstance(value, list):
        return nodes.List([_value_node(item) for item in value])
    fields = [
        graphql.ObjectFieldNode(name=graphql.NameNode(value=key), value=_value_node(item))
        for key, item in value.items()
    ]
    return nodes.Object(fields)


def ids(known: Sequence[str]) -> Strategy[str]:
    """Ids of real objects (most often), random UUIDs, or any text."""
    real = st.sampled_from(known) if known else st.nothing()
    return real | real | st.uuids().map(str) | st.text(max_size=40)


def custom_scalars(known_ids: Sequence[str]) -> dict[str, Strategy[graphql.ValueNode]]:
    """Literal strategies for hypothesis-graphql: our custom scalars, and ID from real ids."""
    literals = {name: values.map(_value_node) for name, values in SCALAR_VALUES.items()}
    literals["ID"] = ids(known_ids).map(nodes.String) | st.integers(0, 10**6).map(nodes.Int)
    return literals


def check_scalars(schema: graphql.GraphQLSchema) -> list[str]:
    """Custom scalars the schema takes as input that no strategy here can make."""
    missing = set()
    for type_ in schema.type_map.values():
        if isinstance(type_, graphql.GraphQLInputObjectType):
            inputs = [field.type for field in type_.fields.values()]
        elif isinstance(type_, graphql.GraphQLObjectType):
            inputs = [arg.type for field in type_.fields.values() for arg in field.args.values()]
        else:
            continue
        for input_type in inputs:
            named = graphql.get_named_type(input_type)
            if isinstance(named, graphql.GraphQLScalarType) and not (
                graphql.is_specified_scalar_type(named) or named.name in SCALAR_VALUES
            ):
                missing.add(named.name)
    return sorted(missing)


# --- schema-valid and one-violation documents (hypothesis-graphql) ------------------------


def _per_field(
    make: Callable[..., Strategy[str]],
    sdl: str | graphql.GraphQLSchema,
    names: Sequence[str],
    **kw: Any,
) -> Strategy[str]:
    # One root field per operation: root fields are drawn evenly, and an operation stays
    # small enough to read in a report (and to generate in milliseconds).
    return st.one_of([make(sdl, fields=[name], **kw) for name in names])


def spread(operations: Sequence[Operation], **choices: Sequence[Any]) -> list[Operation]:
    """`operations` with each field of `choices` dealt out in turn: a fixed mix."""
    return [
        dataclasses.replace(
            operation, **{name: values[i % len(values)] for name, values in choices.items()}
        )
        for i, operation in enumerate(operations)
    ]


def operations(documents: Strategy[str], category: str) -> Strategy[Operation]:
    """Operations of `category` sending `documents`."""
    return documents.map(lambda query: Operation(category, query=query))


def query_documents(
    sdl: str, schema: graphql.GraphQLSchema, known_ids: Sequence[str]
) -> Strategy[str]:
    assert schema.query_type is not None
    names = list(schema.query_type.fields)
    return _per_field(hgql.queries, sdl, names, custom_scalars=custom_scalars(known_ids))


def mutation_documents(
    sdl: str, schema: graphql.GraphQLSchema, known_ids: Sequence[str]
) -> Strategy[str]:
    assert schema.mutation_type is not None
    names = list(schema.mutation_type.fields)
    return _per_field(hgql.mutations, sdl, names, custom_scalars=custom_scalars(known_ids))


def negative_documents(sdl: str, known_ids: Sequence[str]) -> Strategy[str]:
    """Documents with one schema violation: a wrong type, a missing or null argument..."""
    scalars = custom_scalars(known_ids)
    return hgql.from_schema(sdl, custom_scalars=scalars, mode=hgql.Mode.NEGATIVE)


def _as_subscription(document: graphql.DocumentNode) -> str:
    (operation,) = document.definitions
    assert isinstance(operation, graphql.OperationDefinitionNode)
    return graphql.print_ast(
        graphql.DocumentNode(
            definitions=(
                graphql.OperationDefinitionNode(
                    operation=graphql.OperationType.SUBSCRIPTION,
                    variable_definitions=(),
                    selection_set=operation.selection_set,
                ),
            )
        )
    )


def subscription_documents(
    schema: graphql.GraphQLSchema, known_ids: Sequence[str], *, negative: bool = False
) -> Strategy[str]:
    """Subscriptions, one root field each (with one violation if `negative`):
    hypothesis-graphql makes queries only, so it makes them over a schema whose query root
    is our Subscription type, and they are printed as subscriptions."""
    mode = hgql.Mode.NEGATIVE if negative else hgql.Mode.POSITIVE
    root = schema.subscription_type
    assert root is not None
    types = [t for name, t in schema.type_map.items() if not name.startswith("__") and t != root]
    as_query = graphql.GraphQLSchema(query=root, types=types)
    names = [name for name, field in root.fields.items() if field.args or not negative]
    return _per_field(
        hgql.queries,
        as_query,
        names,
        custom_scalars=custom_scalars(known_ids),
        print_ast=_as_subscription,
        mode=mode,
    )


def subscriptions(schema: graphql.GraphQLSchema, known_ids: Sequence[str]) -> Strategy[Operation]:
    """Subscriptions: schema-valid ones, and ones with one violation."""
    positive = operations(subscription_documents(schema, known_ids), "subscriptions")
    negative = subscription_documents(schema, known_ids, negative=True)
    return positive | operations(negative, "subscriptions, one violation")


# --- variables: declared types and JSON values, right and wrong ---------------------------

_EDGE_NUMBERS: Strategy[Any] = st.sampled_from(
    [2**31, -(2**31) - 1, 2**53 + 1, 10**30, -(10**30), 10**400, 1e308, -0.0, 1e-320,
     float("nan"), float("inf"), float("-inf")]
)  # fmt: skip


def _json_for(
    type_: graphql.GraphQLInputType, scalars: dict[str, Strategy[Any]], depth: int = 0
) -> Strategy[Any]:
    """Values that mostly fit `type_` (in range or not: the server decides)."""
    if isinstance(type_, graphql.GraphQLNonNull):
        return _json_for(type_.of_type, scalars, depth)
    if depth > 4:
        return st.none()
    inner = _json_for_nullable(type_, scalars, depth)
    return st.one_of(inner, inner, inner, st.none())


def _json_for_nullable(
    type_: graphql.GraphQLInputType, scalars: dict[str, Strategy[Any]], depth: int
) -> Strategy[Any]:
    if isinstance(type_, graphql.GraphQLList):
        return st.lists(_json_for(type_.of_type, scalars, depth + 1), max_size=4)
    if isinstance(type_, graphql.GraphQLEnumType):
        return st.sampled_from(list(type_.values)) | NAME
    if isinstance(type_, graphql.GraphQLInputObjectType):
        fields = type_.fields
        required = [
            name for name, field in fields.items() if graphql.is_required_input_field(field)
        ]
        return st.fixed_dictionaries(
            {name: _json_for(fields[name].type, scalars, depth + 1) for name in required},
            optional={
                name: _json_for(field.type, scalars, depth + 1)
                for name, field in fields.items()
                if name not in required
            },
        )
    assert isinstance(type_, graphql.GraphQLScalarType)
    return scalars.get(type_.name, JSON_VALUES)


def _plain_scalars(known_ids: Sequence[str]) -> dict[str, Strategy[Any]]:
    return {
        **SCALAR_VALUES,
        "Int": st.integers(*INT32) | st.integers(-2, 10_000),
        "Float": st.floats(allow_nan=False, allow_infinity=False),
        "String": st.text(max_size=40) | st.sampled_from(["en", "zh", "image/png", "a@b.co"]),
        "Boolean": st.booleans(),
        "ID": ids(known_ids) | st.integers(0, 99),
    }


def _selection(type_: graphql.GraphQLOutputType) -> str:
    named = graphql.get_named_type(type_)
    return "" if graphql.is_leaf_type(named) else " { __typename }"


_WRONG_DECLARATIONS = ("String", "Int!", "[ID]", "Boolean", "JSON", "Float!", "Nope", "[[Int!]!]")


@st.composite
def _variable_operation(
    draw_: st.DrawFn,
    fields: list[tuple[str, str, graphql.GraphQLField]],
    scalars: dict[str, Strategy[Any]],
) -> Operation:
    kind, name, field = draw_(st.sampled_from(fields))
    declarations, arguments, values = [], [], {}
    for arg_name, arg in field.args.items():
        how = draw_(st.sampled_from(["fits", "fits", "fits", "any", "edge", "null", "omit"]))
        if how == "omit":
            continue
        declared = str(arg.type)
        if draw_(st.integers(0, 9)) == 0:
            declared = draw_(st.sampled_from(_WRONG_DECLARATIONS))
        declarations.append(f"${arg_name}: {declared}")
        arguments.append(f"{arg_name}: ${arg_name}")
        if how == "fits":
            values[arg_name] = draw_(_json_for(arg.type, scalars))
        elif how == "any":
            values[arg_name] = draw_(JSON_VALUES)
        elif how == "edge":
            values[arg_name] = draw_(_EDGE_NUMBERS)
        elif how == "null":
            values[arg_name] = None
    header = f"{kind} Fuzz({', '.join(declarations)})" if declarations else kind
    call = f"{name}({', '.join(arguments)})" if arguments else name
    query = f"{header} {{ {call}{_selection(field.type)} }}"
    return Operation("variables", query=query, variables=values)


def variable_operations(
    schema: graphql.GraphQLSchema, known_ids: Sequence[str]
) -> Strategy[Operation]:
    """Operations on each root field with arguments, passed as variables of fitting, wrong,
    edge (huge, NaN, infinite) or null values, sometimes declared with the wrong type."""
    fields = [
        (kind, name, field)
        for kind, root in (("query", schema.query_type), ("mutation", schema.mutation_type))
        if root is not None
        for name, field in root.fields.items()
        if field.args
    ]
    return _variable_operation(fields, _plain_scalars(known_ids))


# --- broken documents ----------------------------------------------------------------------

_PUNCTUATORS = ["{", "}", "(", ")", "[", "]", ":", "$", "...", "@", "=", "!", "|", "&", ","]
_KEYWORDS = ["query", "mutation", "subscription", "fragment", "on", "true", "null", "__typename"]
_ODDITIES = [
    "query A { __typename } query B { __typename }",
    "query A { __typename } query A { __typename }",
    "{ __typename } { __typename }",
    "query A { __typename } mutation { __typename }",
    "{ __typename @skip(if: null) }",
    '{ __typename @include(if: "yes") }',
    "{ __typename @skip(if: true) @skip(if: false) }",
    "query @deprecated { __typename }",
    "subscription { __typename }",
    "subscription { a: __typename b: __typename }",
    "mutation { __typename }",
    "{ __schema { types { name } } }",
    "fragment F on Nope { a } { __typename }",
    'query ($a: Int = "x") { __typename }',
    "{ __typename } fragment Unused on Query { __typename }",
    "\ufeff{ __typename }",
    "{ __typename }\u0000",
]


def _cheap_selections(schema: graphql.GraphQLSchema) -> list[str]:
    """Query root fields that need no argument, each with the smallest selection."""
    assert schema.query_type is not None
    return ["__typename"] + [
        f"{name}{_selection(field.type)}"
        for name, field in schema.query_type.fields.items()
        if not any(graphql.is_required_argument(arg) for arg in field.args.values())
    ]


def _truncated(document: str, at: int) -> str:
    return document[: at % (len(document) + 1)]


def _one_char_changed(document: str, at: int, char: str) -> str:
    at %= len(document) + 1
    return document[:at] + char + document[at + 1 :]


def _aliases(count: int, selection: str) -> str:
    return "{ " + " ".join(f"a{i}: {selection}" for i in range(count)) + " }"


def fragment_fan_out(levels: int, selection: str) -> str:
    """Each fragment spreads the one before twice: 2**levels copies of `selection`."""
    fragments = [f"fragment F0 on Query {{ {selection} }}"] + [
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)
    ]
    return " ".join(fragments) + f" {{ ...F{levels - 1} }}"


def _deep_fields(name: str, depth: int) -> str:
    return "{ " + f"{name} {{ " * depth + "__typename" + " }" * (depth + 1)


def _deep_introspection(depth: int) -> str:
    return "{ __schema { types { " + "fields { type { " * depth + "name" + " } }" * depth + " } } }"


def _unknown_names(name: str, root: str) -> list[str]:
    return [
        f"{{ {name} }}",
        f"{{ {root} {{ {name} }} }}",
        f"{{ {root}({name}: 1) {{ __typename }} }}",
        f'{{ __type(name: "{name}") {{ name fields {{ name }} }} }}',
        f"{{ ... on {name} {{ __typename }} }}",
        f"{{ {root} @{name} {{ __typename }} }}",
        f"query Q(${name}: {name}) {{ __typename }}",
        f"fragment {name} on Query {{ ...{name} }} {{ ...{name} }}",
    ]


def broken_documents(schema: graphql.GraphQLSchema, valid: Strategy[str]) -> Strategy[str]:
    """Syntax errors, truncations, deep nesting, alias and fragment bombs, unknown names,
    token floods, several operations, misused directives and deep introspection."""
    assert schema.query_type is not None
    roots = sorted(schema.query_type.fields)
    cheap = st.sampled_from(_cheap_selections(schema))
    type_names = sorted(name for name in schema.type_map if not name.startswith("__"))
    words = (
        st.sampled_from(_PUNCTUATORS + _KEYWORDS + roots + type_names)
        | NAME
        | st.text(string.digits + '".-e', min_size=1, max_size=6)
    )
    nesting = st.integers(1, 1_500)
    return st.one_of(
        st.text(max_size=120),
        st.lists(words, max_size=40).map(" ".join),
        st.builds(_truncated, valid, st.integers(0, 10**6)),
        st.builds(_one_char_changed, valid, st.integers(0, 10**6), st.characters()),
        st.builds(_deep_fields, NAME | st.sampled_from(roots), st.integers(1, 700)),
        nesting.map(lambda n: "{ a " * n + "{ __typename }" + "}" * n),
        nesting.map(lambda n: "{ __type(name: " + "[" * n + "]" * n + ") { name } }"),
        nesting.map(lambda n: "{ __type(name: " + "{a: " * n + "1" + "}" * n + ") { name } }"),
        st.builds(_aliases, st.integers(1, 120), cheap),
        st.builds(fragment_fan_out, st.integers(1, MAX_FAN_OUT), cheap),
        st.integers(1_900, 2_600).map(lambda n: "{ " + "__typename " * n + "}"),
        st.builds(_unknown_names, NAME, st.sampled_from(roots)).flatmap(st.sampled_from),
        st.sampled_from(_ODDITIES),
        st.integers(1, 12).map(_deep_introspection),
    )


# --- raw HTTP bodies -----------------------------------------------------------------------


def _digits_body(digits: int) -> bytes:
    return b'{"query": "query($n: Int) { __typename }", "variables": {"n": ' + b"9" * digits + b"}}"


@st.composite
def _raw_body(draw_: st.DrawFn, valid: Strategy[str]) -> Operation:
    envelope = st.fixed_dictionaries(
        {},
        optional={
            "query": valid | JSON_VALUES,
            "variables": JSON_VALUES,
            "operationName": NAME | JSON_VALUES,
            "extensions": JSON_VALUES,
        },
    )
    body = draw_(
        st.one_of(
            st.binary(max_size=200),
            JSON_VALUES.map(lambda value: json.dumps(value).encode()),
            envelope.map(lambda value: json.dumps(value).encode()),
            envelope.map(lambda value: json.dumps([value, value]).encode()),
            st.integers(4_250, 4_350).map(_digits_body),
            st.integers(10, 3_000).map(
                lambda n: (
                    b'{"query": "{ __typename }", "variables": {"v": ' + b"[" * n + b"]" * n + b"}}"
                )
            ),
            st.sampled_from(
                [
                    b'{"query": "query($x: Float) { __typename }", "variables": {"x": NaN}}',
                    b'{"query": "{ __typename }", "variables": {"x": Infinity}}',
                    b'{"query": "{ __typename }"' + b" " * (1 << 20) + b"}",
                    b'{"query": "{ __typename }", "query": 1}',
                    b'\xef\xbb\xbf{"query": "{ __typename }"}',
                    b'{"query": "\\ud800"}',
                ]
            ),
        )
    )
    method = draw_(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "PATCH", "DELETE"]))
    content_type = draw_(
        st.sampled_from(
            ["application/json"] * 5
            + [
                "text/plain",
                "application/graphql",
                "multipart/form-data; boundary=x",
                "multipart/mixed",
                "application/x-www-form-urlencoded",
                "",
            ]
        )
    )
    params: tuple[tuple[str, str], ...] = ()
    if method == "GET":  # the envelope in the query string, no body
        body = b""
        params = tuple(
            (key, draw_(st.text(max_size=60) | valid))
            for key in draw_(st.lists(st.sampled_from(["query", "variables", "operationName"])))
        )
    return Operation("bodies", body=body, method=method, content_type=content_type, params=params)


def raw_bodies(valid: Strategy[str]) -> Strategy[Operation]:
    """Raw requests: binary and JSON bodies of every shape, numbers past the parser's
    limits, deep nesting, an oversized body, other methods and content types."""
    return _raw_body(valid)

"""Typed result types for every tool, generated from the pydantic models in
`resolvers/tools/results*.py`, and the `ToolDetails` union `Creation.details` returns."""

from __future__ import annotations

import logging
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Annotated, Any

import strawberry
from pydantic import BaseModel, ValidationError
from strawberry.experimental.pydantic import type as pydantic_type
from strawberry.types.enum import has_enum_definition

from resolvers.tools import TOOLS, EnumDoc
from resolvers.tools.results import RESULT_ENUMS, RESULT_MODELS

log = logging.getLogger(__name__)


def document_enums(enums: Mapping[type[Enum], EnumDoc]) -> None:
    """Register enums with their schema names and descriptions (once; later calls only
    refresh value descriptions). Must run before a pydantic model using them is converted,
    or strawberry would register them under their Python names."""
    for enum, doc in enums.items():
        if not has_enum_definition(enum):
            strawberry.enum(enum, name=doc.name, description=doc.description)
        for value in enum.__strawberry_definition__.values:  # type: ignore[attr-defined]
            described = doc.values.get(enum(value.value))
            if described:
                value.description = described


_TYPES: dict[type[BaseModel], type] = {}


def _output_type(model: type[BaseModel]) -> type:
    """The GraphQL object type of a result model, nested models first (made once)."""
    if model not in _TYPES:
        for info in model.model_fields.values():
            for candidate in (info.annotation, *_args(info.annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    _output_type(candidate)
        _TYPES[model] = pydantic_type(
            model=model, all_fields=True, name=model.__name__, description=model.__doc__
        )(type(model.__name__, (), {}))
    return _TYPES[model]


def _args(annotation: Any) -> list[Any]:
    found = []
    for arg in typing.get_args(annotation):
        found.extend([arg, *_args(arg)])
    return found


for _tool in TOOLS.values():
    document_enums(_tool.enums)
document_enums(RESULT_ENUMS)
RESULT_TYPES: dict[str, type] = {tool: _output_type(m) for tool, m in RESULT_MODELS.items()}

ToolDetails: Any = Annotated[
    typing.Union[tuple(RESULT_TYPES.values())],  # noqa: UP007
    strawberry.union(
        "ToolDetails",
        description="A finished creation's structured result, typed per tool (write and "
        "report make none).",
    ),
]


def details_of(tool: str, result: Mapping[str, Any] | None) -> Any:
    """The typed result of a creation, or None (no structured result, or one stored in an
    older shape: logged, never an error for the client)."""
    model = RESULT_MODELS.get(tool)
    if model is None or result is None:
        return None
    try:
        parsed = model.model_validate(result)
    except ValidationError as exc:
        log.warning("a stored %s result does not fit %s: %s", tool, model.__name__, exc)
        return None
    return RESULT_TYPES[tool].from_pydantic(parsed)  # type: ignore[attr-defined]

"""Preset fields: save, list and delete your SWOT templates and tarot spreads."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, cast

import strawberry
from pydantic import ValidationError
from strawberry.scalars import JSON

from resolvers import preset as use_cases
from resolvers.core import models
from resolvers.core.errors import CreationKingError
from resolvers.tools.swot import SwotTemplateInput
from schema.context import Info
from schema.tool_fields import nested_input
from schema.types.errors import (
    AuthError,
    ErrorCode,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
    from_exception_as,
)

SwotTemplateGraphQLInput: Any = nested_input(SwotTemplateInput)


@strawberry.enum(description="Which tool a preset belongs to.")
class PresetKind(Enum):
    SWOT_TEMPLATE = strawberry.enum_value(
        use_cases.SWOT_TEMPLATE, description="A SWOT template (swot's templateId)."
    )
    TAROT_SPREAD = strawberry.enum_value(
        use_cases.TAROT_SPREAD, description="A tarot spread (tarot's spreadId)."
    )


@strawberry.type(description="Saved settings a tool can use by id.")
class Preset:
    id: strawberry.ID = strawberry.field(description="Pass as templateId or spreadId.")
    kind: PresetKind = strawberry.field(description="Which tool it belongs to.")
    name: str = strawberry.field(description="Unique per tool among yours, 1 to 100 characters.")
    data: JSON = strawberry.field(
        description="The saved settings: a SWOT template's fields, or a spread's positions."
    )
    created_at: datetime = strawberry.field(description="When it was saved (UTC).")

    @classmethod
    def from_model(cls, row: models.Preset) -> Preset:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=PresetKind(row.tool),
            name=row.name,
            data=cast(JSON, row.data),
            created_at=row.created_at,
        )


PresetResult = Annotated[
    Preset | InvalidInputError | AuthError | NotFoundError | UnavailableError,
    strawberry.union("PresetResult", description="The preset, or why the call failed."),
]
PresetId = Annotated[strawberry.ID, strawberry.argument(description="A preset's id.")]
KindArg = Annotated[PresetKind, strawberry.argument(description="Which tool's presets.")]
NameArg = Annotated[str, strawberry.argument(description="1 to 100 characters, unique.")]


async def _result(
    call: Awaitable[models.Preset],
) -> Preset | InvalidInputError | AuthError | NotFoundError | UnavailableError:
    try:
        return Preset.from_model(await call)
    except CreationKingError as exc:
        return from_exception_as(exc, InvalidInputError, AuthError, NotFoundError)


@strawberry.type
class PresetQuery:
    @strawberry.field(
        description="Your saved presets of one kind, by name; null with an UNAUTHENTICATED "
        "or FORBIDDEN error when the caller may not read them."
    )
    async def presets(self, info: Info, kind: KindArg) -> list[Preset] | None:
        rows = await use_cases.list_presets(principal=info.context.user(), tool=str(kind.value))
        return [Preset.from_model(row) for row in rows]


@strawberry.type
class PresetMutation:
    @strawberry.mutation(description="Save a SWOT template to use as swot's templateId.")
    async def save_swot_template(
        self,
        info: Info,
        name: NameArg,
        template: Annotated[
            SwotTemplateGraphQLInput, strawberry.argument(description="The template.")
        ],
    ) -> PresetResult:
        try:
            data = SwotTemplateInput.model_validate(vars(template)).model_dump(mode="json")
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or None
            message = error["msg"].removeprefix("Value error, ")
            return InvalidInputError(
                code=ErrorCode.INVALID_INPUT,
                message=f"template.{field}: {message}" if field else message,
                field=f"template.{field}" if field else "template",
            )
        return await _result(
            use_cases.save_preset(
                principal=info.context.user(), tool=use_cases.SWOT_TEMPLATE, name=name, data=data
            )
        )

    @strawberry.mutation(description="Save a tarot spread to use as tarot's spreadId.")
    async def save_tarot_spread(
        self,
        info: Info,
        name: NameArg,
        positions: Annotated[
            list[str],
            strawberry.argument(description="1 to 12 unique position names, in order."),
        ],
    ) -> PresetResult:
        async def save() -> models.Preset:
            return await use_cases.save_preset(
                principal=info.context.user(),
                tool=use_cases.TAROT_SPREAD,
                name=name,
                data=use_cases.spread_data(positions),
            )

        return await _result(save())

    @strawberry.mutation(description="Delete one of your presets; returns it as it was.")
    async def delete_preset(self, info: Info, kind: KindArg, id: PresetId) -> PresetResult:
        return await _result(
            use_cases.delete_preset(
                principal=info.context.user(), tool=str(kind.value), preset_id=id
            )
        )

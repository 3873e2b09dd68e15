"""Lexicon fields: list, read, create, update and delete your glossaries."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers import lexicon as use_cases
from schema.context import Info
from schema.types.lexicon import (
    CreateLexiconInput,
    Lexicon,
    LexiconResult,
    UpdateLexiconInput,
    entries_of,
    lexicon_result,
)

LexiconId = Annotated[strawberry.ID, strawberry.argument(description="A lexicon's id.")]


@strawberry.type
class LexiconQuery:
    @strawberry.field(
        description="Your lexicons, by name; null with an UNAUTHENTICATED or FORBIDDEN error "
        "when the caller may not read them."
    )
    async def lexicons(self, info: Info) -> list[Lexicon] | None:
        rows = await use_cases.list_lexicons(principal=info.context.user())
        return [Lexicon.from_model(row) for row in rows]

    @strawberry.field(
        description="One of your lexicons; null with a NOT_FOUND error otherwise "
        "(UNAUTHENTICATED when signed out)."
    )
    async def lexicon(self, info: Info, id: LexiconId) -> Lexicon | None:
        row = await use_cases.get_lexicon(principal=info.context.user(), lexicon_id=id)
        return Lexicon.from_model(row)


@strawberry.type
class LexiconMutation:
    @strawberry.mutation(description="Create a lexicon (at most 100 per user).")
    async def create_lexicon(
        self,
        info: Info,
        input: Annotated[CreateLexiconInput, strawberry.argument(description="The lexicon.")],
    ) -> LexiconResult:
        return await lexicon_result(
            use_cases.create_lexicon(
                principal=info.context.user(),
                name=input.name,
                source_lang=input.source_lang,
                target_lang=input.target_lang,
                entries=entries_of(input.entries),
            )
        )

    @strawberry.mutation(description="Rename a lexicon or replace its entries.")
    async def update_lexicon(
        self,
        info: Info,
        id: LexiconId,
        input: Annotated[UpdateLexiconInput, strawberry.argument(description="The changes.")],
    ) -> LexiconResult:
        return await lexicon_result(
            use_cases.update_lexicon(
                principal=info.context.user(),
                lexicon_id=id,
                name=input.name,
                entries=None if input.entries is None else entries_of(input.entries),
            )
        )

    @strawberry.mutation(description="Delete a lexicon; returns it as it was.")
    async def delete_lexicon(self, info: Info, id: LexiconId) -> LexiconResult:
        return await lexicon_result(
            use_cases.delete_lexicon(principal=info.context.user(), lexicon_id=id)
        )

"""Lexicons: users' glossaries for the translate tool."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated

import strawberry

from resolvers.core import models
from resolvers.core.errors import CreationKingError
from schema.types.errors import (
    AuthError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
    from_exception_as,
)


@strawberry.type(description="A term and the exact rendering a translation must use.")
class LexiconEntry:
    source: str = strawberry.field(description="The term in the source language.")
    target: str = strawberry.field(description="Its required translation, used verbatim.")


@strawberry.type(description="A glossary for one language pair.")
class Lexicon:
    id: strawberry.ID = strawberry.field(description="Stable lexicon id (UUID).")
    name: str = strawberry.field(description="Unique among your lexicons, 1 to 100 characters.")
    source_lang: str = strawberry.field(description="Language code of the terms, e.g. `en`.")
    target_lang: str = strawberry.field(description="Language code of the renderings.")
    entries: list[LexiconEntry] = strawberry.field(description="1 to 500 term pairs.")
    created_at: datetime = strawberry.field(description="When it was created (UTC).")
    updated_at: datetime = strawberry.field(description="When it last changed (UTC).")

    @classmethod
    def from_model(cls, row: models.Lexicon) -> Lexicon:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            source_lang=row.source_lang,
            target_lang=row.target_lang,
            entries=[LexiconEntry(source=e["source"], target=e["target"]) for e in row.entries],
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.input(description="A term pair.")
class LexiconEntryInput:
    source: str = strawberry.field(description="The term, 1 to 200 characters.")
    target: str = strawberry.field(description="Its rendering, 1 to 200 characters.")


@strawberry.input(description="A new lexicon.")
class CreateLexiconInput:
    name: str = strawberry.field(description="1 to 100 characters, unique among yours.")
    source_lang: str = strawberry.field(description="Language code of the terms, e.g. `en`.")
    target_lang: str = strawberry.field(description="Language code of the renderings, e.g. `zh`.")
    entries: list[LexiconEntryInput] = strawberry.field(
        description="1 to 500 pairs; a source term may appear once (case-insensitive)."
    )


@strawberry.input(description="Changes to a lexicon; omitted fields stay as they are.")
class UpdateLexiconInput:
    name: str | None = strawberry.field(default=None, description="A new name.")
    entries: list[LexiconEntryInput] | None = strawberry.field(
        default=None, description="Replaces all entries (1 to 500 pairs)."
    )


LexiconResult = Annotated[
    Lexicon | InvalidInputError | AuthError | NotFoundError | UnavailableError,
    strawberry.union("LexiconResult", description="The lexicon, or why the call failed."),
]


async def lexicon_result(
    call: Awaitable[models.Lexicon],
) -> Lexicon | InvalidInputError | AuthError | NotFoundError | UnavailableError:
    """The lexicon a use case returns, or its expected error as a schema type."""
    try:
        return Lexicon.from_model(await call)
    except CreationKingError as exc:
        return from_exception_as(exc, InvalidInputError, AuthError, NotFoundError)


def entries_of(entries: list[LexiconEntryInput]) -> list[dict[str, str]]:
    """Plain term pairs for the application layer."""
    return [{"source": e.source, "target": e.target} for e in entries]

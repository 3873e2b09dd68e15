"""Lexicon use cases: users' glossaries for translation, always as the calling user."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from tortoise.exceptions import IntegrityError

from resolvers.access import scopes
from resolvers.access.auth import Principal, require_account, require_user
from resolvers.core.errors import InvalidInput, NotFound
from resolvers.core.models import Lexicon
from resolvers.tools.base import check_text

MAX_NAME = 100
MAX_ENTRIES = 500
MAX_TERM = 200
MAX_LEXICONS = 100
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")


def _text(value: str, field: str, limit: int) -> str:
    value = value.strip()
    try:
        check_text(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}", field=field) from None
    if not 1 <= len(value) <= limit:
        raise InvalidInput(f"{field}: must be 1 to {limit} characters", field=field)
    return value


def _language(value: str, field: str) -> str:
    if not _LANGUAGE.match(value):
        raise InvalidInput(f"{field}: not a language code such as 'en' or 'zh'", field=field)
    return value


def clean_entries(entries: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Validated entries: 1..500 pairs, terms 1..200 characters, no source listed twice."""
    if not 1 <= len(entries) <= MAX_ENTRIES:
        raise InvalidInput(f"entries: must hold 1 to {MAX_ENTRIES} terms", field="entries")
    seen: set[str] = set()
    cleaned = []
    for index, entry in enumerate(entries):
        source = _text(entry["source"], f"entries.{index}.source", MAX_TERM)
        target = _text(entry["target"], f"entries.{index}.target", MAX_TERM)
        if source.casefold() in seen:
            raise InvalidInput(
                f"entries.{index}.source: {source!r} is listed twice", field=f"entries.{index}"
            )
        seen.add(source.casefold())
        cleaned.append({"source": source, "target": target})
    return cleaned


async def create_lexicon(
    *,
    principal: Principal | None,
    name: str,
    source_lang: str,
    target_lang: str,
    entries: Sequence[Mapping[str, str]],
) -> Lexicon:
    """Store a new lexicon for the caller; names are unique per user."""
    user = require_user(principal, scopes.LEXICONS_WRITE)
    values: dict[str, Any] = {
        "name": _text(name, "name", MAX_NAME),
        "source_lang": _language(source_lang, "source_lang"),
        "target_lang": _language(target_lang, "target_lang"),
        "entries": clean_entries(entries),
    }
    if values["source_lang"] == values["target_lang"]:
        raise InvalidInput("target_lang: must differ from source_lang", field="target_lang")
    if await Lexicon.filter(owner_id=user.user_id).count() >= MAX_LEXICONS:
        raise InvalidInput(f"you already have {MAX_LEXICONS} lexicons", field="name")
    try:
        return await Lexicon.create(owner_id=user.user_id, **values)
    except IntegrityError:
        await require_account(user.user_id)  # the owner may be what is missing
        raise InvalidInput("name: you have a lexicon with this name", field="name") from None


async def get_lexicon(
    *, principal: Principal | None, lexicon_id: str, scope: str = scopes.LEXICONS_READ
) -> Lexicon:
    """The caller's lexicon (an admin: anyone's); NotFound for unknown ids and for other
    users' lexicons."""
    user = require_user(principal, scope)
    try:
        key = uuid.UUID(lexicon_id)
    except ValueError:
        raise NotFound(f"no lexicon {lexicon_id}") from None
    lexicon = await Lexicon.filter(id=key, **user.owner_filter()).first()
    if lexicon is None:
        raise NotFound(f"no lexicon {lexicon_id}")
    return lexicon


async def list_lexicons(*, principal: Principal | None) -> list[Lexicon]:
    """The caller's lexicons, by name."""
    user = require_user(principal, scopes.LEXICONS_READ)
    return await Lexicon.filter(owner_id=user.user_id).order_by("name")


async def update_lexicon(
    *,
    principal: Principal | None,
    lexicon_id: str,
    name: str | None = None,
    entries: Sequence[Mapping[str, str]] | None = None,
) -> Lexicon:
    """Rename a lexicon and/or replace its entries; nothing changes if any value is bad."""
    lexicon = await get_lexicon(
        principal=principal, lexicon_id=lexicon_id, scope=scopes.LEXICONS_WRITE
    )
    if name is not None:
        lexicon.name = _text(name, "name", MAX_NAME)
    if entries is not None:
        lexicon.entries = clean_entries(entries)
    try:
        await lexicon.save()
    except IntegrityError:
        raise InvalidInput("name: you have a lexicon with this name", field="name") from None
    return lexicon


async def delete_lexicon(*, principal: Principal | None, lexicon_id: str) -> Lexicon:
    """Delete the caller's lexicon; past translations keep the terms they used."""
    lexicon = await get_lexicon(
        principal=principal, lexicon_id=lexicon_id, scope=scopes.LEXICONS_WRITE
    )
    await lexicon.delete()
    return lexicon

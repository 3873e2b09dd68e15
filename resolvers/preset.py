"""Presets: a user's saved SWOT templates and tarot spreads, used by id in later requests."""

from __future__ import annotations

import uuid
from typing import Any

from tortoise.exceptions import IntegrityError

from inference import tarot
from resolvers.access import scopes
from resolvers.access.auth import Principal, require_account, require_user
from resolvers.core.errors import InvalidInput, NotFound
from resolvers.core.models import Preset

MAX_NAME = 100
MAX_PRESETS = 100  # per user and tool
SWOT_TEMPLATE = "swot"
TAROT_SPREAD = "tarot"


async def save_preset(
    *, principal: Principal | None, tool: str, name: str, data: dict[str, Any]
) -> Preset:
    """Store validated preset data under a name unique per user and tool."""
    user = require_user(principal, scopes.PRESETS_WRITE)
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME or "\x00" in name:
        raise InvalidInput(f"name: must be 1 to {MAX_NAME} characters", field="name")
    if await Preset.filter(owner_id=user.user_id, tool=tool).count() >= MAX_PRESETS:
        raise InvalidInput(f"you already have {MAX_PRESETS} of these", field="name")
    try:
        return await Preset.create(owner_id=user.user_id, tool=tool, name=name, data=data)
    except IntegrityError:
        await require_account(user.user_id)  # the owner may be what is missing
        raise InvalidInput("name: you already saved one with this name", field="name") from None


async def get_preset(
    *, principal: Principal | None, tool: str, preset_id: str, scope: str = scopes.PRESETS_READ
) -> Preset:
    """The caller's preset for `tool` (an admin: anyone's); NotFound otherwise (also for
    other users' presets)."""
    user = require_user(principal, scope)
    try:
        key = uuid.UUID(preset_id)
    except ValueError:
        raise NotFound(f"no saved {tool} preset {preset_id}") from None
    preset = await Preset.filter(id=key, tool=tool, **user.owner_filter()).first()
    if preset is None:
        raise NotFound(f"no saved {tool} preset {preset_id}")
    return preset


async def list_presets(*, principal: Principal | None, tool: str) -> list[Preset]:
    """The caller's presets for `tool`, by name."""
    user = require_user(principal, scopes.PRESETS_READ)
    return await Preset.filter(owner_id=user.user_id, tool=tool).order_by("name")


async def delete_preset(*, principal: Principal | None, tool: str, preset_id: str) -> Preset:
    """Delete one of the caller's presets; creations that used it keep their copy."""
    preset = await get_preset(
        principal=principal, tool=tool, preset_id=preset_id, scope=scopes.PRESETS_WRITE
    )
    await preset.delete()
    return preset


def spread_data(positions: list[str]) -> dict[str, Any]:
    """A tarot spread's preset data, checked as the tarot tool will check it."""
    try:
        spread = tarot.Spread.custom(positions)
    except ValueError as exc:
        raise InvalidInput(f"positions: {exc}", field="positions") from None
    return {"positions": [position.name for position in spread.positions]}

"""Tortoise configuration and migrations, shared by the API, the worker and the CLI."""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.api import migrate as _migrate

MODELS_MODULE = "resolvers.models"
MIGRATIONS_MODULE = "migrations"


def tortoise_config(db_url: str) -> dict[str, Any]:
    """The Tortoise config for one database URL (postgres:// or sqlite://)."""
    return {
        "connections": {"default": db_url},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(db_url: str) -> None:
    """Apply every pending migration; run once per deploy, not per replica."""
    await _migrate(config=tortoise_config(db_url))
    await Tortoise.close_connections()


async def open_db(db_url: str) -> None:
    """Connect the ORM for this process (global fallback: requests run in other tasks)."""
    # Tortoise caches each table's SQL per connection *name*, whatever the dialect: a process
    # that opened SQLite before Postgres (tests, the CLI) would send SQLite's SQL to Postgres.
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(db_url), _enable_global_fallback=True)


async def close_db() -> None:
    """Close every ORM connection of this process."""
    await Tortoise.close_connections()

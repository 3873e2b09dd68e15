"""Tortoise configuration and migrations, shared by the API, the worker and the CLI."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from asyncpg import InterfaceError, PostgresConnectionError
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.api import migrate as _migrate

from resolvers.core import tracing

MODELS_MODULE = "resolvers.core.models"
MIGRATIONS_MODULE = "migrations"


# A database that cannot be reached or stopped answering, as its drivers report it: callers
# outside GraphQL's error masking translate these into ServiceUnavailable.
OUTAGES: tuple[type[BaseException], ...] = (
    DBConnectionError,
    PostgresConnectionError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)
COMMAND_TIMEOUT = 5.0  # seconds a query may take before the request fails (not hangs)
CONNECT_TIMEOUT = 5


def tortoise_config(
    db_url: str, *, command_timeout: float | None = COMMAND_TIMEOUT
) -> dict[str, Any]:
    """The Tortoise config for one database URL (postgres:// or sqlite://). Postgres gets a
    connect and a command timeout unless the URL sets them: a database that stops answering
    (a network partition) must fail requests, not hang them."""
    url = _with_timeouts(db_url, command_timeout)
    connection: str | dict[str, Any] = url
    if db_url.startswith("postgres"):
        # The dict form of the same URL, to hand asyncpg's pool our hooks.
        connection = expand_db_url(url)
        connection["credentials"]["reset"] = _keep_session
        if tracing.enabled():
            connection["credentials"]["init"] = tracing.trace_queries
    return {
        "connections": {"default": connection},
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


async def _keep_session(connection: Any) -> None:
    """asyncpg pool `reset`: nothing more than asyncpg always does when a connection goes
    back to the pool (roll back an open transaction, drop listeners). The default reset also
    sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`: one more round trip
    after every query made outside a transaction, to undo session state (advisory locks,
    cursors, LISTEN, SET) this service never creates."""


def _with_timeouts(db_url: str, command_timeout: float | None) -> str:
    parts = urlsplit(db_url)
    if not parts.scheme.startswith("postgres"):
        return db_url
    query = dict(parse_qsl(parts.query))
    # asyncpg waits for a timed-out query's cancel request (a new connection) before it
    # gives the connection back: a connect timeout above the command timeout would stretch
    # every failure to their sum.
    connect = CONNECT_TIMEOUT if command_timeout is None else min(CONNECT_TIMEOUT, command_timeout)
    query.setdefault("timeout", str(max(1, int(connect))))
    if command_timeout is not None:
        query.setdefault("command_timeout", str(command_timeout))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def migrate(db_url: str) -> None:
    """Apply every pending migration; run once per deploy, not per replica (no command
    timeout: a migration of a big table may take long)."""
    await _migrate(config=tortoise_config(db_url, command_timeout=None))
    await Tortoise.close_connections()


async def open_db(db_url: str, *, command_timeout: float = COMMAND_TIMEOUT) -> None:
    """Connect the ORM for this process (global fallback: requests run in other tasks)."""
    # Tortoise caches each table's SQL per connection *name*, whatever the dialect: a process
    # that opened SQLite before Postgres (tests, the CLI) would send SQLite's SQL to Postgres.
    EXECUTOR_CACHE.clear()
    config = tortoise_config(db_url, command_timeout=command_timeout)
    await Tortoise.init(config=config, _enable_global_fallback=True)


async def close_db() -> None:
    """Close every ORM connection of this process."""
    await Tortoise.close_connections()

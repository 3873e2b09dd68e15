"""The backing services of a bench run: a throwaway Postgres database and a Redis db index."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

PG_ADMIN_URL = os.environ.get("CK_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CK_BENCH_REDIS", "redis://127.0.0.1:6379/14")
JWT_SECRET = "bench-secret-" + "b" * 40


@dataclass(frozen=True)
class Services:
    """URLs the servers under test use."""

    database_url: str
    redis_url: str
    database_name: str


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database() -> Services:
    """Create an empty `ck_bench_<random>` database; check Redis answers."""
    name = f"ck_bench_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    redis = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await redis.ping()
        await redis.flushdb()  # the bench's own db index: leftovers of an aborted run
    finally:
        await redis.aclose()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return Services(database_url=f"{base}/{name}", redis_url=REDIS_URL, database_name=name)


async def drop_database(services: Services) -> None:
    """Drop the bench database (even with open connections) and empty the Redis db index."""
    await _admin(f'DROP DATABASE IF EXISTS "{services.database_name}" WITH (FORCE)')
    redis = Redis.from_url(services.redis_url, socket_connect_timeout=2)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


async def backend_pids(services: Services) -> list[int]:
    """Process ids of the Postgres backends connected to the bench database (not this one)."""
    conn = await asyncpg.connect(services.database_url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            services.database_name,
        )
    finally:
        await conn.close()
    return [int(row["pid"]) for row in rows]


def server_env(services: Services, triton_url: str, **extra: str) -> dict[str, str]:
    """The environment of `creation-king` in production mode against the bench services."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CK_") and key not in ("PYTHONPATH", "PYTHONHOME")
    }
    env.update(
        CK_ENV="test",
        CK_DATABASE_URL=services.database_url,
        CK_REDIS_URL=services.redis_url,
        CK_TRITON_URL=triton_url,
        CK_ENGINE="triton",
        CK_JWT_SECRET=JWT_SECRET,
        CK_ARGON2_TIME_COST="1",
        CK_ARGON2_MEMORY_KIB="1024",
        # Every pair repeats the same seeded request: measure generation, not cache hits.
        CK_CACHE_TTL_SECONDS="0",
        # All load comes from one user and one address: the limiter still runs (its Redis
        # script is part of every request's cost) but must not answer 429 to the bench.
        CK_RATE_LIMIT_PER_MINUTE="10000000",
        # One user holds every bench socket: the socket and subscription caps and the daily
        # token quota must not refuse the load either.
        CK_MAX_SOCKETS_PER_USER="10000",
        CK_MAX_SUBSCRIPTIONS_PER_USER="10000",
        CK_MAX_SOCKETS_PER_ADDRESS="100000",
        # The quota stays on (as in a deployment: its admission is on every request's path),
        # too high to refuse the bench.
        CK_TOKEN_QUOTA_PER_DAY="1000000000000",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def migrate(venv_bin: Path, env: Mapping[str, str], cwd: Path) -> None:
    """Run `creation-king migrate` against the bench database."""
    result = subprocess.run(
        [str(venv_bin / "creation-king"), "migrate"],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"creation-king migrate failed:\n{result.stdout}\n{result.stderr}")

"""The installed `creation-king` command: migrate, export-schema, token, serve."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis

from resolvers.core.settings import Settings
from schema.build import export_sdl
from schema.cli import banner
from tests.conftest import (
    PG_ADMIN_URL,
    TEST_SECRET,
    GraphQLClient,
    free_port,
    make_settings,
    open_socket,
)
from tests.schema.test_subscriptions import WRITE, assert_well_formed, events_of, text_of

CLI = str(Path(sys.executable).with_name("creation-king"))
MIGRATIONS = len(list((Path(__file__).parents[2] / "migrations").glob("[0-9][0-9][0-9][0-9]_*.py")))


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        applied = await conn.fetchval("SELECT count(*) FROM tortoise_migrations")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows} | {f"applied:{applied}"}


async def test_migrate_creates_the_schema_once_on_a_fresh_postgres(pg_url: str) -> None:
    name = f"ck_migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = pg_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        for _ in range(2):  # the second run finds nothing to do
            result = run("migrate", env={"CK_DATABASE_URL": url})
            assert result.returncode == 0, result.stderr
        assert await tables(url) == {
            "users",
            "creations",
            "lexicons",
            "presets",
            "uploads",
            "api_keys",
            "refresh_tokens",
            "audit_log",
            "tortoise_migrations",
            f"applied:{MIGRATIONS}",
        }
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_export_schema_prints_the_sdl() -> None:
    result = run("export-schema", "--stdout", env={})
    assert result.returncode == 0 and result.stdout == export_sdl()


def test_token_mints_a_token_for_a_new_user(tmp_path: Path) -> None:
    env = {"CK_DATA_DIR": str(tmp_path), "CK_JWT_SECRET": TEST_SECRET}
    assert run("token", "dev@example.com", env=env).returncode != 0  # no such user
    result = run("token", "dev@example.com", "--create", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2  # a JWT


def test_bad_configuration_is_a_clear_message() -> None:
    result = run("migrate", env={"CK_ENV": "production"})
    assert result.returncode != 0 and "CK_JWT_SECRET" in result.stderr


async def test_serve_binds_the_given_host_and_port(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "CK_DATA_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(30):
            while True:
                try:
                    response = await http.get(f"http://127.0.0.1:{port}/readyz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        assert response.status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert f"GraphiQL: http://127.0.0.1:{port}/graphql" in output
    assert (tmp_path / "creation-king.sqlite3").exists()


def test_the_banner_of_embedded_dev_names_the_env_and_offers_graphiql(tmp_path: Path) -> None:
    text = banner(make_settings(env="dev", data_dir=tmp_path), "127.0.0.1", 8000)
    assert text.startswith(
        "Creation King on http://127.0.0.1:8000 (env: dev, embedded, engine: dev)"
    )
    assert "redis: in-process; jobs: in this process" in text
    assert text.endswith("GraphiQL: http://127.0.0.1:8000/graphql")


def test_a_redis_url_alone_is_not_production(tmp_path: Path) -> None:
    text = banner(make_settings(env="dev", redis_url="redis://127.0.0.1:6379/9"), "h", 1)
    assert "env: dev, with services" in text and "production" not in text
    assert "jobs: `creation-king worker`" in text


def test_the_production_banner_prints_no_graphiql_address_it_would_not_serve() -> None:
    settings = Settings(
        env="production",
        jwt_secret=TEST_SECRET,
        database_url="postgres://postgres@127.0.0.1:5432/ck",
        redis_url="redis://127.0.0.1:6379/9",
        s3_bucket="uploads",
        engine="dev",
    )
    text = banner(settings, "0.0.0.0", 8000)
    assert "(env: production, with services, engine: dev)" in text
    assert "database: Postgres" in text and "files: S3 bucket uploads" in text
    assert "/graphql" not in text and text.endswith("GraphiQL: off")
    # unless the operator turns it on
    shown = banner(settings.model_copy(update={"graphiql": True}), "0.0.0.0", 8000)
    assert shown.endswith("GraphiQL: http://0.0.0.0:8000/graphql")


def test_serve_refuses_several_workers_in_embedded_mode(tmp_path: Path) -> None:
    # one process holds embedded mode's Redis, job runner and SQLite: more would split them
    result = run("serve", "--workers", "2", env={"CK_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0 and "--workers needs CK_DATABASE_URL" in result.stderr
    assert run("serve", "--workers", "0", env={}).returncode != 0


async def test_serve_workers_share_creations_across_processes(
    pg_url: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "CK_DATABASE_URL": pg_url,
        "CK_REDIS_URL": redis_url,
        "CK_DATA_DIR": str(tmp_path),
        "CK_ENGINE": "dev",
    }
    process = subprocess.Popen(
        [CLI, "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    graphql = GraphQLClient(base)
    try:
        await _wait_ready(graphql.http, base)
        assert len(_api_processes(process.pid)) == 2
        token = await graphql.register()

        async def stream(n: int) -> list[dict[str, Any]]:
            async with open_socket(f"ws://127.0.0.1:{port}/graphql", token) as sock:
                op = await sock.subscribe(WRITE, {"input": {"prompt": f"p{n}", "maxTokens": 15}})
                return events_of(await sock.collect(op, timeout=60))

        runs = await asyncio.gather(*(stream(n) for n in range(8)))
        for events in runs:
            assert_well_formed(events)
            assert events[-1]["__typename"] == "CreationCompleted"
            # read back over HTTP, from whichever process takes the request
            stored = await graphql.query(STORED, {"id": events[0]["creationId"]}, token)
            assert stored["creation"] == {"status": "COMPLETED", "output": text_of(events)}
    finally:
        await graphql.aclose()
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert "Traceback" not in output, output


STORED = "query S($id: ID!) { creation(id: $id) { status output } }"


async def _wait_ready(http: httpx.AsyncClient, base: str) -> None:
    async with asyncio.timeout(90):
        for _attempt in itertools.count():
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{base}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)


def _api_processes(parent: int) -> list[int]:
    """The uvicorn worker processes the `serve` process spawned (not its resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"multiprocessing.spawn" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]

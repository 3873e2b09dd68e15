"""Fixtures, once: settings in code, the real Postgres and Redis, uvicorn servers, clients.

Postgres and Redis tests need the services on 127.0.0.1; without them they skip with a reason,
unless CK_REQUIRE_SERVICES=1 (CI), where they fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx
import pytest
import uvicorn
import websockets
from moto.server import ThreadedMotoServer
from redis.asyncio import Redis
from tortoise import connections

from jobs.worker import create_worker
from resolvers.core import db
from resolvers.core.settings import Settings
from schema.app import create_app

pytest_plugins = ["tests.triton.plugin"]

PG_ADMIN_URL = os.environ.get("CK_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CK_TEST_REDIS", "redis://127.0.0.1:6379/15")
REQUIRED = os.environ.get("CK_REQUIRE_SERVICES") == "1"
TEST_SECRET = "test-secret-" + "x" * 40


def _unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable: {exc}"
    if REQUIRED:
        pytest.fail(f"{message} (CK_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, migrated Postgres database for this test session, dropped at the end."""
    name = f"ck_test_{uuid.uuid4().hex[:10]}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable("PostgreSQL", exc)
    url = f"{base}/{name}"
    asyncio.run(db.migrate(url))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis (database 15), checked once."""

    async def ping() -> None:
        client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(ping())
    except OSError as exc:
        _unavailable("Redis", exc)
    except Exception as exc:  # redis-py wraps socket errors in its own types
        _unavailable("Redis", exc)
    return REDIS_URL


def make_settings(**overrides: Any) -> Settings:
    """Test settings: fast password hashing, unpaced dev engine, quick polling."""
    values: dict[str, Any] = {
        "env": "test",
        "jwt_secret": TEST_SECRET,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "engine": "dev",
        "dev_token_delay": 0.0,
        "follow_poll_seconds": 0.2,
        "graphiql": True,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on a flushed test database."""
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def settings(pg_url: str, redis_url: str, redis: Redis, tmp_path: Path) -> Settings:
    """Production-shaped settings: real Postgres and Redis, the dev engine, files in tmp."""
    return make_settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path / "data")


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    """Embedded mode: SQLite in a temp folder, in-process Redis and jobs."""
    return make_settings(data_dir=tmp_path / "data")


async def _truncate() -> None:
    await connections.get("default").execute_script(
        "TRUNCATE users, creations, lexicons, presets, uploads CASCADE"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A uvicorn server on 127.0.0.1 running in the test's event loop."""

    def __init__(self, app: Any, **options: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/graphql"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", **options
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self.app = app

    async def __aenter__(self) -> Server:
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(15):
            while not self._server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 15)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    """The API against the real Postgres and Redis, with empty tables."""
    async with Server(create_app(settings)) as running:
        await _truncate()
        yield running


class GraphQLClient:
    """POSTs GraphQL to a server; `query` asserts there were no errors."""

    def __init__(self, url: str) -> None:
        self.url = url + "/graphql"
        self.http = httpx.AsyncClient(timeout=30)

    async def raw(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(
            self.url, json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def query(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        response = await self.raw(query, variables, token)
        body = response.json()
        assert response.status_code == 200, body
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def errors(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> list[dict[str, Any]]:
        body = (await self.raw(query, variables, token)).json()
        assert body.get("errors"), body
        errors: list[dict[str, Any]] = body["errors"]
        return errors

    async def register(self, email: str | None = None, password: str = "correct horse") -> str:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        data = await self.query(REGISTER, {"email": email, "password": password})
        assert data["register"]["__typename"] == "AuthSession", data
        token: str = data["register"]["accessToken"]
        return token

    async def aclose(self) -> None:
        await self.http.aclose()


REGISTER = """
mutation Register($email: String!, $password: String!) {
  register(input: {email: $email, password: $password}) {
    __typename
    ... on AuthSession { accessToken user { id email } }
    ... on Error { code message }
  }
}
"""


@contextlib.asynccontextmanager
async def running_worker(server: Server) -> AsyncIterator[None]:
    """An arq worker in this process, sharing the server's open resources."""
    core = server.app.state.core
    arq_worker = create_worker(
        core.settings, ctx={"settings": core.settings, "runner": core.runner}
    )
    task = asyncio.create_task(arq_worker.async_run())
    try:
        yield
    finally:
        task.cancel()
        await arq_worker.close()


@pytest.fixture
async def worker(server: Server) -> AsyncIterator[None]:
    """An arq worker in this process, sharing the server's open resources."""
    async with running_worker(server):
        yield


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, **changes: Any
) -> AsyncIterator[tuple[Server, GraphQLClient, str]]:
    """A server with `settings` changed by `changes`, a client, and a registered user's token."""
    async with Server(create_app(settings.model_copy(update=changes))) as server:
        graphql = GraphQLClient(server.url)
        try:
            yield server, graphql, await graphql.register()
        finally:
            await graphql.aclose()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[GraphQLClient]:
    graphql = GraphQLClient(server.url)
    yield graphql
    await graphql.aclose()


@pytest.fixture
async def token(client: GraphQLClient) -> str:
    """An access token of a freshly registered user."""
    return await client.register()


class Socket:
    """A graphql-transport-ws (or legacy graphql-ws) connection, after the ack."""

    def __init__(self, ws: Any, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._ids = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        message: dict[str, Any] = json.loads(raw)
        return message

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._ids += 1
        op_id = str(self._ids)
        kind = "subscribe" if self.protocol == "graphql-transport-ws" else "start"
        await self.send(
            {"id": op_id, "type": kind, "payload": {"query": query, "variables": variables or {}}}
        )
        return op_id

    async def collect(self, op_id: str, timeout: float = 20) -> list[dict[str, Any]]:
        """Payloads of `op_id` until its completion; fails on errors or timeout."""
        payloads: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                message = await self.receive(timeout)
                if message.get("id") != op_id:
                    continue
                if message["type"] in ("next", "data"):
                    payload = message["payload"]
                    assert not payload.get("errors"), payload["errors"]
                    payloads.append(payload["data"])
                elif message["type"] == "complete":
                    return payloads
                else:
                    raise AssertionError(f"unexpected message {message}")


@contextlib.asynccontextmanager
async def open_socket(
    ws_url: str,
    token: str | None = None,
    protocol: str = "graphql-transport-ws",
    payload: dict[str, Any] | None = None,
) -> AsyncIterator[Socket]:
    """Connect, send connection_init with the token, wait for the ack."""
    async with websockets.connect(ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        sock = Socket(ws, protocol)
        init = (
            payload
            if payload is not None
            else ({"Authorization": f"Bearer {token}"} if token else {})
        )
        await sock.send({"type": "connection_init", "payload": init})
        ack = await sock.receive()
        assert ack["type"] == "connection_ack", ack
        yield sock


S3_BUCKET = "creation-king-test"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback with the test bucket, for the whole session."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=S3_BUCKET)
    yield endpoint
    server.stop()

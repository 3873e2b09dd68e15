"""Two API processes and a worker against the real Postgres and Redis: any replica serves
any subscriber, in order, nothing lost; a cancel sent to one replica stops a run on another."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET, GraphQLClient, free_port, open_socket
from tests.schema.test_subscriptions import (
    EVENTS,
    REPORT,
    START_WRITE,
    assert_well_formed,
    events_of,
    first_text,
    text_of,
)

CLI = str(Path(sys.executable).with_name("creation-king"))
CANCEL = "mutation C($id: ID!) { cancelCreation(id: $id) { __typename } }"


@pytest.fixture
def service_env(pg_url: str, redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CK_ENV": "test",
        "CK_DATABASE_URL": pg_url,
        "CK_REDIS_URL": redis_url,
        "CK_JWT_SECRET": TEST_SECRET,
        "CK_ARGON2_TIME_COST": "1",
        "CK_ARGON2_MEMORY_KIB": "1024",
        "CK_DEV_TOKEN_DELAY": "0.004",
        "CK_FOLLOW_POLL_SECONDS": "0.5",
    }


@pytest.fixture
def processes(service_env: dict[str, str], tmp_path: Path) -> Iterator[list[str]]:
    """Start API A, API B and a worker; yield the two base URLs; stop them all."""
    ports = [free_port(), free_port()]
    commands = [[CLI, "serve", "--port", str(port), "--log-level", "warning"] for port in ports]
    commands.append([CLI, "worker"])
    started = []
    for index, command in enumerate(commands):
        with (tmp_path / f"proc{index}.log").open("w") as log:
            started.append(
                subprocess.Popen(
                    command,
                    env=service_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in started:
            os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
async def replicas(processes: list[str]) -> AsyncIterator[list[GraphQLClient]]:
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        for url in processes:
            while True:
                try:
                    if (await http.get(url + "/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
    clients = [GraphQLClient(url) for url in processes]
    yield clients
    for client in clients:
        await client.aclose()


def ws_url(client: GraphQLClient) -> str:
    return client.url.replace("http://", "ws://")


async def watch(client: GraphQLClient, token: str, creation_id: str) -> list[dict[str, object]]:
    async with open_socket(ws_url(client), token) as sock:
        op = await sock.subscribe(EVENTS, {"id": creation_id, "after": 0})
        return events_of(await sock.collect(op, timeout=40))


async def test_subscribers_on_any_replica_get_every_event(replicas: list[GraphQLClient]) -> None:
    api_a, api_b = replicas
    token = await api_a.register()
    # a fast creation started on A, watched from both replicas while it streams
    started = await api_a.query(
        START_WRITE, {"input": {"prompt": "across replicas", "maxTokens": 300}}, token=token
    )
    write_id = started["write"]["id"]
    on_b, on_a = await asyncio.gather(watch(api_b, token, write_id), watch(api_a, token, write_id))
    for events in (on_a, on_b):
        assert_well_formed(events)
        assert events[-1]["__typename"] == "CreationCompleted"
    assert text_of(on_b) == text_of(on_a)
    assert len(text_of(on_b).split()) == 300

    # a long creation queued through B runs on the worker and streams to A and B
    async with open_socket(ws_url(api_b), token) as sock:
        op = await sock.subscribe(
            REPORT, {"input": {"topic": "cross-process reports", "sections": 2}}
        )
        first = await sock.receive()
        report_id = first["payload"]["data"]["report"]["creationId"]
        on_a_task = asyncio.create_task(watch(api_a, token, report_id))
        on_b = [first["payload"]["data"]["report"], *events_of(await sock.collect(op, timeout=40))]
    on_a = await on_a_task
    for events in (on_a, on_b):
        assert_well_formed(events)
        assert events[-1]["__typename"] == "CreationCompleted"
    assert text_of(on_a) == text_of(on_b)
    assert text_of(on_a).count("\n## ") == 2


async def test_cancel_on_one_replica_stops_a_run_on_another(
    replicas: list[GraphQLClient],
) -> None:
    api_a, api_b = replicas
    token = await api_a.register()
    started = await api_a.query(
        START_WRITE, {"input": {"prompt": "stop me", "maxTokens": 2000}}, token=token
    )
    creation_id = started["write"]["id"]
    async with open_socket(ws_url(api_a), token) as sock:
        op = await sock.subscribe(EVENTS, {"id": creation_id, "after": 0})
        await first_text(sock)
        cancelled = await api_b.query(CANCEL, {"id": creation_id}, token=token)
        assert cancelled["cancelCreation"]["__typename"] == "Creation"
        rest = events_of(await sock.collect(op, timeout=10))
    assert rest[-1]["__typename"] == "CreationCancelled"
    assert 0 < rest[-1]["usage"]["completionTokens"] < 2000


async def test_cancel_reaches_a_long_job_on_the_worker(replicas: list[GraphQLClient]) -> None:
    api_a, api_b = replicas
    token = await api_a.register()
    async with open_socket(ws_url(api_a), token) as sock:
        op = await sock.subscribe(
            REPORT, {"input": {"topic": "a very long report", "sections": 4, "sectionTokens": 1024}}
        )
        first = await sock.receive()
        report_id = first["payload"]["data"]["report"]["creationId"]
        await first_text(sock)
        cancelled = await api_b.query(CANCEL, {"id": report_id}, token=token)
        assert cancelled["cancelCreation"]["__typename"] == "Creation"
        rest = events_of(await sock.collect(op, timeout=10))
    assert rest[-1]["__typename"] == "CreationCancelled"
    assert 0 < rest[-1]["usage"]["completionTokens"] < 4 * 1024
    row = await api_b.query(
        "query Q($id: ID!) { creation(id: $id) { status } }", {"id": report_id}, token=token
    )
    assert row["creation"]["status"] == "CANCELLED"

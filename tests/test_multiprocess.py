"""Two API processes and two workers against the real Postgres and Redis: any replica serves
any subscriber, in order, nothing lost or repeated; a cancel sent to one replica stops a run on
another; long creations run on either worker.

The processes are started once for the module (about 5 s of start-up saved per test); every
test registers its own users.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import RedisSettings, create_pool
from arq.jobs import Job
from redis.asyncio import Redis

from resolvers.core import keys
from resolvers.streaming.queue import deserialize_job
from tests.conftest import TEST_SECRET, GraphQLClient, free_port, open_socket
from tests.schema.test_subscriptions import (
    EVENTS,
    REPORT,
    START_WRITE,
    TERMINAL,
    WRITE,
    assert_well_formed,
    events_of,
    first_text,
    text_of,
)

CLI = str(Path(sys.executable).with_name("creation-king"))
CANCEL = "mutation C($id: ID!) { cancelCreation(id: $id) { __typename } }"
STORED = "query Q($id: ID!) { creation(id: $id) { status output } }"
WORKERS = 2
# Each worker takes at most two jobs at a time, so the five long creations of the mixed
# traffic cannot all land on one worker.
JOBS_PER_WORKER = 2
READY_LINE = "worker ready"


@dataclass(frozen=True)
class Processes:
    """The API base URLs and the workers' log files."""

    api_urls: list[str]
    worker_logs: list[Path]


@pytest.fixture(scope="module")
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
        "CK_MAX_CONCURRENT_JOBS": str(JOBS_PER_WORKER),
    }


@pytest.fixture(scope="module")
def processes(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Processes]:
    """Start API A, API B and two workers on a flushed Redis database (no answers cached by
    an earlier session); stop them all at the end of the module."""
    asyncio.run(_flush(service_env["CK_REDIS_URL"]))
    logs = tmp_path_factory.mktemp("processes")
    ports = [free_port(), free_port()]
    commands = [[CLI, "serve", "--port", str(port), "--log-level", "warning"] for port in ports]
    commands += [[CLI, "worker"] for _ in range(WORKERS)]
    names = ["api-a", "api-b"] + [f"worker-{n}" for n in range(1, WORKERS + 1)]
    started = []
    for name, command in zip(names, commands, strict=True):
        with (logs / f"{name}.log").open("w") as log:
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
        worker_logs = [logs / f"{name}.log" for name in names[2:]]
        _wait_for_workers(worker_logs, started[2:])
        yield Processes(
            api_urls=[f"http://127.0.0.1:{port}" for port in ports], worker_logs=worker_logs
        )
    finally:
        for process in started:
            os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


async def _flush(url: str) -> None:
    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def _wait_for_workers(logs: list[Path], workers: list[subprocess.Popen[bytes]]) -> None:
    """Until every worker logged that it is ready (so jobs can go to any of them)."""
    deadline = time.monotonic() + 30
    for log, worker in zip(logs, workers, strict=True):
        while READY_LINE not in log.read_text(errors="replace"):
            assert worker.poll() is None, f"{log.name} exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{log.name} not ready:\n{log.read_text()}"
            time.sleep(0.1)


@pytest.fixture
async def replicas(processes: Processes) -> AsyncIterator[list[GraphQLClient]]:
    """Clients of API A and B once both answer /readyz."""
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        for url in processes.api_urls:
            while True:
                try:
                    if (await http.get(url + "/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
    clients = [GraphQLClient(url) for url in processes.api_urls]
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

    # a long creation queued through B runs on a worker and streams to A and B
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


# -- mixed traffic ----------------------------------------------------------------------------

LONG_TEXT = " ".join(
    f"Sentence {n} of the letter says the harbour opens at nine." for n in range(40)
)
# (user, replica that starts it, tool, input, cancelled through the other replica)
MIXED: list[tuple[int, int, str, dict[str, Any], bool]] = [
    (0, 0, "write", {"prompt": "a night ferry", "maxTokens": 240, "seed": 7}, False),
    (0, 1, "translate", {"text": LONG_TEXT, "sourceLang": "en", "targetLang": "zh"}, False),
    (1, 1, "socialPost", {"platform": "WEIBO", "topic": "night markets", "seed": 3}, False),
    (
        1,
        0,
        "code",
        {"language": "PYTHON", "task": "merge two sorted lists", "maxTokens": 200},
        False,
    ),
    # the same seeded request as user 0's first: served as a live copy of that run
    (2, 1, "write", {"prompt": "a night ferry", "maxTokens": 240, "seed": 7}, False),
    (2, 0, "write", {"prompt": "cancel me halfway", "maxTokens": 3000}, True),
    (0, 0, "report", {"topic": "tidal energy", "sections": 2, "sectionTokens": 80}, False),
    (1, 1, "report", {"topic": "rooftop farms", "sections": 3, "sectionTokens": 60}, False),
    (
        2,
        0,
        "videoScript",
        {"platform": "DOUYIN", "topic": "a paper crane", "durationSeconds": 20},
        False,
    ),
    (
        0,
        1,
        "videoScript",
        {"platform": "BILIBILI", "topic": "tea", "durationSeconds": 25, "maxTokensPerScene": 60},
        False,
    ),
    (1, 0, "report", {"topic": "stop this", "sections": 4, "sectionTokens": 1024}, True),
]
LONG_TOOLS = {"report", "videoScript"}
MIDWAY_SEQ = 2  # the first event after `started`: late joiners join, resumers leave, then


def _start_mutation(tool: str) -> str:
    input_type = tool[0].upper() + tool[1:] + "Input"
    return (
        f"mutation S($input: {input_type}!) {{ {tool}(input: $input) "
        "{ __typename ... on Creation { id } ... on Error { code message } } }"
    )


@dataclass
class Watched:
    """One creation of the mixed traffic and what each of its subscribers received."""

    creation_id: str
    user: int
    tool: str
    cancel: bool
    midway: asyncio.Event = field(default_factory=asyncio.Event)
    texting: asyncio.Event = field(default_factory=asyncio.Event)
    streams: dict[str, tuple[int, list[dict[str, Any]]]] = field(default_factory=dict)


async def _follow(
    api: GraphQLClient,
    token: str,
    creation_id: str,
    *,
    after: int = 0,
    leave_at: int | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """`creationEvents(id, after)` on `api` to the end, or until seq `leave_at` (then the
    socket is closed mid-stream)."""
    events: list[dict[str, Any]] = []
    async with open_socket(ws_url(api), token) as sock, asyncio.timeout(40):
        op = await sock.subscribe(EVENTS, {"id": creation_id, "after": after})
        while True:
            message = await sock.receive(timeout=40)
            if message.get("id") != op:
                continue
            if message["type"] == "complete":
                return events
            assert message["type"] == "next" and not message["payload"].get("errors"), message
            event = message["payload"]["data"]["creationEvents"]
            events.append(event)
            if on_event is not None:
                on_event(event)
            if leave_at is not None and event["seq"] >= leave_at:
                return events


async def _audience(
    replicas: list[GraphQLClient], tokens: list[str], item: Watched, home: int
) -> None:
    """Subscribers of one creation on both replicas: two from the start (after: 0), a late
    joiner (after: 0, once text flows), and a resumer that leaves after the first delta and
    comes back on the other replica with after: <its last seq>."""
    token, away = tokens[item.user], 1 - home
    cancelled = False

    def progress(event: dict[str, Any]) -> None:
        if event["seq"] >= MIDWAY_SEQ or event["__typename"] in TERMINAL:
            item.midway.set()
        if event["__typename"] in ("TokenDelta", *TERMINAL):
            item.texting.set()

    async def early(replica: int, name: str) -> None:
        events = await _follow(replicas[replica], token, item.creation_id, on_event=progress)
        item.streams[name] = (0, events)

    async def late() -> None:
        await item.midway.wait()
        events = await _follow(replicas[away], token, item.creation_id)
        item.streams["late joiner"] = (0, events)

    async def resumer() -> None:
        first = await _follow(replicas[home], token, item.creation_id, leave_at=MIDWAY_SEQ)
        item.streams["resumer, before leaving"] = (0, first)
        if first[-1]["__typename"] in TERMINAL:
            return
        cursor = first[-1]["seq"]
        rest = await _follow(replicas[away], token, item.creation_id, after=cursor)
        item.streams[f"resumer, after: {cursor}"] = (cursor, rest)
        item.streams["resumer, both parts"] = (0, first + rest)

    async def canceller() -> None:
        nonlocal cancelled
        await item.texting.wait()  # so the cancelled creation has a part to keep
        answer = await replicas[away].query(CANCEL, {"id": item.creation_id}, token=token)
        cancelled = answer["cancelCreation"]["__typename"] == "Creation"

    jobs = [early(home, "early, same replica"), early(away, "early, other replica"), late()]
    jobs.append(resumer())
    if item.cancel:
        jobs.append(canceller())
    await asyncio.gather(*jobs)
    assert cancelled == item.cancel


async def _started_by_subscription(
    api: GraphQLClient, token: str, prompt: str, ready: asyncio.Future[str]
) -> list[dict[str, Any]]:
    """`subscription { write }`: the starter is a subscriber of its own creation; `ready`
    gets the creation's id from the first event."""
    async with open_socket(ws_url(api), token) as sock:
        op = await sock.subscribe(WRITE, {"input": {"prompt": prompt, "maxTokens": 200}})
        first = await sock.receive()
        assert first["id"] == op and first["type"] == "next", first
        events = events_of([first["payload"]["data"]])
        ready.set_result(events[0]["creationId"])
        return events + events_of(await sock.collect(op, timeout=40))


async def _check(item: Watched, api: GraphQLClient, token: str) -> None:
    """Every stream of `item` runs gaplessly from its cursor to exactly one terminal event
    (the same for all), without duplicates, and spells the creation's stored output."""
    stored = await api.query(STORED, {"id": item.creation_id}, token=token)
    status = "CANCELLED" if item.cancel else "COMPLETED"
    assert stored["creation"]["status"] == status, (item.tool, stored)
    output = stored["creation"]["output"]
    assert output, item.tool
    ending = "CreationCancelled" if item.cancel else "CreationCompleted"
    last_seqs = set()
    for name, (cursor, events) in item.streams.items():
        where = f"{item.tool} {item.creation_id}, {name}"
        if name == "resumer, before leaving" and events[-1]["__typename"] not in TERMINAL:
            continue  # checked as part of "resumer, both parts"
        seqs = [(e.get("firstSeq"), e["seq"]) for e in events]
        assert len({seq for _, seq in seqs}) == len(seqs), f"{where}: duplicates in {seqs}"
        try:
            assert_well_formed(events, cursor)
        except AssertionError:
            pytest.fail(f"{where}: not gapless from {cursor}: (firstSeq, seq) {seqs}")
        text = text_of(events)
        assert text == output if cursor == 0 else output.endswith(text), where
        assert events[-1]["__typename"] == ending, where
        last_seqs.add(events[-1]["seq"])
    assert len(last_seqs) == 1, f"{item.tool}: streams end at different seqs {last_seqs}"


def _jobs_in_log(log: Path, creation_ids: list[str]) -> set[str]:
    """The creations whose arq job this worker's log mentions (arq logs each job's id)."""
    text = log.read_text(errors="replace")
    return {cid for cid in creation_ids if keys.job_id(cid) in text}


async def test_mixed_traffic_on_two_replicas_and_two_workers(
    replicas: list[GraphQLClient], processes: Processes, redis_url: str
) -> None:
    # given three users, registered on either replica
    tokens = [await replicas[n % 2].register() for n in range(3)]

    # when each starts fast and long creations on either replica, all at once
    async def start(user: int, home: int, tool: str, tool_input: dict[str, Any]) -> str:
        data = await replicas[home].query(
            _start_mutation(tool), {"input": tool_input}, token=tokens[user]
        )
        assert data[tool]["__typename"] == "Creation", data
        creation_id: str = data[tool]["id"]
        return creation_id

    ids = await asyncio.gather(*(start(u, h, t, i) for u, h, t, i, _ in MIXED))
    items = [
        Watched(cid, user, tool, cancel)
        for cid, (user, _, tool, _, cancel) in zip(ids, MIXED, strict=True)
    ]
    # ... and one more is started through the `write` subscription, its starter watching it
    own_id: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    starter = asyncio.create_task(
        _started_by_subscription(replicas[1], tokens[0], "a starter's own stream", own_id)
    )

    async def watch_own() -> list[dict[str, Any]]:
        return await _follow(replicas[0], tokens[0], await own_id)

    # ... each watched on both replicas, from the start, late, and across a reconnect
    *_, own_watched = await asyncio.gather(
        *(
            _audience(replicas, tokens, item, home)
            for item, (_, home, *_rest) in zip(items, MIXED, strict=True)
        ),
        watch_own(),
    )
    own = Watched(await own_id, 0, "write", cancel=False)
    own.streams["starter"] = (0, await starter)
    own.streams["watcher on the other replica"] = (0, own_watched)
    items.append(own)

    # then every subscriber got a gapless, duplicate-free run of its creation's log from its
    # cursor, with exactly one terminal event, and the text the creation stored
    for item in items:
        await _check(item, replicas[0], tokens[item.user])

    # and both workers ran long jobs, which arq recorded as finished
    long_ids = [item.creation_id for item in items if item.tool in LONG_TOOLS]
    ran = [_jobs_in_log(log, long_ids) for log in processes.worker_logs]
    assert all(ran), f"jobs per worker: {[sorted(r) for r in ran]}"
    assert set(itertools.chain.from_iterable(ran)) == set(long_ids)
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        for creation_id in long_ids:
            job = Job(
                keys.job_id(creation_id),
                pool,
                _queue_name=keys.JOB_QUEUE,
                _deserializer=deserialize_job,
            )
            result = await job.result_info()
            assert result is not None and result.success, (creation_id, result)
    finally:
        await pool.aclose()

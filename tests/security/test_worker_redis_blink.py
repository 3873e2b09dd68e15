"""Issue 11, finding 8: a Redis blink under the arq worker.

The worker reaches Redis through a proxy that is cut for three seconds (every connection reset,
new ones refused) while it streams a long report. Before the fix arq's poll loop let the
connection error escape: the process waited for the job it had, then exited (and
`worker.close()` failed again when Redis was still down), so no later job was ever taken. Now
the worker waits the outage out: the report ends once, with the text the subscriber saw, and
the same process takes the next job.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from inference.base import Delta
from inference.dev import DevEngine
from inference.report import ReportSpec, report
from resolvers.core import keys
from resolvers.core.settings import Settings
from tests.conftest import TEST_SECRET, open_socket, serving
from tests.fault_support import TcpProxy, eventually, spawned, stop
from tests.schema.test_subscriptions import (
    EVENTS,
    REPORT,
    TERMINAL,
    assert_well_formed,
    events_of,
    text_of,
)

pytestmark = pytest.mark.services

CLI = str(Path(sys.executable).with_name("creation-king"))
BLINK_SECONDS = 3.0
LEASE_SECONDS = 2.0  # shorter than the blink: the lease lapses while the job runs
SPEC = ReportSpec(topic="a redis blink under the worker", sections=4, section_tokens=150, seed=11)
CREATION = "query C($id: ID!) { creation(id: $id) { status output errorCode } }"


def _report_input(spec: ReportSpec) -> dict[str, Any]:
    return {
        "topic": spec.topic,
        "sections": spec.sections,
        "sectionTokens": spec.section_tokens,
        "seed": spec.seed,
    }


async def _reference_text(spec: ReportSpec) -> str:
    """What an uninterrupted run streams, on the dev engine."""
    engine = DevEngine(token_delay=0)
    pieces = report(engine, spec, model="writer", request_id="ref")
    return "".join([piece.text async for piece in pieces if isinstance(piece, Delta)])


async def _logged(log: Path, line: str, *, timeout: float) -> None:
    async def found() -> bool:
        return line in await asyncio.to_thread(log.read_text, errors="replace")

    await eventually(found, timeout=timeout, interval=0.1)


def _worker_env(settings: Settings, redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CK_ENV": "test",
        "CK_DATABASE_URL": str(settings.database_url),
        "CK_REDIS_URL": redis_url,
        "CK_JWT_SECRET": TEST_SECRET,
        "CK_DEV_TOKEN_DELAY": "0.01",
        "CK_PRODUCER_LEASE_SECONDS": str(LEASE_SECONDS),
    }


async def _follow(
    ws_url: str,
    token: str,
    document: str,
    variables: dict[str, Any],
    on_event: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None,
) -> list[dict[str, Any]]:
    """The events of a subscription until it completes; fails on any error. `on_event` runs
    after each event, with all of them so far."""
    events: list[dict[str, Any]] = []
    async with open_socket(ws_url, token) as sock, asyncio.timeout(40):
        op = await sock.subscribe(document, variables)
        while True:
            message = await sock.receive(timeout=30)
            if message.get("id") != op:
                continue
            if message["type"] == "complete":
                return events
            assert message["type"] == "next", message
            assert not message["payload"].get("errors"), message
            events.append(events_of([message["payload"]["data"]])[0])
            if on_event is not None:
                await on_event(events)


async def test_the_worker_rides_out_a_redis_blink_and_keeps_taking_jobs(
    settings: Settings, redis: Redis, tmp_path: Path
) -> None:
    expected = await _reference_text(SPEC)
    redis_url = str(settings.redis_url)
    worker_log = tmp_path / "worker.log"
    async with (
        TcpProxy("127.0.0.1", urlsplit(redis_url).port or 6379) as proxy,
        serving(
            settings,
            dev_token_delay=0.01,
            producer_lease_seconds=LEASE_SECONDS,
            follow_poll_seconds=0.3,
        ) as (server, graphql, token),
    ):
        proxied = f"redis://127.0.0.1:{proxy.port}{urlsplit(redis_url).path}"
        with spawned([CLI, "worker"], _worker_env(settings, proxied), worker_log) as worker:
            await _logged(worker_log, "worker ready", timeout=30)
            blink: dict[str, float] = {}

            async def cut_once(events: list[dict[str, Any]]) -> None:
                # given a long report streaming from the worker, when Redis blinks under it
                deltas = sum(e["__typename"] == "TokenDelta" for e in events)
                if "cut" not in blink and deltas >= 5:
                    blink["cut"] = time.monotonic()
                    await proxy.cut()
                    # The API, seeing the producer lease lapse, lets arq retry the job now
                    # (resolvers/streaming/recovery.py): the worker must not start it a second time.
                    marker = in_progress_key_prefix + keys.job_id(events[0]["creationId"])
                    assert await redis.delete(marker) == 1
                    await asyncio.sleep(BLINK_SECONDS)  # the outage itself, not a wait
                    await proxy.restore()
                    blink["restored"] = time.monotonic()

            events = await _follow(
                server.ws_url, token, REPORT, {"input": _report_input(SPEC)}, cut_once
            )
            assert "restored" in blink, "the report ended before Redis could blink"
            ended_after = time.monotonic() - blink["restored"]
            alive_after_blink = worker.poll() is None
            row = await graphql.query(CREATION, {"id": events[-1]["creationId"]}, token)
            replay = await _follow(
                server.ws_url, token, EVENTS, {"id": events[-1]["creationId"], "after": 0}
            )

            # and when a new job comes after the blink
            began = time.monotonic()
            small = ReportSpec(topic="after the blink", sections=1, section_tokens=16, seed=3)
            later = await _follow(server.ws_url, token, REPORT, {"input": _report_input(small)})
            next_job_in = time.monotonic() - began
            alive_at_end = worker.poll() is None
            # (stopped from a thread: this loop serves the proxy the worker stops through)
            await asyncio.to_thread(stop, worker)
        log_text = worker_log.read_text(errors="replace")

    print(
        f"\nworker blink: outage {blink['restored'] - blink['cut']:.2f} s; report ended "
        f"{ended_after:.2f} s after the restore; next job done in {next_job_in:.2f} s"
    )
    # then the report ended once, complete, with exactly the text the subscriber saw...
    assert_well_formed(events)
    assert events[-1]["__typename"] == "CreationCompleted", events[-1]
    assert text_of(events) == expected
    assert row["creation"] == {"status": "COMPLETED", "output": expected, "errorCode": None}
    assert_well_formed(replay)  # and a later reader replays all of it, once
    assert text_of(replay) == expected
    # ...the worker saw the outage, stayed up, never ran the job twice...
    assert alive_after_blink and alive_at_end, log_text[-3000:]
    assert worker.returncode == 0, log_text[-3000:]
    assert "redis unreachable" in log_text and "redis reachable again" in log_text, log_text
    assert "marker was dropped while it runs here" in log_text, log_text
    assert log_text.count(":run_creation(") == 2, log_text  # the report, then the small one
    # ...and took the next job
    assert_well_formed(later)
    assert later[-1]["__typename"] == "CreationCompleted", later[-1]
    assert not TERMINAL & {e["__typename"] for e in later[:-1]}

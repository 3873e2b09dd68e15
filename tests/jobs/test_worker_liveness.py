"""Worker liveness: workers announce themselves in Redis; /readyz and /metrics count them."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from jobs.supervisor import announce_alive
from resolvers.core import keys
from resolvers.core.settings import Settings
from schema.app import create_app
from schema.observe import live_workers
from tests.conftest import Server, running_worker
from tests.fault_support import eventually

pytestmark = pytest.mark.services


async def _readyz(server: Server) -> dict[str, object]:
    async with httpx.AsyncClient() as http:
        response = await http.get(server.url + "/readyz")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def _gauge(server: Server) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(server.url + "/metrics")).text
    for family in text_string_to_metric_families(text):
        if family.name == "ck_workers_alive":
            return float(family.samples[0].value)
    raise AssertionError("no ck_workers_alive gauge")


async def test_readiness_and_metrics_count_a_running_worker_and_forget_a_stopped_one(
    server: Server,
) -> None:
    # given no worker: the API stays ready and says so
    assert (await _readyz(server))["workers"] == 0
    assert await _gauge(server) == 0
    # when a worker runs
    async with running_worker(server):

        async def one_worker() -> bool:
            return (await _readyz(server))["workers"] == 1

        # then readiness and the gauge count it
        await eventually(one_worker, timeout=5)
        assert await _gauge(server) == 1
    # and a worker that stops is gone at once (it leaves the set on close)
    assert (await _readyz(server))["workers"] == 0
    assert await _gauge(server) == 0


async def test_a_worker_that_stops_beating_lapses_after_its_ttl(redis: Redis) -> None:
    # given one worker that beats no more (killed) and one whose heartbeat is fresh
    await announce_alive(redis, "killed", ttl_seconds=1)
    await announce_alive(redis, "alive", ttl_seconds=60)
    assert await live_workers(redis) == 2

    # then the killed one stops counting once its TTL passed, by the Redis server's clock
    async def one_left() -> bool:
        return await live_workers(redis) == 1

    await eventually(one_left, timeout=5)
    # and the next heartbeat drops it from the set
    await announce_alive(redis, "alive", ttl_seconds=60)
    assert await redis.zrange(keys.live_workers(), 0, -1) == [b"alive"]


async def test_embedded_mode_reports_jobs_run_in_process(embedded_settings: Settings) -> None:
    async with Server(create_app(embedded_settings)) as server:
        assert (await _readyz(server))["workers"] == "in-process"
        assert await _gauge(server) == 1


async def test_readiness_details_stay_operator_only(settings: Settings) -> None:
    production_like = settings.model_copy(update={"env": "production"})
    async with Server(create_app(production_like)) as server:
        assert await _readyz(server) == {"status": "ready"}

"""An arq Worker that rides out Redis outages instead of exiting.

arq 0.28 lets any Redis error escape `Worker.main` (python-arq/arq#386, #435): a blink of a
few seconds ended `creation-king worker`, and `close()` failed again on the way out.
`SteadyWorker` keeps polling through an outage, with these rules:

- A failed poll is logged once per outage and retried with a capped exponential backoff.
  Jobs already running keep running, tracked as before (cancelled on SIGTERM, awaited on close).
- The slot arq takes for a job it then fails to start is given back (arq leaks it; enough
  leaks and the worker would never pick a job again).
- A job whose own bookkeeping in arq failed (its start or finish) gets its in-progress marker
  dropped once Redis answers, so that arq retries it now, not after the job timeout.
- A job still running here is never started a second time, even when another process
  dropped its in-progress marker while the lease could not be renewed: the marker is set again.
- The connection pool has socket timeouts, so a silent network fails a poll instead of
  hanging it, and a worker that starts during an outage waits for Redis.
- Every few seconds the worker announces itself in `keys.live_workers()`, so that the API can
  tell how many workers are alive (arq's own health key is one per queue, not per worker).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.worker import Worker
from redis import exceptions as redis_errors
from redis.asyncio import ConnectionPool, Redis

from resolvers.core import keys

log = logging.getLogger(__name__)

# What a Redis outage raises: a dropped or refused connection, a silent one, a restarted
# server still loading its data (BusyLoadingError is a ConnectionError), a demoted primary.
REDIS_DOWN: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    OSError,
)
HEARTBEAT_SECONDS = 5.0
_MISSED_BEATS = 3  # a worker counts as gone after this many heartbeats did not arrive


@dataclass
class Backoff:
    """Pauses between attempts: `first`, doubling up to `most` seconds, until `reset()`."""

    first: float = 0.25
    most: float = 2.0
    _next: float = field(default=0.0, init=False, repr=False)

    def pause(self) -> float:
        """The pause before the next attempt; each call doubles the following one."""
        current = self._next or self.first
        self._next = min(current * 2, self.most)
        return current

    def reset(self) -> None:
        """Back to `first`: the service answered."""
        self._next = 0.0


class SteadyWorker(Worker):
    """arq's Worker, polling on through Redis outages (see the module docstring).

    `redis_url` and `redis_options` build the pool (arq's RedisSettings has no socket timeout).
    `worker_id` names it among the live workers (default: host, pid and a random suffix).
    """

    def __init__(
        self,
        *,
        redis_url: str,
        redis_options: dict[str, Any] | None = None,
        backoff: Backoff | None = None,
        worker_id: str | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._redis_url = redis_url
        self._redis_options = redis_options or {}
        self._backoff = backoff or Backoff()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._heartbeat_seconds = heartbeat_seconds
        self._last_beat = -float("inf")
        self._down_since: float | None = None
        self._stranded: set[str] = set()  # job ids whose in-progress marker must go
        self._stopping = False
        self.outages = 0

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await self._connect()
        await super().main()

    async def _connect(self) -> ArqRedis:
        """A pool that answered a PING; waits for Redis as long as it takes."""
        pool = ArqRedis(
            ConnectionPool.from_url(self._redis_url, **self._redis_options),
            job_serializer=self.job_serializer,
            job_deserializer=self.job_deserializer,
            default_queue_name=self.queue_name,
            expires_extra_ms=self.expires_extra_ms,
        )
        while True:
            try:
                await pool.ping()
            except REDIS_DOWN as exc:
                await self._wait_out(exc)
            else:
                self._recovered()
                return pool

    async def _poll_iteration(self) -> None:
        self._end_if_stopping()
        try:
            if self._stranded:
                await self._release_stranded()
            await super()._poll_iteration()
        except REDIS_DOWN as exc:
            await self._wait_out(exc)
        else:
            self._recovered()

    async def heart_beat(self) -> None:
        await super().heart_beat()
        if time.monotonic() - self._last_beat >= self._heartbeat_seconds:
            await announce_alive(
                self.pool, self.worker_id, ttl_seconds=self._heartbeat_seconds * _MISSED_BEATS
            )
            self._last_beat = time.monotonic()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        for job_id in job_ids:
            running = self.tasks.get(job_id.decode())
            if running is not None and not running.done():
                await self._mark_running(job_id.decode())
                continue
            try:
                await super().start_jobs([job_id])
            except REDIS_DOWN:
                # arq counted the job and took a slot, then lost Redis before starting it.
                self._release_sem_dec_counter_on_complete()
                raise

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        except REDIS_DOWN as exc:
            # arq could not record the job's start or end. Its poll would re-raise this, and
            # the job's marker would hold a retry back until the job timeout.
            self._stranded.add(job_id)
            log.warning("job %s: arq lost Redis starting or ending it (%s); retried", job_id, exc)

    def handle_sig(self, signum: signal.Signals) -> None:
        self._stopping = True
        super().handle_sig(signum)

    async def _wait_for_tasks_to_complete(self, signum: signal.Signals) -> None:
        await super()._wait_for_tasks_to_complete(signum)
        self._stopping = True

    async def close(self) -> None:
        """arq's close, once the poll loop has ended; an unreachable Redis no longer stops
        the rest of the shutdown."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        self._stopping = True
        if self.main_task is not None and self.main_task is not asyncio.current_task():
            await asyncio.wait({self.main_task})
        if self._pool is None:
            return
        await asyncio.gather(*self.tasks.values())
        try:
            if self._stranded:
                await self._release_stranded()
            await self.pool.delete(self.health_check_key)
            await self.pool.zrem(keys.live_workers(), self.worker_id)
        except REDIS_DOWN as exc:
            log.warning("redis unreachable while stopping (%s); its keys expire by themselves", exc)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None

    def _end_if_stopping(self) -> None:
        if self._stopping:
            # arq cancelled this loop, but a cancel can get lost inside redis-py's calls (about
            # one close in 25 in tests/jobs): end here rather than poll a closed pool.
            raise asyncio.CancelledError("the worker is stopping")

    async def _wait_out(self, exc: BaseException) -> None:
        self._end_if_stopping()
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.outages += 1
            log.warning(
                "redis unreachable (%s: %s); %d running jobs carry on, polling resumes when "
                "it answers",
                type(exc).__name__,
                exc,
                sum(not task.done() for task in self.tasks.values()),
            )
        await asyncio.sleep(self._backoff.pause())

    def _recovered(self) -> None:
        if self._down_since is None:
            return
        log.info("redis reachable again after %.1f s; polling", self._down_now())
        self._down_since = None
        self._backoff.reset()

    def _down_now(self) -> float:
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    async def _release_stranded(self) -> None:
        stranded = sorted(self._stranded)
        await self.pool.delete(*(in_progress_key_prefix + job_id for job_id in stranded))
        self._stranded.difference_update(stranded)

    async def _mark_running(self, job_id: str) -> None:
        """The job is in the queue without a marker, but runs here: claim it again."""
        marked = await self.pool.set(
            in_progress_key_prefix + job_id,
            b"1",
            px=int(self.in_progress_timeout_s * 1000),
            nx=True,
        )
        if marked:
            log.warning("job %s: its in-progress marker was dropped while it runs here", job_id)


async def announce_alive(redis: Redis, worker_id: str, *, ttl_seconds: float) -> None:
    """Mark `worker_id` alive for `ttl_seconds` in `keys.live_workers()`, timed by the Redis
    server's clock (hosts' clocks may disagree), and drop the workers that stopped beating.
    Readers count the members scored at or after the server's time (`schema/observe.py`)."""
    now, _ = await redis.time()
    key = keys.live_workers()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, "-inf", f"({now}")
        pipe.zadd(key, {worker_id: now + ttl_seconds})
        await pipe.execute()

"""Where long creations run: arq workers in production, an in-process runner when embedded.

Both call the same job function (`jobs.worker.run_creation`), handed in by the composition
root, with the same arguments: a context dict and the creation id. Jobs are serialised as
JSON, not pickle, so whoever can write to Redis cannot run code on a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix as IN_PROGRESS_PREFIX
from arq.constants import job_key_prefix as ARQ_JOB_PREFIX
from arq.jobs import Job
from opentelemetry.trace import SpanKind
from redis import exceptions as redis_errors

from resolvers.core import keys, tracing
from resolvers.core.errors import ServiceUnavailable

log = logging.getLogger(__name__)

JOB_NAME = "run_creation"
# (ctx, creation_id, trace=carrier): `trace` continues the enqueuing operation's trace.
JobFunction = Callable[..., Awaitable[Any]]


def serialize_job(data: dict[str, Any]) -> bytes:
    """arq job serializer: JSON (ids and primitives only)."""
    return json.dumps(data, default=str).encode()


def deserialize_job(raw: bytes) -> dict[str, Any]:
    """arq job deserializer, the inverse of `serialize_job`."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("job payload is not an object")
    return data


class JobQueue(Protocol):
    """Runs a creation's job somewhere, once."""

    async def enqueue(self, creation_id: str) -> None: ...

    async def abort(self, creation_id: str) -> None: ...

    async def pending(self, creation_id: str) -> bool:
        """True while the job is queued, running or waiting for a retry."""
        ...

    async def reclaim(self, creation_id: str, *, idle_seconds: float) -> bool:
        """Make a job whose worker died runnable again now; True if it did."""
        ...

    async def position(self, creation_id: str) -> int | None:
        """The job's place among those waiting to start (1 = next), None once it started."""
        ...

    async def aclose(self) -> None: ...


class ArqQueue:
    """Enqueue on the arq queue that `creation-king worker` processes."""

    def __init__(self, redis: ArqRedis, *, job_timeout_seconds: float) -> None:
        self._redis = redis
        self._in_progress_seconds = job_timeout_seconds + 10  # what arq's worker sets

    async def enqueue(self, creation_id: str) -> None:
        """Queue the job; a second enqueue of the same creation is a no-op."""
        try:
            with tracing.span(
                "queue.enqueue", {"creation.id": creation_id}, kind=SpanKind.PRODUCER
            ):
                await self._redis.enqueue_job(
                    JOB_NAME,
                    creation_id,
                    trace=tracing.carrier(),
                    _job_id=keys.job_id(creation_id),
                    _queue_name=keys.JOB_QUEUE,
                )
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise ServiceUnavailable("the job queue is unreachable") from exc

    async def reclaim(self, creation_id: str, *, idle_seconds: float) -> bool:
        """Let arq retry now a job whose worker died: drop its in-progress marker once it
        has been held longer than `idle_seconds` (the caller saw the producer lease lapse).
        Without this a killed worker's job waits for arq's marker to expire (job timeout)."""
        marker = IN_PROGRESS_PREFIX + keys.job_id(creation_id)
        try:
            remaining_ms = int(await self._redis.pttl(marker))
            if remaining_ms < 0:
                return False  # not running (or no expiry: not ours to touch)
            held_for = self._in_progress_seconds - remaining_ms / 1000
            if held_for < idle_seconds:
                return False  # a worker took it just now and may not hold the lease yet
            return bool(await self._redis.delete(marker))
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise ServiceUnavailable("the job queue is unreachable") from exc

    async def position(self, creation_id: str) -> int | None:
        """From arq's queue (a sorted set by start time): its rank among waiting jobs."""
        try:
            rank = await self._redis.zrank(keys.JOB_QUEUE, keys.job_id(creation_id))
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise ServiceUnavailable("the job queue is unreachable") from exc
        return None if rank is None else int(rank) + 1

    async def pending(self, creation_id: str) -> bool:
        """arq keeps the job key from enqueue until the last try ends."""
        try:
            return bool(await self._redis.exists(ARQ_JOB_PREFIX + keys.job_id(creation_id)))
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise ServiceUnavailable("the job queue is unreachable") from exc

    async def abort(self, creation_id: str) -> None:
        """Backstop for the cancel signal: arq cancels the job if it is still running."""
        job = Job(
            keys.job_id(creation_id),
            self._redis,
            _queue_name=keys.JOB_QUEUE,
            _deserializer=deserialize_job,
        )
        with contextlib.suppress(redis_errors.RedisError, TimeoutError):
            await job.abort(timeout=0)

    async def aclose(self) -> None:
        await self._redis.aclose(close_connection_pool=True)


class InlineQueue:
    """Embedded mode: run the job function in this process, at most `concurrency` at once."""

    def __init__(self, job: JobFunction, ctx: dict[str, Any], *, concurrency: int) -> None:
        self._job = job
        self._ctx = ctx
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waiting: list[str] = []  # jobs not started yet, in order

    async def enqueue(self, creation_id: str) -> None:
        """Start the job in the background; a second enqueue of the same creation is a no-op."""
        if creation_id not in self._tasks:
            task = asyncio.create_task(
                self._run(creation_id, tracing.carrier()), name=f"job:{creation_id}"
            )
            self._tasks[creation_id] = task
            task.add_done_callback(lambda _t: self._tasks.pop(creation_id, None))

    async def pending(self, creation_id: str) -> bool:
        return creation_id in self._tasks

    async def position(self, creation_id: str) -> int | None:
        if creation_id not in self._waiting:
            return None
        return self._waiting.index(creation_id) + 1

    async def reclaim(self, creation_id: str, *, idle_seconds: float) -> bool:
        return False  # inline jobs die with the process that would reclaim them

    async def abort(self, creation_id: str) -> None:
        """The runner's cancel signal reaches inline jobs directly; nothing else to do."""

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, creation_id: str, trace: tracing.Carrier) -> None:
        self._waiting.append(creation_id)
        try:
            await self._slots.acquire()
        finally:
            self._waiting.remove(creation_id)
        try:
            ctx = {**self._ctx, "job_try": 1, "job_id": keys.job_id(creation_id)}
            await self._job(ctx, creation_id, trace=trace)
        except Exception:  # the outermost layer of a background job
            log.exception("inline job for creation %s failed", creation_id)
        finally:
            self._slots.release()

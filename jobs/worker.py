"""The arq worker: `creation-king worker` runs long creations queued by any API replica.

Job functions stay thin: they take ids, call the application layer and return a status. The
worker is a `SteadyWorker` (jobs/supervisor.py): a Redis outage pauses its polling, never ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from arq import func
from opentelemetry.trace import SpanKind
from prometheus_client import start_http_server

from jobs.supervisor import SteadyWorker
from resolvers.core import keys, metrics, tracing
from resolvers.core.settings import Settings
from resolvers.resources import open_core
from resolvers.streaming.queue import JOB_NAME, deserialize_job, serialize_job

log = logging.getLogger(__name__)


async def run_creation(
    ctx: dict[str, Any], creation_id: str, trace: dict[str, str] | None = None
) -> str | None:
    """Produce a queued creation's events; arq retries it if the worker stops midway.

    `trace` is the enqueuing operation's trace context: the job's span continues it.
    """
    began = time.monotonic()
    outcome = "error"
    try:
        with tracing.span(
            f"job {JOB_NAME}",
            {"creation.id": creation_id, "job.try": int(ctx.get("job_try") or 1)},
            kind=SpanKind.CONSUMER,
            parent=tracing.extract(trace),
        ):
            status = await ctx["runner"].run(creation_id)
        outcome = "skipped" if status is None else status.value
        return None if status is None else str(status.value)
    except asyncio.CancelledError:
        outcome = "interrupted"
        raise
    finally:
        metrics.JOB_SECONDS.labels(outcome).observe(time.monotonic() - began)


async def _startup(ctx: dict[str, Any]) -> None:
    if "runner" in ctx:
        return  # the caller handed in open resources (tests sharing their process)
    settings: Settings = ctx["settings"]
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port)  # a thread serving /metrics
    tracing.configure(enabled_by_settings=settings.tracing, service="creation-king-worker")
    stack = contextlib.AsyncExitStack()
    core = await stack.enter_async_context(open_core(settings))
    ctx["stack"], ctx["runner"] = stack, core.runner
    log.info("worker ready: engine=%s queue=%s", core.engine.name, keys.JOB_QUEUE)


async def _shutdown(ctx: dict[str, Any]) -> None:
    stack: contextlib.AsyncExitStack | None = ctx.get("stack")
    if stack is not None:
        await stack.aclose()


def create_worker(settings: Settings, **overrides: Any) -> SteadyWorker:
    """An arq Worker for our queue; call inside a running loop (tests pass burst=True)."""
    if not settings.redis_url:
        raise ValueError("the worker needs CK_REDIS_URL (embedded mode runs jobs in-process)")
    options: dict[str, Any] = {
        "functions": [
            func(
                run_creation,
                name=JOB_NAME,
                timeout=settings.job_timeout_seconds,
                max_tries=settings.job_max_tries,
            )
        ],
        "redis_url": settings.redis_url,
        # As the runner's own client (resolvers/resources.py): a silent network fails a poll
        # in time instead of hanging it; the worker then waits for Redis and polls again.
        "redis_options": {
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "health_check_interval": 30,
        },
        "queue_name": keys.JOB_QUEUE,
        "on_startup": _startup,
        "on_shutdown": _shutdown,
        "ctx": {"settings": settings},
        "job_serializer": serialize_job,
        "job_deserializer": deserialize_job,
        "allow_abort_jobs": True,
        "max_jobs": settings.max_concurrent_jobs,
        "health_check_interval": 30,
        "keep_result": 300,
        "job_completion_wait": 30,
    }
    options.update(overrides)
    return SteadyWorker(**options)


async def serve(settings: Settings) -> None:
    """`creation-king worker`: run jobs until SIGTERM or SIGINT, which let running jobs end
    for `job_completion_wait` seconds. A Redis outage pauses the worker; it never ends it."""
    worker = create_worker(settings)
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        # arq's signal handler cancels the run after draining: a clean stop.
        log.info("worker stopped")
    finally:
        await worker.close()

"""One bounded pool for CPU-heavy work: image and audio probing, argon2 hashing.

Pillow and argon2-cffi release the GIL in their C code, so a few threads keep the event loop
(and `/healthz`) answering while they work. At most `workers` jobs run and `queue` more wait;
past that `run` refuses at once with ServiceUnavailable (retryable) instead of piling up
memory (argon2 takes its memory cost per hash, an image up to 64 MiB). The process's pool is
made on first use, never at import (`shared()`), and again in a forked child; tests build
their own `CpuPool`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, TypeVarTuple, Unpack

from resolvers.core.errors import ServiceUnavailable

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

DEFAULT_WORKERS = min(2, os.cpu_count() or 1)
DEFAULT_QUEUE = 32  # jobs waiting for a worker: about 5 s of argon2 or image work at most


class CpuPool:
    """A fixed thread pool with a bounded number of jobs admitted (running plus waiting)."""

    def __init__(self, *, workers: int = DEFAULT_WORKERS, queue: int = DEFAULT_QUEUE) -> None:
        self.workers, self.queue = workers, queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="ck-cpu")
        # A thread semaphore, taken without blocking: safe from any event loop or thread.
        self._slots = threading.BoundedSemaphore(workers + queue)

    async def run(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """`fn(*args)` on a pool thread; ServiceUnavailable when the pool is full."""
        if not self._slots.acquire(blocking=False):
            raise ServiceUnavailable("the server is busy; retry in a few seconds")
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        # The slot is freed when the job ends, not when its caller gives up: a caller that
        # disconnects must not make room for more work than the pool bounds.
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()  # still waiting for a thread: drop it
            raise

    def close(self) -> None:
        """Stop the threads once the jobs already admitted have finished."""
        self._executor.shutdown(wait=False, cancel_futures=False)


_shared: CpuPool | None = None
_lock = threading.Lock()


def shared() -> CpuPool:
    """This process's pool, made on first use (threads, not a client: nothing to open)."""
    global _shared  # noqa: PLW0603 (made lazily, once per process, by design)
    with _lock:
        if _shared is None:
            _shared = CpuPool()
        return _shared


def _forget_in_child() -> None:
    global _shared  # noqa: PLW0603
    _shared = None  # a forked child has none of the parent's threads: it makes its own


os.register_at_fork(after_in_child=_forget_in_child)


async def run(fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
    """`fn(*args)` in this process's pool; ServiceUnavailable (retryable) when it is full."""
    return await shared().run(fn, *args)

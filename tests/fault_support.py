"""Fault injection for tests/test_faults.py.

- `TcpProxy`: forwards a local port to a service; it can cut every connection and refuse new
  ones, or stall (hold connections open and forward nothing), then restore.
- `Blackhole`: a TCP server that accepts connections and never answers.
- `SilentGrpc`: a gRPC server that accepts every call and never answers (a hung Triton).
- `kill_clients`: `CLIENT KILL` one Redis database's connections.
- `spawned` / `stop`: `creation-king` subprocesses in their own process group.
- `eventually`: poll a condition with a deadline instead of sleeping.
- `KnownBug`: what a test raises when a known bug breaks it (`xfail(raises=KnownBug)`), so
  that any other failure of the same test is still reported as a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped]  # grpcio ships no type hints
from redis.asyncio import Redis

T = TypeVar("T")


class KnownBug(AssertionError):
    """An assertion that a known, reported bug breaks."""


def expect_fixed(ok: bool, message: str) -> None:
    """Assert `ok`; a failure is the known bug `message` describes."""
    if not ok:
        raise KnownBug(message)


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float, interval: float = 0.05
) -> T:
    """The first truthy result of `check()`, polled every `interval` s; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {result!r})")
        await asyncio.sleep(interval)


class TcpProxy:
    """Forwards 127.0.0.1:`port` to an upstream service.

    `cut()` aborts every forwarded connection (both sides) and closes the port, so new
    connections are refused; `stall()` keeps everything open but forwards nothing, as a network
    path that silently drops packets; `restore()` drops whatever a stall held and listens on
    the same port again. `held_bytes` counts requests swallowed while stalled.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.stalled = False
        self.held_bytes = 0

    async def __aenter__(self) -> TcpProxy:
        await self._listen()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cut()

    async def cut(self) -> None:
        """Stop listening and abort every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stall(self) -> None:
        """Forward nothing from now on, in either direction; keep accepting connections."""
        self.held_bytes = 0
        self.stalled = True

    async def restore(self) -> None:
        """Forward again; connections held through a stall are out of step and dropped."""
        if self.stalled:
            await self.cut()
            self.stalled = False
        if self._server is None:
            await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.stalled:
            self._spawn(self._pipe(reader, None, (writer,)))
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        self._spawn(self._pipe(reader, up_writer, (writer, up_writer)))
        self._spawn(self._pipe(up_reader, writer, (writer, up_writer), upstream=False))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        target: asyncio.StreamWriter | None,
        ends: tuple[asyncio.StreamWriter, ...],
        *,
        upstream: bool = True,
    ) -> None:
        try:
            while data := await source.read(65536):
                if self.stalled or target is None:
                    if upstream:
                        self.held_bytes += len(data)
                    continue
                target.write(data)
                await target.drain()
        except (ConnectionError, OSError):
            pass
        # One side closed: close the other, as a real network path would.
        for end in ends:
            end.transport.abort()


class Blackhole:
    """A TCP server on 127.0.0.1 that accepts connections, reads, and never answers."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.accepted = 0

    async def __aenter__(self) -> Blackhole:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(65536):
                pass


class SilentGrpc:
    """A gRPC server on 127.0.0.1 that accepts every call and never answers it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.port = 0
        self._server: Any = None

    async def __aenter__(self) -> SilentGrpc:
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((_Unanswered(self.calls),))
        self.port = int(self._server.add_insecure_port("127.0.0.1:0"))
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop(grace=None)


class _Unanswered(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, calls: list[str]) -> None:
        self._calls = calls

    def service(self, details: Any) -> Any:
        self._calls.append(details.method)
        if details.method.endswith("StreamInfer"):
            return grpc.stream_stream_rpc_method_handler(_never)
        return grpc.unary_unary_rpc_method_handler(_never)


async def _never(_request: Any, _context: Any) -> None:
    await asyncio.Event().wait()


async def kill_clients(admin: Redis, *, db: int, kind: str) -> int:
    """`CLIENT KILL ... TYPE kind SKIPME yes` for every connection of `kind` (pubsub or
    normal) on database `db`; the number killed. By id, not server-wide: other test runs
    share this Redis server on other databases."""
    killed = 0
    clients: list[dict[str, Any]] = await admin.client_list(_type=kind)
    for client in clients:
        if int(client["db"]) == db:
            killed += int(await admin.client_kill_filter(_id=client["id"], _type=kind, skipme=True))
    return killed


@contextlib.contextmanager
def spawned(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess in its own process group, output to `log`; stopped on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> None:
    """Send `sig` to the process group (SIGKILL after 15 s) and reap the process."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(15)

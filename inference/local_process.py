"""A llama.cpp model in a child process of its own: the API's Python never waits for its GIL.

In a thread of the API process, the model's Python (its sampler and detokenizer, between
llama.cpp's C calls) and the event loop took turns on one GIL: a loop busy admitting a
request held the model up to the interpreter's switch interval (5 ms) at a time, and the
model held the loop that should send its first token. Measured on 2 cores, the first token
came 7-14 ms later than llama.cpp called directly. A process has its own GIL.

`ModelProcess` owns one child (a new interpreter, never a fork of a process with threads)
holding one llama.cpp context, one generation at a time. Parent and child speak over a
socket pair (`multiprocessing.connection.Connection`), in small pickled tuples:

- parent -> child: `("load", callable)` first, then `("generate", id, GenerationRequest)`,
  `("stop", id)`, `("exit",)`;
- child -> parent: `("ready", None)` once loaded (or `("error", exc)`), then per generation
  `(id, kind, value)` with the kinds of `local._generate`: "prompt", "text"..., then "end"
  or "error".

The event loop reads the socket with `add_reader`: no thread of ours in the parent. A child
that dies (killed, out of memory) ends its generation with ModelUnavailable; the engine
starts another for the next request. The child ignores SIGINT (the parent's Ctrl-C reaches
the whole process group) and leaves when the parent asks, or when the socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from inference.base import GenerationRequest, InferenceError, ModelUnavailable

log = logging.getLogger(__name__)
_ROOT = str(Path(__file__).resolve().parent.parent)  # where `inference` is, for the child
_READY_TIMEOUT_S = 120.0  # spawning, importing llama.cpp and reading 98 MB
_STOP_GRACE_S = 30.0  # a stopped generation ends after its current token; then it is killed


class ModelProcess:
    """One child process with one loaded model. Made by `start` (blocking: call it in a
    thread); used from one event loop."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self._process = process
        self._conn = conn
        self._ids = 0
        self._items: deque[tuple[str, Any]] = deque()
        self._current = 0  # the id of the generation being read, 0 between generations
        self._ready = asyncio.Event()
        self._dead = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def start(cls, load: Callable[[], Any]) -> ModelProcess:
        """Start a child that calls `load()` (a picklable callable returning the model) and
        wait until it is ready; ModelUnavailable (or `load`'s InferenceError) if it is not.

        A plain `python -m inference.local_process`, not multiprocessing's spawn: spawn runs
        the parent's main module again in the child (the `creation-king` script, and with it
        the whole API), where this child needs only `inference`."""
        ours, theirs = socket.socketpair()
        path = os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "inference.local_process", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": path},
            )
        except OSError as exc:
            ours.close()
            raise ModelUnavailable(f"the local model process did not start: {exc}") from exc
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        try:
            conn.send(("load", load))
            if not conn.poll(_READY_TIMEOUT_S):
                raise ModelUnavailable("the local model process did not start in time")
            kind, value = conn.recv()
        except (EOFError, OSError) as exc:
            kind, value = "error", ModelUnavailable(f"the local model process died: {exc}")
        except ModelUnavailable as exc:
            kind, value = "error", exc
        if kind != "ready":
            conn.close()
            process.kill()
            process.wait(5)
            raise value if isinstance(value, InferenceError) else ModelUnavailable(str(value))
        return cls(process, conn)

    @property
    def alive(self) -> bool:
        return not self._dead and self._process.poll() is None

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[tuple[str, Any], None]:
        """The child's ("prompt" | "text" | "end" | "error", value) items for `request`, in
        order, ending with "end" or "error". Closing the iterator early stops the model
        after its current token, and waits for that."""
        self._attach()
        self._ids += 1
        job = self._current = self._ids
        self._items.clear()
        ended = False
        try:
            self._send(("generate", job, request))
            while True:
                for kind, value in self._drain():
                    if kind in ("end", "error"):
                        ended = True
                    yield kind, value
                    if ended:
                        return
                self._ready.clear()
                await self._ready.wait()
        finally:
            if not ended and self._current == job:
                await self._stop(job)
            if self._current == job:
                self._current = 0

    def close(self) -> None:
        """Ask the child to leave; kill it if it does not at once (it is idle or stopping)."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._conn.fileno())
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(("exit",))
        self._conn.close()
        try:
            self._process.wait(1)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._dead = True

    def _attach(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            loop.add_reader(self._conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self._conn.poll():
                message = self._conn.recv()
                if message[0] == self._current:
                    self._items.append((message[1], message[2]))
        except (EOFError, OSError):
            self._died()
        except Exception:  # a message that does not decode: this child is not to be trusted
            log.exception("local model process sent a broken message; stopping it")
            self._process.kill()
            self._died()
        self._ready.set()

    def _died(self) -> None:
        self._dead = True
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._conn.fileno())
        if self._current:
            error = ModelUnavailable("the local model process died; the next request restarts it")
            self._items.append(("error", error))

    def _drain(self) -> list[tuple[str, Any]]:
        items = list(self._items)
        self._items.clear()
        if not items and self._dead and self._current:
            self._died()  # the reader saw the end before this generation began
            items = list(self._items)
            self._items.clear()
        return items

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._conn.send(message)
        except (OSError, ValueError):
            self._died()
            self._ready.set()

    async def _stop(self, job: int) -> None:
        """Stop generation `job` and wait for its end, so that the next one starts clean; a
        child that does not end it in time is killed."""
        if self._dead:
            return
        self._send(("stop", job))
        try:
            async with asyncio.timeout(_STOP_GRACE_S):
                while not self._dead:
                    if any(kind in ("end", "error") for kind, _value in self._drain()):
                        return
                    self._ready.clear()
                    await self._ready.wait()
        except TimeoutError:
            log.warning("local model process did not stop a generation; killing it")
            self.close()


def _serve(conn: Connection) -> None:
    """The child: load the model, then run one generation at a time until told to leave."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from inference.local import generate_into  # the child's own import of the engine

    try:
        _kind, load = conn.recv()
        model = load()
    except InferenceError as exc:
        conn.send(("error", exc))
        return
    except Exception as exc:
        conn.send(("error", ModelUnavailable(f"the local text model did not load: {exc}")))
        return
    conn.send(("ready", None))
    requests: queue.SimpleQueue[tuple[int, GenerationRequest] | None] = queue.SimpleQueue()
    stops: dict[int, threading.Event] = {}
    lock = threading.Lock()

    def listen() -> None:  # the only reader of the socket
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = ("exit",)
            if message[0] == "generate":
                with lock:
                    stops[message[1]] = threading.Event()
                requests.put((message[1], message[2]))
            elif message[0] == "stop":
                with lock:
                    stop = stops.get(message[1])
                if stop is not None:
                    stop.set()
            else:
                with lock:
                    for stop in stops.values():
                        stop.set()
                requests.put(None)
                return

    threading.Thread(target=listen, name="model-control", daemon=True).start()
    while (job := requests.get()) is not None:
        job_id, request = job
        with lock:
            stop = stops[job_id]

        def send(kind: str, value: Any, job_id: int = job_id) -> None:
            conn.send((job_id, kind, value))

        try:
            generate_into(model, request, stop, send)
        except (OSError, ValueError):
            return  # the parent is gone
        finally:
            with lock:
                stops.pop(job_id, None)


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))

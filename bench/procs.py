"""Subprocesses of the bench: start, wait until they serve, measure their CPU, always stop.

Every server runs in its own process group (so a Ctrl-C in the terminal reaches only the bench,
which then stops them in order) and, on Linux, dies with the bench even if the bench is killed
(PR_SET_PDEATHSIG). Output goes to a log file whose tail is shown when a server fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

import httpx

STOP_TIMEOUT = 15.0
_PR_SET_PDEATHSIG = 1
_TAIL_CHARS = 4_000


class StartError(RuntimeError):
    """A server exited or did not become ready; the message ends with its log tail."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Server:
    """A server subprocess listening on 127.0.0.1:`port`; `stop()` ends its process group."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.name = name
        self.process = process
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/graphql"

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def log_tail(self) -> str:
        """The end of what the server printed."""
        try:
            return self.log.read_text(errors="replace")[-_TAIL_CHARS:]
        except OSError:
            return "(no log)"

    def wait_ready(self, probe: Callable[[httpx.Client], bool], timeout: float = 30.0) -> None:
        """Poll `probe` until it returns True; StartError if the process exits or times out."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise StartError(
                        f"{self.name} exited with code {self.process.returncode}; log tail:\n"
                        f"{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if probe(client):
                        return
                time.sleep(0.1)
        raise StartError(f"{self.name} not ready after {timeout} s; log tail:\n{self.log_tail()}")

    def stop(self, grace: float = STOP_TIMEOUT) -> None:
        """SIGTERM (graceful), then SIGKILL the whole group after `grace` seconds."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def serve_command(port: int, log_level: str = "warning") -> list[str]:
    """`creation-king serve` of this venv on 127.0.0.1:`port`."""
    executable = str(Path(sys.executable).with_name("creation-king"))
    return [executable, "serve", "--port", str(port), "--log-level", log_level]


def start_server(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    cwd: Path,
    log_dir: Path,
) -> Server:
    """Start `command` (which must listen on `port`) with `env`, output to log_dir/name.log."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
    return Server(name, process, port, log)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by `pids` (Linux /proc; 0 for vanished ones)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces; fields after it are space-separated.
        fields = raw.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by `pid` and its live descendants (a server and
    its local model processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])  # field 4, ppid
    tree, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return cpu_seconds(sorted(tree))


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds used so far by the live processes of process group `pgid`
    (Triton: the launcher, tritonserver and its Python backend stubs)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5, pgrp
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot, all cores (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a subprocess is started and registered for cleanup.

    A signal arriving inside the block is re-raised as KeyboardInterrupt when it ends, so no
    child can be started without its stop callback being in place. Python-level handlers are
    reset by exec, so children still get default signal handling.
    """
    received: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks stop every subprocess."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)

"""Start and stop the local Triton test server (`tests/triton/server.py`); stdlib only.

The server runs from `.venv-triton` (made by `tests/triton/setup.sh` with Debian's Python),
never from the project's venv, in its own process group so that stopping it also stops the
`tritonserver` and Python backend processes PyTriton starts under it.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path
from types import TracebackType

READY_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
_TAIL_LINES = 60


class TritonStartError(RuntimeError):
    """The server exited or did not print READY in time; the message ends with its log tail."""


def triton_python(repo_root: Path) -> Path:
    """The interpreter of the Triton venv."""
    return Path(repo_root) / ".venv-triton" / "bin" / "python"


def triton_available(repo_root: Path) -> str | None:
    """None when the Triton server can be started, else why not."""
    python = triton_python(repo_root)
    if not python.exists():
        return f"{python} is missing (run tests/triton/setup.sh to create it)"
    return None


class TritonProcess:
    """A running server: `url` is its gRPC "host:port"; `stop()` ends its process group."""

    def __init__(self, process: subprocess.Popen[str], url: str, http_port: int) -> None:
        self.process = process
        self.url = url
        self.http_url = f"127.0.0.1:{http_port}"
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._settled = threading.Event()
        self._ready = False
        self._reader = threading.Thread(target=self._read_output, name="triton-log", daemon=True)
        self._reader.start()

    def log_tail(self) -> str:
        """The last lines the server printed (stdout and stderr)."""
        return "".join(self._tail)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Block until the server prints READY; stop it and raise TritonStartError if not."""
        self._settled.wait(timeout)
        if self._ready:
            return
        code = self.process.poll()
        self.stop()
        why = f"exited with code {code}" if code is not None else f"not ready after {timeout} s"
        raise TritonStartError(f"Triton test server {why}; log tail:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the server (it stops Triton cleanly), then SIGKILL whatever is left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_TIMEOUT)
        # The group outlives its leader while tritonserver or a backend stub still runs.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._reader.join(STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> TritonProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _read_output(self) -> None:
        # Draining the pipe also keeps Triton's chatty log from filling it and blocking.
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._tail.append(line)
            # tritonserver writes to the same pipe, so the marker may follow part of its line.
            if "READY grpc=" in line:
                self._ready = True
                self._settled.set()
        self._settled.set()


def start_triton(
    repo_root: Path, *, token_delay: float | None = None, timeout: float = READY_TIMEOUT
) -> TritonProcess:
    """Start `tests/triton/server.py` on free ports and wait until it serves."""
    repo_root = Path(repo_root)
    grpc_port, http_port, metrics_port = _free_ports(3)
    command = [
        str(triton_python(repo_root)),
        "-u",
        str(repo_root / "tests" / "triton" / "server.py"),
        f"--grpc-port={grpc_port}",
        f"--http-port={http_port}",
        f"--metrics-port={metrics_port}",
    ]
    if token_delay is not None:
        command.append(f"--token-delay={token_delay}")
    env = dict(os.environ)
    # The server's interpreter must see only its own venv, not the test runner's paths.
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    process = subprocess.Popen(
        command,
        cwd=repo_root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    server = TritonProcess(process, f"127.0.0.1:{grpc_port}", http_port)
    server.wait_ready(timeout)
    return server


def _free_ports(count: int) -> list[int]:
    # Held open together so the ports differ; another process could still take one before
    # Triton binds it, which then shows up as a start failure with the log tail.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()

"""Fixtures of the client suite: the npm packages, a server for the clients, Node scripts.

The scripts beside this file (`*.mjs`) each drive one real client against a server this suite
starts, and print one JSON line: `{"client", "ok", "steps": {...}}`, plus `failedStep` and
`error` when a step failed (also on their stderr). `run_node` fails the test with all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from resolvers.core.settings import Settings
from schema.app import create_app
from tests.conftest import REQUIRED, Server, free_port

CLIENTS = Path(__file__).resolve().parent
ARTIFACTS = CLIENTS / "artifacts"
NODE_TIMEOUT = 150.0  # seconds; each script also gives up on its own before this
# The dev engine's pace: slow enough that a 2,000-token write is still running when cancelled,
# fast enough that a short one ends in well under a second.
DEV_TOKEN_DELAY = 0.01


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clients: drives real GraphQL clients (Node, a browser)")


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/clients/node_modules from the committed lockfile (`npm ci` when missing or stale)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.fail(
            "tests/clients needs Node.js 20+ and npm on PATH (Debian: apt-get install nodejs npm, "
            "or https://nodejs.org); they install the clients with `npm ci` from "
            "tests/clients/package-lock.json"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    if major < 20:
        pytest.fail(f"tests/clients needs Node.js 20 or later, found {version.stdout.strip()}")
    installed = CLIENTS / "node_modules" / ".package-lock.json"
    lockfile = CLIENTS / "package-lock.json"
    # One `npm ci` at a time for this checkout, should two test sessions start together.
    key = hashlib.sha256(str(CLIENTS).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"ck-npm-ci-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.exists() or installed.stat().st_mtime < lockfile.stat().st_mtime:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
                check=False,
                cwd=CLIENTS,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                pytest.fail(
                    f"`npm ci` in tests/clients failed (exit {done.returncode}):\n"
                    f"{done.stdout}\n{done.stderr}"
                )
    return CLIENTS / "node_modules"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (`.ci/run` installs it); playwright-core never downloads a browser."""
    path = os.environ.get("CK_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists():
        message = f"no chromium at {path}: apt-get install -y chromium (or set CK_CHROMIUM)"
        if REQUIRED:
            pytest.fail(f"{message} (CK_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def page_origin(node_modules: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """tests/clients/page with graphql-ws's browser build, served from its own port."""
    site = tmp_path_factory.mktemp("page")
    for item in (CLIENTS / "page").iterdir():
        shutil.copy(item, site / item.name)
    shutil.copy(node_modules / "graphql-ws" / "umd" / "graphql-ws.min.js", site)
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="page-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
async def api(settings: Settings, page_origin: str) -> AsyncIterator[Server]:
    """The API on real Postgres and Redis; the page's origin is its one allowed browser origin."""
    changed = settings.model_copy(
        update={"dev_token_delay": DEV_TOKEN_DELAY, "allowed_origins": [page_origin]}
    )
    async with Server(create_app(changed)) as running:
        yield running


@pytest.fixture
def artifact() -> Callable[[str], Path]:
    """`artifact(name)`: a path under tests/clients/artifacts/ (git-ignored) for test output."""

    def path(name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        return ARTIFACTS / name

    return path


async def run_node(
    script: str,
    *args: str,
    env: dict[str, str] | None = None,
    node_options: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run tests/clients/<script>; return its JSON result, or fail naming the step that failed."""
    process = await asyncio.create_subprocess_exec(
        "node",
        *node_options,
        str(CLIENTS / script),
        *args,
        cwd=CLIENTS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        async with asyncio.timeout(NODE_TIMEOUT):
            stdout_bytes, stderr_bytes = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        stdout_bytes, stderr_bytes = await process.communicate()
        pytest.fail(
            f"{script}: no result in {NODE_TIMEOUT:.0f} s, killed\n"
            f"--- stderr ---\n{stderr_bytes.decode()}\n--- stdout ---\n{stdout_bytes.decode()}"
        )
    stdout, stderr = stdout_bytes.decode(), stderr_bytes.decode()
    if stderr:
        print(f"--- {script} stderr ---\n{stderr}")
    result = _last_json_line(stdout)
    if process.returncode != 0 or result is None or not result.get("ok"):
        step = result.get("failedStep", "?") if result else "?"
        client = result.get("client", script) if result else script
        pytest.fail(
            f"{client}: step '{step}' failed (node {script} exited {process.returncode})\n"
            f"--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}",
            pytrace=False,
        )
    return result


def _last_json_line(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                parsed: dict[str, Any] = json.loads(line)
                return parsed
    return None

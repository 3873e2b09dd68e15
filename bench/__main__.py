"""`python -m bench`: streaming overhead, concurrent streams, query throughput, fan-out and
idle memory of subscriptions, each as a ratio to a baseline measured in the same run.

One run on one machine: a throwaway Postgres database and Redis db index, the local Triton
(tests/triton) with a fixed token delay, `creation-king serve` subprocesses in production mode
(CK_ENGINE=triton), the bare Strawberry app of `bench.bare_app` and the raw websocket broadcast
of `bench.broadcast_app`. Every subprocess is stopped and the database dropped at the end, also
on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench import concurrency, fanout, report, targets, throughput, ttft
from bench.procs import (
    Server,
    deferred_interrupts,
    free_port,
    interrupt_on_sigterm,
    machine_cpu_seconds,
    start_server,
)
from bench.services import (
    Services,
    backend_pids,
    create_database,
    drop_database,
    migrate,
    server_env,
)
from inference.triton import TritonConfig, TritonEngine
from tests.triton.harness import start_triton, triton_available

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
REGISTER = """
mutation Register($email: String!, $password: String!) {
  register(input: {email: $email, password: $password}) {
    __typename ... on AuthSession { accessToken } ... on Error { code message }
  }
}
"""
START_REPORT = """
mutation R($input: ReportInput!) {
  report(input: $input) { __typename ... on Creation { id status } ... on Error { code message } }
}
"""
ME = "{ me { id } }"
TYPENAME = "{ __typename }"
HELLO = "{ hello }"
T = TypeVar("T")
BUSY_LOAD = 0.7  # 1-minute load average above which the machine is not idle
BUSY_OTHER = 0.25  # CPU share (of one core) of foreign processes that makes a load run noisy
# The fan-out server lets one user hold every bench socket.
FANOUT_ENV = {"CK_MAX_SUBSCRIPTIONS_PER_USER": "10000"}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs, shorter load phases")
    parser.add_argument("--runs", type=int, help="paired streaming runs (default 30, quick 10)")
    parser.add_argument("--warmup-runs", type=int, default=3, help="discarded streaming pairs")
    parser.add_argument("--tokens", type=int, default=64, help="maxTokens of each stream")
    parser.add_argument("--token-delay", type=float, default=0.005, help="Triton s per token")
    parser.add_argument("--concurrency", type=int, default=32, help="load generator clients")
    parser.add_argument("--duration", type=float, help="measured s per load run (5, quick 2)")
    parser.add_argument("--load-warmup", type=float, help="warm-up s per load run (1.5/0.5)")
    parser.add_argument("--streams", type=int, default=64, help="concurrent streams")
    parser.add_argument(
        "--stream-tokens", type=int, help="maxTokens of each concurrent stream (64, quick 32)"
    )
    parser.add_argument("--rounds", type=int, help="concurrent-stream rounds per side (2, quick 1)")
    parser.add_argument("--subscribers", type=int, default=1000, help="fan-out sockets")
    parser.add_argument("--events", type=int, help="fan-out events (20, quick 5)")
    parser.add_argument(
        "--fanout-poll",
        type=float,
        default=30.0,
        help="CK_FOLLOW_POLL_SECONDS of the fan-out server (production default: 1)",
    )
    parser.add_argument("--idle", type=int, help="idle subscriptions for memory (500/200)")
    parser.add_argument("--idle-settle", type=float, help="s idle before RSS is read (2/1.2)")
    parser.add_argument(
        "--no-unbatched",
        action="store_true",
        help="skip the extra stack run with CK_BATCH_INTERVAL_MS=0 (skipped by --quick)",
    )
    parser.add_argument(
        "--server-log-level",
        default="warning",
        help="uvicorn log level of both servers; `info` adds an access-log line per request",
    )
    parser.add_argument("--json-dir", type=Path, default=RESULTS, help="where to write JSON")
    parser.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    args = parser.parse_args(argv)
    args.runs = args.runs or (10 if args.quick else 30)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.load_warmup = (
        args.load_warmup if args.load_warmup is not None else (0.5 if args.quick else 1.5)
    )
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.stream_tokens = args.stream_tokens or (32 if args.quick else 64)
    args.events = args.events or (5 if args.quick else 20)
    args.idle = args.idle or (200 if args.quick else 500)
    args.idle_settle = args.idle_settle or (1.2 if args.quick else 2.0)
    args.unbatched = not (args.no_unbatched or args.quick)
    if args.quick:
        args.warmup_runs = min(args.warmup_runs, 2)
    return args


class Bench:
    """One bench run: owns every subprocess through `cleanup` (an ExitStack)."""

    def __init__(self, args: argparse.Namespace, cleanup: contextlib.ExitStack, logs: Path):
        self.args = args
        self.cleanup = cleanup
        self.logs = logs
        here = Path(sys.executable).parent
        self.venv_bin = here if (here / "creation-king").exists() else REPO / ".venv" / "bin"
        self.started = time.monotonic()
        self.services: Services | None = None
        self.triton_url = ""
        self.triton_pgid = 0

    def on_exit(self, stop: Callable[[], object]) -> None:
        """Register a cleanup step that a second Ctrl-C cannot cut short."""

        def run() -> None:
            with deferred_interrupts():
                stop()

        self.cleanup.callback(run)

    def say(self, message: str) -> None:
        """Progress on stderr, with the elapsed time."""
        print(f"[{time.monotonic() - self.started:6.1f} s] {message}", file=sys.stderr, flush=True)

    # -- setup --------------------------------------------------------------------------

    def start_services(self) -> None:
        """Bench database (migrated), Redis db index and the local Triton."""
        with deferred_interrupts():
            services = asyncio.run(create_database())
            self.on_exit(lambda: asyncio.run(drop_database(services)))
        self.services = services
        self.say(f"database {services.database_name} created; Redis {services.redis_url}")
        # Migrations need only the database: they run while Triton starts.
        env = server_env(services, triton_url="127.0.0.1:1")
        with ThreadPoolExecutor(max_workers=1) as pool:
            migrated = pool.submit(migrate, self.venv_bin, env, REPO)
            with deferred_interrupts():
                triton = start_triton(REPO, token_delay=self.args.token_delay)
                self.on_exit(triton.stop)
            migrated.result()
        self.triton_url, self.triton_pgid = triton.url, triton.process.pid
        self.say(f"Triton ready on {triton.url} (token delay {self.args.token_delay} s)")
        self.say("migrations applied")

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of the servers under test."""
        assert self.services is not None
        return server_env(self.services, self.triton_url, **extra)

    def launch(self, name: str, command: list[str], env: dict[str, str]) -> Server:
        """Start a server subprocess (stopped at exit); `ready()` waits for it."""
        with deferred_interrupts():
            server = start_server(
                name,
                command,
                port=int(command[command.index("--port") + 1]),
                env=env,
                cwd=REPO,
                log_dir=self.logs,
            )
            self.on_exit(server.stop)
        return server

    def ready(self, server: Server) -> Server:
        """Wait until `server` answers its readiness probe (/readyz, or /healthz)."""
        path = "/readyz" if server.name.startswith("full") else "/healthz"
        server.wait_ready(lambda http: http.get(path).status_code == 200)
        self.say(f"{server.name} ready on {server.url} (pid {server.pid})")
        return server

    def launch_full(self, name: str, batch_interval_ms: int, **extra: str) -> Server:
        """`creation-king serve` in production mode."""
        command = [str(self.venv_bin / "creation-king"), "serve", "--host", "127.0.0.1"]
        command += ["--port", str(free_port()), "--log-level", self.args.server_log_level]
        return self.launch(
            name, command, self.env(CK_BATCH_INTERVAL_MS=str(batch_interval_ms), **extra)
        )

    def launch_bare(self) -> Server:
        """The bare Strawberry app, same uvicorn options."""
        command = [sys.executable, "-m", "bench.bare_app", "--host", "127.0.0.1"]
        command += ["--port", str(free_port()), "--log-level", self.args.server_log_level]
        return self.launch("bare", command, self.env())

    def launch_broadcast(self, channel: str) -> Server:
        """The raw websocket broadcast of the Redis `channel`, same uvicorn options."""
        assert self.services is not None
        command = [sys.executable, "-m", "bench.broadcast_app", "--host", "127.0.0.1"]
        command += ["--port", str(free_port()), "--log-level", self.args.server_log_level]
        command += ["--redis", self.services.redis_url, "--channel", channel]
        return self.launch("broadcast", command, self.env())

    @staticmethod
    def start_queued(server: Server, token: str, topic: str) -> str:
        """A `report` creation that stays QUEUED: the bench runs no worker, it plays one."""
        response = httpx.post(
            f"{server.url}/graphql",
            json={"query": START_REPORT, "variables": {"input": {"topic": topic}}},
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
        data = response.json()["data"]["report"]
        if data["__typename"] != "Creation" or data["status"] != "QUEUED":
            raise RuntimeError(f"report failed: {data}")
        creation_id: str = data["id"]
        return creation_id

    @staticmethod
    def register(server: Server) -> str:
        """An access token of a new user, through the `register` mutation."""
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        variables = {"email": email, "password": "bench password"}
        response = httpx.post(
            f"{server.url}/graphql", json={"query": REGISTER, "variables": variables}, timeout=30
        )
        data = response.json()["data"]["register"]
        if data["__typename"] != "AuthSession":
            raise RuntimeError(f"register failed: {data}")
        token: str = data["accessToken"]
        return token

    # -- phases -------------------------------------------------------------------------

    def streaming(self, server: Server, token: str, label: str, batch_ms: int) -> dict[str, Any]:
        """Paired direct/stack streams against `server`."""
        a = self.args
        self.say(f"streaming ({label}): {a.warmup_runs} + {a.runs} pairs of {a.tokens} tokens")

        async def run() -> ttft.StreamingResult:
            engine = TritonEngine(TritonConfig(url=self.triton_url))
            try:
                return await ttft.measure(
                    label=label,
                    engine=engine,
                    ws_url=server.ws_url,
                    token=token,
                    runs=a.runs,
                    warmup=a.warmup_runs,
                    max_tokens=a.tokens,
                    token_delay_s=a.token_delay,
                    batch_interval_ms=batch_ms,
                )
            finally:
                await engine.aclose()

        machine0, t0 = machine_cpu_seconds(), time.monotonic()
        summary = asyncio.run(run()).summary()
        summary["machine_busy_cores"] = (machine_cpu_seconds() - machine0) / (time.monotonic() - t0)
        self.say(
            f"  TTFT p50 direct {summary['ttft']['direct']['p50']:.1f} ms, "
            f"stack {summary['ttft']['stack']['p50']:.1f} ms"
        )
        return summary

    def concurrent(self, server: Server, tokens: list[str]) -> dict[str, Any]:
        """Many streams at once, direct and through `server`."""
        a = self.args
        self.say(
            f"concurrent streams: {a.rounds} round(s) of {a.streams} x {a.stream_tokens} tokens"
        )

        async def run() -> concurrency.ConcurrencyResult:
            engine = TritonEngine(TritonConfig(url=self.triton_url))
            try:
                return await concurrency.measure(
                    engine=engine,
                    ws_url=server.ws_url,
                    tokens=tokens,
                    streams=a.streams,
                    rounds=a.rounds,
                    max_tokens=a.stream_tokens,
                    token_delay_s=a.token_delay,
                    server_pid=server.pid,
                    triton_pgid=self.triton_pgid,
                )
            finally:
                await engine.aclose()

        machine0, t0 = machine_cpu_seconds(), time.monotonic()
        summary = _run_fast(run()).summary()
        summary["machine_busy_cores"] = (machine_cpu_seconds() - machine0) / (time.monotonic() - t0)
        self.say(
            f"  {summary['direct_tokens_per_s']:.0f} tokens/s direct, "
            f"{summary['stack_tokens_per_s']:.0f} through the stack"
        )
        return summary

    def subscriptions(
        self, raw: Server, full: Server, channel: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Idle memory, then fan-out: the raw broadcast app against a fresh full app."""
        assert self.services is not None
        a = self.args
        token = self.register(full)
        try:
            return _run_fast(
                fanout.measure(
                    raw=fanout.Side("raw", "raw", raw.url, raw.pid),
                    stack=fanout.Side("stack", "stack", full.url, full.pid, token),
                    redis_url=self.services.redis_url,
                    channel=channel,
                    quiet_id=self.start_queued(full, token, "a creation nobody produces"),
                    watched_id=self.start_queued(full, token, "a creation the bench produces"),
                    idle=a.idle,
                    settle_s=a.idle_settle,
                    subscribers=a.subscribers,
                    events=a.events,
                    say=self.say,
                )
            )
        finally:
            # Subscriptions left open on the server hold uvicorn's graceful shutdown for
            # its full 10 s; they are counted in the results, so do not wait for them.
            full.stop(grace=2.0)
            raw.stop()

    def load(
        self, server: Server, label: str, query: str, token: str | None = None
    ) -> dict[str, Any]:
        """One closed-loop load run against `server`."""
        a = self.args
        self.say(f"load ({label}): {query} x {a.concurrency} clients, {a.duration} s")
        pids = _postgres_pids(self.services) if label != "bare" else None
        result = _run_fast(
            throughput.drive(
                label=label,
                url=server.url,
                query=query,
                token=token,
                concurrency=a.concurrency,
                warmup_s=a.load_warmup,
                duration_s=a.duration,
                server_pids=[server.pid],
                helper_pids=pids,
            )
        ).summary()
        self.say(f"  {result['rps']:.0f} req/s, p99 {result['latency']['p99']:.1f} ms")
        return result

    def run(self) -> dict[str, Any]:
        """Every phase, in order; returns the JSON-friendly results."""
        self.start_services()
        streaming: list[dict[str, Any]] = []
        loads: list[dict[str, Any]] = []

        # Every server starts now, in parallel; the idle ones cost nothing measurable meanwhile
        # and the fan-out pair is still fresh (no traffic) when its memory is measured.
        channel = f"ck-bench:{uuid.uuid4().hex[:12]}:broadcast"
        fan_env = {**FANOUT_ENV, "CK_FOLLOW_POLL_SECONDS": str(self.args.fanout_poll)}
        servers = [
            self.launch_full("full", batch_interval_ms=40),
            self.launch_bare(),
            self.launch_broadcast(channel),
            self.launch_full("full-fanout", batch_interval_ms=40, **fan_env),
        ]
        full, bare, raw, fan = (self.ready(server) for server in servers)

        token = self.register(full)
        streaming.append(self.streaming(full, token, "batched (default 40 ms)", 40))
        # Two users: each stays under CK_MAX_SUBSCRIPTIONS_PER_USER (50 by default).
        concurrent = self.concurrent(full, [token, self.register(full)])
        loads.append(self.load(full, "full", ME, token))
        loads.append(self.load(full, "full, anonymous", TYPENAME))
        full.stop()
        loads.insert(0, self.load(bare, "bare", HELLO))
        bare.stop()

        if self.args.unbatched:
            unbatched = self.ready(self.launch_full("full-unbatched", batch_interval_ms=0))
            streaming.append(self.streaming(unbatched, token, "unbatched (0 ms)", 0))
            unbatched.stop()

        idle, spread = self.subscriptions(raw, fan, channel)
        return {
            "args": _jsonable(vars(self.args)),
            "streaming": streaming,
            "concurrency": concurrent,
            "throughput": loads,
            "fanout": spread,
            "idle_memory": idle,
        }


def _raise_open_files_limit() -> None:
    """Each fan-out socket is a file descriptor here: use the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65_536, hard)
        )


def _postgres_pids(services: Services | None) -> Callable[[], Awaitable[Sequence[int]]] | None:
    """A probe for the Postgres backends serving the bench database (their CPU is counted)."""
    if services is None:
        return None

    async def pids() -> Sequence[int]:
        return await backend_pids(services)

    return pids


def _run_fast(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when available (a lighter load generator), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench, print the tables, write the JSON; 1 on failure, 130 on Ctrl-C."""
    args = _parse(argv)
    missing = triton_available(REPO)
    if missing:
        print(f"bench: no local Triton: {missing}", file=sys.stderr)
        return 1
    interrupt_on_sigterm()
    _raise_open_files_limit()
    load_before = os.getloadavg()[0]
    if load_before > BUSY_LOAD:
        print(
            f"bench: warning: 1-minute load average is {load_before:.2f} before starting; other "
            "processes share the CPU and the numbers will be noisy",
            file=sys.stderr,
        )
    logs = Path(tempfile.mkdtemp(prefix="ck-bench-logs-"))
    try:
        with contextlib.ExitStack() as cleanup:
            bench = Bench(args, cleanup, logs)
            results = bench.run()
            bench.say("stopping subprocesses")
    except KeyboardInterrupt:
        shutil.rmtree(logs, ignore_errors=True)
        print("bench: interrupted; every subprocess was stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"bench: failed: {exc}\n(server logs in {logs})", file=sys.stderr)
        raise
    shutil.rmtree(logs, ignore_errors=True)
    results["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
    checked = targets.evaluate(results)
    results["targets"] = [t.as_dict() for t in checked]

    print()
    print(report.targets_table(checked))
    print(
        f"Load average (1 min): {load_before:.2f} before, {results['load_average']['after']:.2f} "
        "after\n"
    )
    print(report.headline(results["streaming"], results["throughput"]))
    for summary in results["streaming"]:
        print(report.streaming_table(summary))
    print(report.concurrency_table(results["concurrency"]))
    print(report.throughput_table(results["throughput"], baseline="bare"))
    print(report.fanout_table(results["fanout"]))
    print(report.idle_table(results["idle_memory"]))
    for load in results["throughput"]:
        if load["other_cpu_utilisation"] > BUSY_OTHER:
            print(
                f"warning: other processes used {load['other_cpu_utilisation']:.0%} of a core "
                f"during the {load['label']!r} load run; rerun on a quiet machine",
                file=sys.stderr,
            )
    if not args.no_json:
        path = report.write_json(args.json_dir, results)
        print(f"JSON: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

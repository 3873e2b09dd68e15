"""`python -m bench.upstream`: the gateway against an OpenAI-compatible upstream called directly.

One mock upstream (`bench.upstream_mock`, its own process) streams numbered tokens at D ms per
token (0 = the whole answer in one burst), T tokens per answer. In the same run:

- *direct* (baseline): this process POSTs /v1/chat/completions to the mock and reads the SSE
  stream (httpx + orjson by default; `--direct-client engine` reads it with our own
  `OpenAIEngine`, the aiohttp path the gateway runs);
- *stack*: `subscription { write }` over graphql-transport-ws to one `creation-king serve` in
  production mode (Postgres, Redis db 13, moto's S3, `write` routed to the `openai` backend at
  the mock), one already-open authenticated socket per stream.

Both sides send the same prompt, whose last line `D=<ms> T=<tokens>` sets the pace, and every
text received is compared with the mock's known answer. Sides alternate which goes first;
repetitions are summarised by their median. Times are `time.perf_counter` in this process, in ms
from the moment a request is sent; CPU comes from /proc (the gateway's whole process group).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx
import uvloop
from redis.asyncio import Redis

from bench.procs import (
    Server,
    cpu_seconds,
    deferred_interrupts,
    free_port,
    group_cpu_seconds,
    interrupt_on_sigterm,
    serve_command,
    start_server,
)
from bench.services import PG_ADMIN_URL, Services, drop_database, migrate, server_env
from bench.stats import Summary, ratio
from bench.ttft import StreamRun
from bench.upstream_clients import API_KEY, MODEL, Direct, StackClient, Start
from bench.upstream_mock import answer

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/13"
SETTLE_S = 0.05  # after a stack round, so the gateway's tail work is counted with it
REGISTER = """
mutation Register($email: String!, $password: String!) {
  register(input: {email: $email, password: $password}) {
    __typename ... on AuthSession { accessToken } ... on Error { code message }
  }
}
"""
GOAL_TTFT_P50_MS, GOAL_TTFT_P99_MS, GOAL_RATE, GOAL_CPU_S = 5.0, 15.0, 0.5, 0.15


@dataclass(frozen=True)
class Phase:
    """Rounds of `streams` concurrent streams of `tokens` tokens at `delay_ms` per token."""

    name: str
    delay_ms: int
    tokens: int
    streams: int
    rounds: int


@dataclass
class Side:
    """Every round of one side of a phase in one repetition."""

    runs: list[StreamRun] = field(default_factory=list)
    wall_s: float = 0.0
    gateway_cpu_s: float = 0.0
    mock_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def tokens(self) -> int:
        """Tokens received over all streams."""
        return sum(run.tokens for run in self.runs)


def _prompt(phase: Phase, nonce: str) -> str:
    # A distinct first line per stream: no cache or in-flight sharing between requests.
    return f"bench stream {nonce}\nD={phase.delay_ms} T={phase.tokens}"


async def _round(
    side: Side, starts: Sequence[Start], phase: Phase, *, seed: int, pids: tuple[int, int]
) -> None:
    """`len(starts)` streams at once; adds their runs, wall time and CPU to `side`."""
    gateway, mock = pids
    servers0 = group_cpu_seconds(gateway), cpu_seconds([mock])
    began, client0 = time.perf_counter(), time.process_time()
    runs = await asyncio.gather(
        *(
            start(_prompt(phase, uuid.uuid4().hex[:12]), phase.tokens, seed + i)
            for i, start in enumerate(starts)
        )
    )
    side.wall_s += time.perf_counter() - began
    side.client_cpu_s += time.process_time() - client0
    await asyncio.sleep(SETTLE_S)
    side.gateway_cpu_s += group_cpu_seconds(gateway) - servers0[0]
    side.mock_cpu_s += cpu_seconds([mock]) - servers0[1]
    side.runs.extend(runs)


async def _phase(
    phase: Phase, clients: Sequence[StackClient], direct: Direct, order: int, pids: tuple[int, int]
) -> tuple[Side, Side]:
    """Alternating direct and stack rounds of one phase (which goes first alternates)."""
    d, s = Side(), Side()
    stack_starts = [c.stream for c in clients[: phase.streams]]
    direct_starts = [direct.slot(i) for i in range(phase.streams)]
    for index in range(phase.rounds):
        seed = 1_000 + index * phase.streams
        plan: list[tuple[Side, Sequence[Start]]] = [(d, direct_starts), (s, stack_starts)]
        for side, starts in plan if (index + order) % 2 == 0 else plan[::-1]:
            await _round(side, starts, phase, seed=seed, pids=pids)
    return d, s


def _figures(phase: Phase, d: Side, s: Side) -> dict[str, Any]:
    """The figures of one phase in one repetition."""
    expected = answer(phase.tokens)
    direct_ttft = Summary.of([run.ttft_ms for run in d.runs])
    stack_ttft = Summary.of([run.ttft_ms for run in s.runs])
    messages = sum(len(run.arrivals) for run in s.runs)
    direct_rate, stack_rate = ratio(d.tokens, d.wall_s), ratio(s.tokens, s.wall_s)
    settled = SETTLE_S * phase.rounds
    return {
        "direct_ttft_p50": direct_ttft.p50,
        "stack_ttft_p50": stack_ttft.p50,
        "added_ttft_p50": stack_ttft.p50 - direct_ttft.p50,
        "added_ttft_p99": stack_ttft.p99 - direct_ttft.p99,
        "direct_tokens_per_s": direct_rate,
        "stack_tokens_per_s": stack_rate,
        "rate_ratio": ratio(stack_rate, direct_rate),
        "gateway_cpu_s_per_1k": ratio(s.gateway_cpu_s * 1000, s.tokens),
        # The servers' CPU is read SETTLE_S after each round ends.
        "gateway_cores": ratio(s.gateway_cpu_s, s.wall_s + settled),
        "mock_cores_direct": ratio(d.mock_cpu_s, d.wall_s + settled),
        "mock_cores_stack": ratio(s.mock_cpu_s, s.wall_s + settled),
        "client_cores_direct": ratio(d.client_cpu_s, d.wall_s),
        "client_cores_stack": ratio(s.client_cpu_s, s.wall_s),
        "tokens_per_message": ratio(s.tokens, messages),
        "bad_texts_direct": sum(run.text != expected for run in d.runs),
        "bad_texts_stack": sum(run.text != expected for run in s.runs),
        "streams": len(s.runs),
    }


def _phases(args: argparse.Namespace) -> list[Phase]:
    pairs = args.pairs
    return [
        Phase("D=0 T=200, 1 stream", 0, 200, 1, pairs),
        Phase("D=0 T=1000, 1 stream", 0, 1000, 1, pairs),
        Phase("D=5 T=200, 1 stream", 5, 200, 1, pairs),
        Phase(f"D=5 T=200, {args.streams} streams", 5, 200, args.streams, args.rounds),
        Phase(f"D=0 T=200, {args.streams} streams", 0, 200, args.streams, args.rounds),
    ]


async def _measure(
    args: argparse.Namespace, gateway: Server, mock: Server, token: str
) -> dict[str, list[dict[str, Any]]]:
    """Every phase, `args.repetitions` times; figures per phase and repetition."""
    direct = Direct(f"{mock.url}/v1", args.direct_client, max(1, args.streams))
    clients = await asyncio.gather(
        *(
            StackClient.connect(gateway.ws_url, token, seeded=args.seeded)
            for _ in range(max(1, args.streams))
        )
    )
    pids = (gateway.pid, mock.pid)
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        _say("warm-up")
        for warm in (Phase("warm-up", 0, 200, 1, 4), Phase("warm-up", 0, 50, args.streams, 2)):
            await _phase(warm, clients, direct, 0, pids)
        for rep in range(args.repetitions):
            for phase in _phases(args):
                _say(f"repetition {rep + 1}/{args.repetitions}: {phase.name}")
                d, s = await _phase(phase, clients, direct, rep, pids)
                results.setdefault(phase.name, []).append(_figures(phase, d, s))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
        await direct.aclose()
    return results


# -- setup --------------------------------------------------------------------------------


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _create_database(redis_url: str) -> Services:
    name = f"ck_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    redis = Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        await redis.flushdb()  # this bench's own db index: leftovers of an aborted run
    finally:
        await redis.aclose()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return Services(database_url=f"{base}/{name}", redis_url=redis_url, database_name=name)


def _create_bucket(endpoint: str, bucket: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
    )
    s3.create_bucket(Bucket=bucket)


def register(server: Server) -> str:
    """A new user's access token on `server`."""
    variables = {"email": f"bench-{uuid.uuid4().hex[:12]}@example.com", "password": "bench pw!"}
    response = httpx.post(
        f"{server.url}/graphql", json={"query": REGISTER, "variables": variables}, timeout=30
    )
    data = response.json()["data"]["register"]
    if data["__typename"] != "AuthSession":
        raise RuntimeError(f"register failed: {data}")
    return str(data["accessToken"])


@contextlib.contextmanager
def servers(args: argparse.Namespace, logs: Path) -> Iterator[tuple[Server, Server]]:
    """Database, moto S3, the mock and the gateway; all stopped and dropped on exit."""
    with contextlib.ExitStack() as stack:

        def launch(name: str, command: list[str], port: int, env: dict[str, str]) -> Server:
            with deferred_interrupts():
                server = start_server(name, command, port=port, env=env, cwd=REPO, log_dir=logs)
                stack.callback(server.stop, 5.0)
            return server

        with deferred_interrupts():
            services = asyncio.run(_create_database(args.redis))
            stack.callback(lambda: asyncio.run(drop_database(services)))
        _say(f"database {services.database_name}; Redis {services.redis_url}")
        bin_dir = Path(sys.executable).parent
        s3_port, mock_port = free_port(), free_port()
        s3_cmd = [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)]
        mock_cmd = [sys.executable, "-m", "bench.upstream_mock", "--port", str(mock_port)]
        plain = {k: v for k, v in os.environ.items() if not k.startswith("CK_")}
        moto = launch("moto", s3_cmd, s3_port, plain)
        mock = launch("mock", mock_cmd, mock_port, plain)
        routes = {"write": [{"name": "mock", "backend": "openai", "model": MODEL}]}
        env = server_env(
            services,
            "",
            CK_ENV="production",
            CK_ENGINE="dev",
            CK_S3_BUCKET="creation-king-bench",
            CK_S3_ENDPOINT_URL=moto.url,
            CK_S3_ACCESS_KEY_ID="bench",
            CK_S3_SECRET_ACCESS_KEY="bench-secret",
            CK_METRICS_TOKEN="bench-metrics",
            CK_ROUTES=json.dumps(routes),
            CK_OPENAI_BASE_URL=f"{mock.url}/v1",
            CK_OPENAI_API_KEY=API_KEY,
            **dict(item.split("=", 1) for item in args.server_env),
        )
        env.pop("CK_TRITON_URL")
        moto.wait_ready(lambda http: http.get("/").status_code == 200)
        _create_bucket(moto.url, env["CK_S3_BUCKET"])
        mock.wait_ready(lambda http: http.get("/v1/models").status_code == 200)
        migrate(bin_dir, env, REPO)
        port = free_port()
        gateway = launch("gateway", serve_command(port, args.server_log_level), port, env)
        gateway.wait_ready(lambda http: http.get("/healthz").status_code == 200)
        _say(f"gateway pid {gateway.pid} on {gateway.url}, mock pid {mock.pid} on {mock.url}")
        yield gateway, mock


# -- report -------------------------------------------------------------------------------


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(row[key] for row in rows))


def _goals(results: dict[str, list[dict[str, Any]]], names: list[str]) -> list[str]:
    """Rows of the goals table: (goal, figure, value, PASS/FAIL)."""
    paced, many = names[2], names[3]
    rows: list[tuple[str, str, str, bool]] = []
    for name in names[:3]:
        p50, p99 = (_median(results[name], f"added_ttft_{q}") for q in ("p50", "p99"))
        rows.append(
            (
                f"added TTFT p50 <= {GOAL_TTFT_P50_MS:g} ms",
                name,
                f"{p50:.1f} ms",
                p50 <= GOAL_TTFT_P50_MS,
            )
        )
        rows.append(
            (
                f"added TTFT p99 <= {GOAL_TTFT_P99_MS:g} ms",
                name,
                f"{p99:.1f} ms",
                p99 <= GOAL_TTFT_P99_MS,
            )
        )
    rate, cpu = _median(results[many], "rate_ratio"), _median(results[many], "gateway_cpu_s_per_1k")
    rows.append(
        (f"tokens/s stack / direct >= {GOAL_RATE}x", many, f"{rate:.2f}x", rate >= GOAL_RATE)
    )
    rows.append(
        (f"gateway CPU <= {GOAL_CPU_S} s / 1,000 tokens", many, f"{cpu:.3f} s", cpu <= GOAL_CPU_S)
    )
    one, all_ = (_median(results[name], "tokens_per_message") for name in (paced, many))
    rows.append(
        (
            "tokens/message, N streams >= 1 stream",
            "D=5 T=200",
            f"{all_:.2f} vs {one:.2f}",
            all_ >= one,
        )
    )
    runs = [r for phase in results.values() for r in phase]
    bad = sum(r["bad_texts_direct"] + r["bad_texts_stack"] for r in runs)
    texts = f"{bad} of {sum(2 * r['streams'] for r in runs)} texts wrong"
    rows.append(("no token lost or reordered", "every phase, both sides", texts, bad == 0))
    return [f"| {g} | {f} | {v} | {'PASS' if ok else 'FAIL'} |" for g, f, v, ok in rows]


# (heading, figure keys, format): two keys print as "direct / stack" (or "p50 / p99")
_COLUMNS = (
    ("TTFT p50 ms direct / stack", ("direct_ttft_p50", "stack_ttft_p50"), "{:.1f}"),
    ("added TTFT p50 / p99 ms", ("added_ttft_p50", "added_ttft_p99"), "{:.1f}"),
    ("tokens/s direct / stack", ("direct_tokens_per_s", "stack_tokens_per_s"), "{:,.0f}"),
    ("ratio", ("rate_ratio",), "{:.2f}x"),
    ("gateway CPU s / 1k tokens", ("gateway_cpu_s_per_1k",), "{:.3f}"),
    ("gateway cores", ("gateway_cores",), "{:.2f}"),
    ("tokens / ws message", ("tokens_per_message",), "{:.2f}"),
    ("mock cores direct / stack", ("mock_cores_direct", "mock_cores_stack"), "{:.2f}"),
    ("client cores direct / stack", ("client_cores_direct", "client_cores_stack"), "{:.2f}"),
)


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    """The goals table, then every phase's figures (medians over repetitions)."""
    names = [phase.name for phase in _phases(args)]
    lines = ["| goal | figure | value | met |", "|---|---|---:|---|", *_goals(results, names)]
    lines += ["", "| phase | " + " | ".join(c[0] for c in _COLUMNS) + " |"]
    lines.append("|---|" + "---:|" * len(_COLUMNS))
    for name in names:
        cells = [
            " / ".join(form.format(_median(results[name], key)) for key in keys)
            for _, keys, form in _COLUMNS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 repetition, 8 pairs per phase")
    parser.add_argument("--streams", type=int, default=64, help="concurrent streams (N)")
    parser.add_argument("--repetitions", type=int, help="medians of this many (3; quick 1)")
    parser.add_argument("--pairs", type=int, help="direct/stack pairs per 1-stream phase (20/8)")
    parser.add_argument("--rounds", type=int, default=1, help="pairs per N-stream phase")
    parser.add_argument("--direct-client", choices=("httpx", "engine"), default="httpx")
    parser.add_argument(
        "--seeded",
        action="store_true",
        help="send seeds (reproducible requests: the gateway asks its answer cache before it "
        "starts the model); unseeded by default, as most requests are",
    )
    parser.add_argument("--redis", default=REDIS_URL, help="db index flushed at start and end")
    parser.add_argument("--server-log-level", default="warning")
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="CK_X=V", help="extra gateway env"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    args.repetitions = args.repetitions or (1 if args.quick else 3)
    args.pairs = args.pairs or (8 if args.quick else 20)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench, print the tables; 130 on Ctrl-C."""
    args = _parse(argv)
    interrupt_on_sigterm()
    load_start = os.getloadavg()
    logs = Path(tempfile.mkdtemp(prefix="ck-bench-upstream-"))
    try:
        with servers(args, logs) as (gateway, mock):
            token = register(gateway)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                results = runner.run(_measure(args, gateway, mock, token))
            _say("stopping subprocesses")
    except KeyboardInterrupt:
        print("bench.upstream: interrupted; every subprocess was stopped", file=sys.stderr)
        return 130
    except Exception:
        print(f"bench.upstream: failed (server logs in {logs})", file=sys.stderr)
        raise
    shutil.rmtree(logs, ignore_errors=True)
    load_end = os.getloadavg()
    print(
        f"\nGateway: creation-king serve, production mode (Postgres, Redis, moto S3), `write` "
        f"routed to the openai backend; direct client: {args.direct_client}; "
        f"{args.repetitions} repetition(s), medians shown.\n"
    )
    print(report(results, args))
    print(
        f"\nLoad average (1/5/15 min): start {' '.join(f'{x:.2f}' for x in load_start)}, "
        f"end {' '.join(f'{x:.2f}' for x in load_end)}"
    )
    if args.json:
        data = {"args": {k: str(v) for k, v in vars(args).items()}, "phases": results}
        data["load_average"] = {"start": load_start, "end": load_end}
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

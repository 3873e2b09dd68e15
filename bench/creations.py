"""`python -m bench.creations`: the gateway's memory over many creations (issue 13).

One `creation-king serve` in production mode (Postgres, Redis db 13, moto's S3, `write` routed
to the OpenAI-compatible mock of `bench.upstream`), as `bench.upstream` starts it. `--clients`
(4) authenticated graphql-transport-ws sockets run `write` subscriptions back to back, each a
distinct unseeded prompt of `--tokens` (20) tokens at once (D=0), until `--creations` (10,000)
have completed; every text is checked against the mock's answer. The gateway's RSS (VmRSS)
is read after every `--every` (1,000) creations.

The figure is the ratio of the RSS after the last creation to the RSS after the first
thousand (the caches, pools and interned schema are warm by then). Goal: at most 1.2.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import uvloop

from bench.memory import rss_mib
from bench.upstream import REDIS_URL, register, servers
from bench.upstream_clients import StackClient

GOAL_RATIO = 1.2


async def _run(args: argparse.Namespace, ws_url: str, token: str, pid: int) -> list[float]:
    """RSS in MiB after each `args.every` creations (the first entry: after the first batch)."""
    clients = [await StackClient.connect(ws_url, token) for _ in range(args.clients)]
    readings: list[float] = []
    done = 0
    began = time.monotonic()

    async def one(client: StackClient) -> None:
        prompt = f"memory {uuid.uuid4().hex}\nD=0 T={args.tokens}"
        run = await client.stream(prompt, args.tokens, 0)
        if len(run.text.split()) != args.tokens:
            raise RuntimeError(f"a creation came back with {run.text!r}")

    try:
        while done < args.creations:
            batch = min(args.every, args.creations - done)
            for start in range(0, batch, args.clients):
                size = min(args.clients, batch - start)
                await asyncio.gather(*(one(client) for client in clients[:size]))
            done += batch
            readings.append(rss_mib(pid))
            print(
                f"[{time.monotonic() - began:6.1f} s] {done:>6,} creations: "
                f"RSS {readings[-1]:.1f} MiB",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)
    return readings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m bench.creations`."""
    parser = argparse.ArgumentParser(prog="python -m bench.creations", description=__doc__)
    parser.add_argument("--creations", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1_000, help="creations between readings")
    parser.add_argument("--clients", type=int, default=4, help="sockets running at once")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per creation")
    parser.add_argument("--redis", default=REDIS_URL, help="db index flushed at start and end")
    args = parser.parse_args(argv)
    if args.creations < 2 * args.every:
        parser.error("--creations must be at least twice --every")
    args.server_log_level, args.server_env = "warning", []
    logs = Path(tempfile.mkdtemp(prefix="ck-bench-creations-"))
    with servers(args, logs) as (gateway, _mock):
        token = register(gateway)
        start_rss = rss_mib(gateway.pid)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            readings = runner.run(_run(args, gateway.ws_url, token, gateway.pid))
    shutil.rmtree(logs, ignore_errors=True)
    ratio = readings[-1] / readings[0]
    print(f"\nGateway RSS: {start_rss:.1f} MiB at start, then per {args.every:,} creations:")
    print(" ".join(f"{mib:.1f}" for mib in readings))
    verdict = "met" if ratio <= GOAL_RATIO else "not met"
    print(
        f"RSS after {args.creations:,} / after {args.every:,}: {ratio:.3f}x "
        f"(goal <= {GOAL_RATIO}x: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench.documents`: what persisted documents save, as ratios to full-text POST.

Two `creation-king serve` processes in embedded mode (no services needed) answer the same
anonymous query, a frontend-sized document with fragments, in the same run:

- *full text* (baseline): POST `{"query": ...}`, what every client sends without APQ;
- *APQ by hash*: POST and GET `{"extensions": {"persistedQuery": ...}}` after registering;
- *trusted document by id*: POST `{"documentId": ...}` to a server started with
  `CK_PERSISTED_DOCUMENTS` (its manifest lists the document).

Rounds alternate the variants so drift in the machine's load spreads evenly; medians are
reported. In-process, it also times what parsing and validating the document costs when it
is not cached (the server caches both per distinct document, so a repeated full-text request
pays only a dictionary lookup), which is the most a persisted document could save per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from graphql import parse
from strawberry.schema.schema import validate_document

from bench.procs import Server, free_port, serve_command, start_server
from bench.services import Services, create_database, drop_database, migrate, server_env
from bench.stats import ratio
from bench.throughput import LoadResult, drive
from schema.build import build_schema
from schema.parsing import MAX_TOKENS, parse_cached, validate_cached

REPO = Path(__file__).resolve().parent.parent
DOCUMENT = """
query ToolCatalog($withDescriptions: Boolean = true) {
  tools {
    ...ToolSummary
    description @include(if: $withDescriptions)
  }
}
fragment ToolSummary on Tool {
  __typename
  name
  mode
}
"""
DIGEST = hashlib.sha256(DOCUMENT.encode()).hexdigest()
APQ = {"persistedQuery": {"version": 1, "sha256Hash": DIGEST}}


@contextlib.contextmanager
def _servers(workdir: Path, services: Services) -> Iterator[tuple[Server, Server]]:
    manifest = workdir / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [
                    {"id": DIGEST, "name": "ToolCatalog", "type": "query", "body": DOCUMENT}
                ],
            }
        )
    )
    started: list[Server] = []
    try:
        for name, extra in (
            ("apq", {}),
            ("trusted", {"CK_PERSISTED_DOCUMENTS": str(manifest)}),
        ):
            port = free_port()
            command = serve_command(port)
            env = server_env(
                services,
                "",
                CK_ENGINE="dev",
                CK_DATA_DIR=str(workdir / name),
                CK_PUBLIC_MAX_AGE_SECONDS="0",
                **extra,
            )
            started.append(
                start_server(name, command, port=port, env=env, cwd=REPO, log_dir=workdir)
            )
        for server in started:
            server.wait_ready(lambda client: client.get("/healthz").status_code == 200)
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


async def _load(
    args: argparse.Namespace, server: Server, label: str, payload: dict[str, Any], get: bool
) -> LoadResult:
    return await drive(
        label=label,
        url=server.url,
        query=DOCUMENT,
        concurrency=args.concurrency,
        warmup_s=args.warmup,
        duration_s=args.duration,
        server_pids=[server.pid],
        payload=payload,
        get=get,
    )


def _parse_and_validate_us(repeat: int) -> tuple[float, float]:
    """Microseconds to parse and validate DOCUMENT uncached, and to look both up cached."""
    schema = build_schema()._schema
    rules = ()
    began = time.perf_counter()
    for _ in range(repeat):
        validate_document(schema, parse(DOCUMENT, max_tokens=MAX_TOKENS), rules)
    uncached = (time.perf_counter() - began) / repeat * 1e6
    text = DOCUMENT + " "  # a new string per request, as the server gets it
    validate_cached(schema, text, MAX_TOKENS, rules)
    began = time.perf_counter()
    for _ in range(repeat):
        query = text[:-1] + " "
        parse_cached(query, max_tokens=MAX_TOKENS)
        validate_cached(schema, query, MAX_TOKENS, rules)
    cached = (time.perf_counter() - began) / repeat * 1e6
    return uncached, cached


async def _measure(
    args: argparse.Namespace, apq: Server, trusted: Server
) -> dict[str, list[LoadResult]]:
    async with httpx.AsyncClient(base_url=apq.url) as http:  # register the hash once
        registered = await http.post("/graphql", json={"query": DOCUMENT, "extensions": APQ})
        registered.raise_for_status()
    plan = (
        ("full text POST", apq, {"query": DOCUMENT}, False),
        ("APQ hash POST", apq, {"extensions": APQ}, False),
        ("APQ hash GET", apq, {"extensions": APQ}, True),
        ("trusted id POST", trusted, {"documentId": DIGEST}, False),
    )
    variants: dict[str, list[LoadResult]] = {}
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr)
        for label, server, payload, get in plan:
            result = await _load(args, server, label, payload, get)
            if result.errors:
                raise SystemExit(f"{label}: {result.errors} errors: {result.first_error}")
            variants.setdefault(label, []).append(result)
    return variants


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    services = await create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="ck-bench-docs-") as tmp:
            migrate(Path(sys.executable).parent, server_env(services, "", CK_ENGINE="dev"), REPO)
            with _servers(Path(tmp), services) as (apq, trusted):
                variants = await _measure(args, apq, trusted)
    finally:
        await drop_database(services)
    uncached_us, cached_us = _parse_and_validate_us(args.repeat)
    baseline = statistics.median(r.rps for r in variants["full text POST"])
    base_cpu = statistics.median(
        r.summary()["server_cpu_ms_per_request"] for r in variants["full text POST"]
    )
    rows = []
    for label, results in variants.items():
        rps = statistics.median(r.rps for r in results)
        cpu = statistics.median(r.summary()["server_cpu_ms_per_request"] for r in results)
        rows.append(
            {
                "variant": label,
                "rps": rps,
                "ratio_to_full_text": ratio(rps, baseline),
                "server_cpu_ms_per_request": cpu,
                "cpu_ratio_to_full_text": ratio(cpu, base_cpu),
                "p50_ms": statistics.median(r.summary()["latency"]["p50"] for r in results),
            }
        )
    return {
        "document_bytes": len(DOCUMENT.encode()),
        "body_bytes": {
            "full text": len(json.dumps({"query": DOCUMENT})),
            "APQ hash": len(json.dumps({"extensions": APQ})),
            "trusted id": len(json.dumps({"documentId": DIGEST})),
        },
        "parse_validate_uncached_us": uncached_us,
        "parse_validate_cached_us": cached_us,
        "rows": rows,
    }


def _print(result: dict[str, Any]) -> None:
    print(f"document: {result['document_bytes']} bytes; request bodies: {result['body_bytes']}")
    print(
        f"parse + validate per request: {result['parse_validate_uncached_us']:.0f} us uncached, "
        f"{result['parse_validate_cached_us']:.1f} us from the server's caches"
    )
    print()
    print("| variant | req/s | ratio to full text | server CPU ms/req | CPU ratio | p50 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in result["rows"]:
        print(
            f"| {row['variant']} | {row['rps']:.0f} | {row['ratio_to_full_text']:.2f}x "
            f"| {row['server_cpu_ms_per_request']:.3f} | {row['cpu_ratio_to_full_text']:.2f}x "
            f"| {row['p50_ms']:.1f} |"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m bench.documents`."""
    parser = argparse.ArgumentParser(prog="python -m bench.documents", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds discarded per load")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds measured per load")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--repeat", type=int, default=2_000, help="in-process timing loops")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    result = asyncio.run(_run(args))
    print(json.dumps(result, indent=2)) if args.json else _print(result)


if __name__ == "__main__":
    main()

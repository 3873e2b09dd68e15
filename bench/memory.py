"""`python -m bench.memory`: RSS growth of the API process under distinct large documents.

The attack of issue 11 (finding 3): a public query behind a ~1 MB comment, different every
time, so that every document is new to the parse and validation caches. One
`creation-king serve` process in embedded mode (no services needed) receives, one at a time:

- `--anonymous` (1,000) distinct ~1 MB documents without credentials (refused unparsed: over
  the anonymous size limit),
- `--signed-in` (200) distinct ~1 MB documents with a token (parsed and answered, never
  cached: over the cacheable size),
- as a baseline, the same number of distinct small documents (each cached).

It prints the RSS growth of each phase, in MiB and per document.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.procs import free_port, serve_command, start_server

REPO = Path(__file__).resolve().parent.parent
QUERY = "query Tools { tools { name } }"
REGISTER = (
    'mutation { register(input: {email: "memory@example.com", password: "long enough pass"}) '
    "{ ... on AuthSession { accessToken } } }"
)


def rss_mib(pid: int) -> float:
    """Resident set size of `pid` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _phase(
    http: httpx.Client, pid: int, count: int, chars: int, headers: dict[str, str]
) -> tuple[float, int]:
    before = rss_mib(pid)
    answered = 0
    for i in range(count):
        document = f"{QUERY}\n# {i} " + "x" * chars
        body = http.post("/graphql", json={"query": document}, headers=headers).json()
        answered += bool(body.get("data"))
    return rss_mib(pid) - before, answered


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m bench.memory`."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--anonymous", type=int, default=1_000)
    parser.add_argument("--signed-in", type=int, default=200)
    parser.add_argument("--chars", type=int, default=1_000_000, help="size of each document")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ck-bench-mem-") as tmp:
        port = free_port()
        command = serve_command(port)
        env = {
            "PATH": "/usr/bin:/bin",
            "CK_DATA_DIR": tmp,
            "CK_RATE_LIMIT_PER_MINUTE": "10000000",
            "CK_ARGON2_TIME_COST": "1",
            "CK_ARGON2_MEMORY_KIB": "1024",
        }
        server = start_server("api", command, port=port, env=env, cwd=REPO, log_dir=Path(tmp))
        try:
            server.wait_ready(lambda client: client.get("/healthz").status_code == 200)
            with httpx.Client(base_url=server.url, timeout=60) as http:
                token = http.post("/graphql", json={"query": REGISTER}).json()["data"]
                auth = {"authorization": f"Bearer {token['register']['accessToken']}"}
                json_only = {"content-type": "application/json"}
                _phase(http, server.pid, 50, 10, auth)  # warm up
                rows = [
                    (
                        "small, distinct (cached)",
                        *_phase(http, server.pid, args.signed_in, 10, auth),
                    ),
                    (
                        f"{args.chars:,}-char, anonymous",
                        *_phase(http, server.pid, args.anonymous, args.chars, json_only),
                    ),
                    (
                        f"{args.chars:,}-char, signed in",
                        *_phase(http, server.pid, args.signed_in, args.chars, auth),
                    ),
                ]
        finally:
            server.stop()
    counts = [args.signed_in, args.anonymous, args.signed_in]
    print("| documents | sent | answered | RSS growth MiB | KiB per document |")
    print("|---|---:|---:|---:|---:|")
    for (label, growth, answered), count in zip(rows, counts, strict=True):
        print(f"| {label} | {count} | {answered} | {growth:.1f} | {growth * 1024 / count:.1f} |")


if __name__ == "__main__":
    main()

"""`python -m bench.healthz`: /healthz p99 while image bombs run, as a ratio to idle.

One `creation-king serve` in embedded mode (no services needed). /healthz is asked one
request at a time, first idle, then while 10 clients keep sending imageCaption requests:

- *control*: a 64×64 WebP, what any small request costs the event loop;
- *bomb*: a lossless 6300×6300 WebP of about 2 KB (issue 11), refused from its header;
- *at the limits*: a 4096×4096 PNG and a 2048×2048 lossless WebP, accepted and decoded
  (checked, then measured) in the CPU pool.

Each loaded p99 is reported as a ratio to the idle p99 of the same run: on a busy machine
only the ratios mean something. A process whose event loop decodes images answers /healthz
only between decodes (hundreds of ms); one that decodes in its pool answers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from bench.procs import Server, free_port, serve_command, start_server
from bench.services import JWT_SECRET
from bench.stats import Summary, ratio

REPO = Path(__file__).resolve().parent.parent
REGISTER = """
mutation R($email: String!, $password: String!) {
  register(input: {email: $email, password: $password}) {
    ... on AuthSession { accessToken }
  }
}
"""
CAPTION = """
mutation C($input: ImageCaptionInput!) {
  imageCaption(input: $input) { __typename ... on Error { code } }
}
"""


def _image(side: int, fmt: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (20, 90, 200)).save(buffer, format=fmt, lossless=True)
    return base64.b64encode(buffer.getvalue()).decode()


@contextlib.contextmanager
def _server(workdir: Path) -> Iterator[Server]:
    port = free_port()
    command = serve_command(port)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "CK_ENV": "test",
        "CK_ENGINE": "dev",
        "CK_DATA_DIR": str(workdir / "data"),
        "CK_JWT_SECRET": JWT_SECRET,
        "CK_ARGON2_TIME_COST": "1",
        "CK_ARGON2_MEMORY_KIB": "1024",
        "CK_RATE_LIMIT_PER_MINUTE": "10000000",
        "CK_CACHE_TTL_SECONDS": "0",
    }
    server = start_server("healthz", command, port=port, env=env, cwd=REPO, log_dir=workdir)
    try:
        server.wait_ready(lambda client: client.get("/healthz").status_code == 200)
        yield server
    finally:
        server.stop()


async def _healthz(http: httpx.AsyncClient, samples: int) -> list[float]:
    """Milliseconds of `samples` /healthz requests, one at a time."""
    latencies = []
    for _ in range(samples):
        began = time.perf_counter()
        response = await http.get("/healthz")
        latencies.append((time.perf_counter() - began) * 1_000)
        response.raise_for_status()
    return latencies


async def _loaded(
    http: httpx.AsyncClient, token: str, image: str, clients: int, samples: int
) -> tuple[list[float], Counter[str]]:
    """/healthz latencies while `clients` tasks keep sending `image` to imageCaption."""
    answers: Counter[str] = Counter()
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {token}"}
    body = {"query": CAPTION, "variables": {"input": {"imageBase64": image, "maxTokens": 16}}}

    async def attack() -> None:
        while not stop.is_set():
            data = (await http.post("/graphql", json=body, headers=headers)).json()
            result = (data.get("data") or {}).get("imageCaption") or {}
            answers[result.get("code") or result.get("__typename") or "error"] += 1

    tasks = [asyncio.create_task(attack()) for _ in range(clients)]
    try:
        latencies = await _healthz(http, samples)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return latencies, answers


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    images = {
        "control: WebP 64x64": _image(64, "WEBP"),
        "bomb: WebP 6300x6300": _image(6300, "WEBP"),
        "PNG 4096x4096 (limit)": _image(4096, "PNG"),
        "WebP 2048x2048 (limit)": _image(2048, "WEBP"),
    }
    with (
        tempfile.TemporaryDirectory(prefix="ck-bench-healthz-") as tmp,
        _server(Path(tmp)) as server,
    ):
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            credentials = {"email": "bench@example.com", "password": "bench password"}
            registered = await http.post(
                "/graphql", json={"query": REGISTER, "variables": credentials}
            )
            token = registered.json()["data"]["register"]["accessToken"]
            await _healthz(http, 20)  # warm up
            idle = Summary.of(await _healthz(http, args.samples))
            rows = []
            for label, image in images.items():
                latencies, answers = await _loaded(http, token, image, args.clients, args.samples)
                loaded = Summary.of(latencies)
                rows.append((label, loaded, ratio(loaded.p99, idle.p99), dict(answers)))
    return {"idle": idle, "rows": rows, "clients": args.clients}


def _print(result: dict[str, Any]) -> None:
    idle: Summary = result["idle"]
    print(f"/healthz idle: p50 {idle.p50:.1f} ms, p99 {idle.p99:.1f} ms (n={idle.n})")
    print()
    print(
        f"| while {result['clients']} clients send | p50 ms | p99 ms | p99 ratio to idle "
        "| their answers |"
    )
    print("|---|---:|---:|---:|---|")
    for label, loaded, p99_ratio, answers in result["rows"]:
        print(f"| {label} | {loaded.p50:.1f} | {loaded.p99:.1f} | {p99_ratio:.1f}x | {answers} |")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m bench.healthz`."""
    parser = argparse.ArgumentParser(prog="python -m bench.healthz", description=__doc__)
    parser.add_argument("--clients", type=int, default=10, help="concurrent image senders")
    parser.add_argument("--samples", type=int, default=300, help="/healthz requests per phase")
    _print(asyncio.run(_run(parser.parse_args(argv))))


if __name__ == "__main__":
    main()

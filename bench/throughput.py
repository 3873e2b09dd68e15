"""Query throughput: a closed-loop asyncio httpx load generator against a GraphQL endpoint.

`concurrency` clients, each with its own keep-alive connection, POST the same query back to
back: first for `warmup_s` (discarded), then for `duration_s`. Only requests that complete
inside the measured window count. Besides requests/s and latency, the CPU seconds used in the
window by the server process (and by given helper processes such as its Postgres backends),
by this load generator and by everything else on the machine are recorded: on a 2-core machine
shared with the load generator, server CPU per request is the steadier figure, and a busy
"other" share says that something else competed for the CPU.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.procs import cpu_seconds, machine_cpu_seconds
from bench.stats import Summary, ratio


@dataclass
class LoadResult:
    """What one load run measured."""

    label: str
    query: str
    concurrency: int
    window_s: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    server_cpu_s: float = 0.0
    helper_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    other_cpu_s: float = 0.0  # the rest of the machine: other processes, Redis, Postgres upkeep
    cpu_window_s: float = math.nan  # what the CPU figures cover (the request window, nearly)

    @property
    def requests(self) -> int:
        """Successful requests completed in the window."""
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return ratio(self.requests, self.window_s)

    def _utilisation(self, cpu_s: float) -> float:
        return ratio(cpu_s, self.cpu_window_s)

    def _ms_per_request(self, cpu_s: float) -> float:
        return ratio(self._utilisation(cpu_s) * 1000, self.rps)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly figures (latency in ms, CPU in ms per request)."""
        latency = Summary.of(self.latencies_ms)
        return {
            "label": self.label,
            "query": self.query,
            "concurrency": self.concurrency,
            "window_s": self.window_s,
            "cpu_window_s": self.cpu_window_s,
            "requests": self.requests,
            "errors": self.errors,
            "first_error": self.first_error,
            "rps": self.rps,
            "latency": latency.as_dict(),
            "server_cpu_ms_per_request": self._ms_per_request(self.server_cpu_s),
            "helper_cpu_ms_per_request": self._ms_per_request(self.helper_cpu_s),
            "server_cpu_utilisation": self._utilisation(self.server_cpu_s),
            "client_cpu_utilisation": self._utilisation(self.client_cpu_s),
            "other_cpu_utilisation": self._utilisation(self.other_cpu_s),
        }


async def drive(
    *,
    label: str,
    url: str,
    query: str,
    token: str | None = None,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    server_pids: Sequence[int],
    helper_pids: Callable[[], Awaitable[Sequence[int]]] | None = None,
    payload: dict[str, Any] | None = None,
    get: bool = False,
) -> LoadResult:
    """Run the closed loop and return the measured window's figures. Each request POSTs
    `payload` (default `{"query": query}`) as JSON, or sends it as GET parameters (`get`)."""
    fields = payload if payload is not None else {"query": query}
    body = json.dumps(fields).encode()
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    result = LoadResult(label=label, query=query, concurrency=concurrency, window_s=duration_s)
    loop_start = time.perf_counter()
    window_start = loop_start + warmup_s
    window_end = window_start + duration_s

    async def client() -> None:
        async with httpx.AsyncClient(
            base_url=url,
            headers=headers,
            timeout=30.0,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        ) as http:
            while (sent := time.perf_counter()) < window_end:
                if get:
                    response = await http.get("/graphql", params=params)
                else:
                    response = await http.post("/graphql", content=body)
                done = time.perf_counter()
                if not window_start <= done <= window_end:
                    continue
                if response.status_code != 200 or b'"errors"' in response.content:
                    result.errors += 1
                    result.first_error = result.first_error or response.text[:300]
                    continue
                result.latencies_ms.append((done - sent) * 1000)

    async def meter() -> None:
        # Requests are counted over exactly [window_start, window_end]; the CPU snapshots are
        # taken as close to both ends as the event loop allows.
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        server0, client0 = cpu_seconds(server_pids), time.process_time()
        machine0, t0 = machine_cpu_seconds(), time.perf_counter()
        # Finding the helpers takes a query: their CPU is measured from then on, scaled up.
        helpers = list(await helper_pids()) if helper_pids is not None else []
        helper0, helpers_from = cpu_seconds(helpers), time.perf_counter()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        t1 = time.perf_counter()
        result.server_cpu_s = cpu_seconds(server_pids) - server0
        result.client_cpu_s = time.process_time() - client0
        helper_cpu = cpu_seconds(helpers) - helper0
        result.helper_cpu_s = helper_cpu * ratio(t1 - t0, t1 - helpers_from) if helpers else 0.0
        ours = result.server_cpu_s + helper_cpu + result.client_cpu_s
        result.other_cpu_s = max(0.0, machine_cpu_seconds() - machine0 - ours)
        result.cpu_window_s = t1 - t0

    await asyncio.gather(meter(), *(client() for _ in range(concurrency)))
    return result

"""Concurrent streams: aggregate tokens/s of many `write` subscriptions in one API process
versus as many direct Triton streams.

A round starts `streams` generations at once and ends when the last one ends; its aggregate
rate is all tokens received over that wall time. Both sides of a pair use the same seeds (the
same tokens; texts are compared) and alternate which goes first. Direct: `TritonEngine.stream`
in this process on one client, as the API's runner reads it. Stack: one already-open,
authenticated socket per stream (`bench.ttft.Subscriber`), several users so that no one
exceeds CK_MAX_SUBSCRIPTIONS_PER_USER.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.procs import cpu_seconds, group_cpu_seconds
from bench.stats import Summary, ratio
from bench.ttft import StreamRun, Subscriber, direct_run
from inference.triton import TritonEngine


@dataclass
class Round:
    """One side of one round: every stream, the wall time of the whole round, and the CPU
    seconds the API server and Triton used meanwhile."""

    wall_s: float
    runs: list[StreamRun]
    server_cpu_s: float = 0.0
    triton_cpu_s: float = 0.0

    @property
    def tokens(self) -> int:
        """Tokens received over all streams."""
        return sum(run.tokens for run in self.runs)

    @property
    def tokens_per_s(self) -> float:
        """Aggregate rate of the round."""
        return ratio(self.tokens, self.wall_s)


@dataclass
class ConcurrencyResult:
    """Paired rounds of `streams` concurrent streams."""

    streams: int
    max_tokens: int
    token_delay_s: float
    direct: list[Round] = field(default_factory=list)
    stack: list[Round] = field(default_factory=list)
    mismatches: int = 0

    def summary(self) -> dict[str, Any]:
        """Aggregate tokens/s per side (all rounds pooled), their ratio, TTFT under load, and
        the cores the API server and Triton used on each side."""

        def cores(rounds: list[Round], pick: Callable[[Round], float]) -> float:
            return ratio(sum(pick(r) for r in rounds), sum(r.wall_s for r in rounds))

        direct_rate = ratio(sum(r.tokens for r in self.direct), sum(r.wall_s for r in self.direct))
        stack_rate = ratio(sum(r.tokens for r in self.stack), sum(r.wall_s for r in self.stack))
        return {
            "streams": self.streams,
            "max_tokens": self.max_tokens,
            "token_delay_s": self.token_delay_s,
            "rounds": len(self.stack),
            "text_mismatches": self.mismatches,
            "direct_tokens_per_s": direct_rate,
            "stack_tokens_per_s": stack_rate,
            "ratio": ratio(stack_rate, direct_rate),
            "round_ratios": [
                ratio(s.tokens_per_s, d.tokens_per_s)
                for d, s in zip(self.direct, self.stack, strict=True)
            ],
            "direct_wall_s": Summary.of([r.wall_s for r in self.direct]).as_dict(),
            "stack_wall_s": Summary.of([r.wall_s for r in self.stack]).as_dict(),
            "direct_ttft": Summary.of([x.ttft_ms for r in self.direct for x in r.runs]).as_dict(),
            "stack_ttft": Summary.of([x.ttft_ms for r in self.stack for x in r.runs]).as_dict(),
            "server_cores": {
                "direct": cores(self.direct, lambda r: r.server_cpu_s),
                "stack": cores(self.stack, lambda r: r.server_cpu_s),
            },
            "triton_cores": {
                "direct": cores(self.direct, lambda r: r.triton_cpu_s),
                "stack": cores(self.stack, lambda r: r.triton_cpu_s),
            },
        }


async def _round(
    starts: Sequence[Callable[[], Awaitable[StreamRun]]], server_pid: int, triton_pgid: int
) -> Round:
    server0, triton0 = cpu_seconds([server_pid]), group_cpu_seconds(triton_pgid)
    began = time.perf_counter()
    runs = await asyncio.gather(*(start() for start in starts))
    return Round(
        wall_s=time.perf_counter() - began,
        runs=list(runs),
        server_cpu_s=cpu_seconds([server_pid]) - server0,
        triton_cpu_s=group_cpu_seconds(triton_pgid) - triton0,
    )


async def measure(
    *,
    engine: TritonEngine,
    ws_url: str,
    tokens: Sequence[str],
    streams: int,
    rounds: int,
    max_tokens: int,
    token_delay_s: float,
    server_pid: int,
    triton_pgid: int,
    seed_base: int = 50_000,
) -> ConcurrencyResult:
    """`rounds` pairs of rounds (direct and stack, same seeds), first side alternating."""
    result = ConcurrencyResult(streams=streams, max_tokens=max_tokens, token_delay_s=token_delay_s)
    sockets = await asyncio.gather(
        *(Subscriber.connect(ws_url, tokens[i % len(tokens)]) for i in range(streams))
    )
    try:
        for index in range(rounds):
            seeds = [seed_base + index * streams + i for i in range(streams)]
            direct = [_direct(engine, max_tokens, seed) for seed in seeds]
            stack = [
                _stack(sock, max_tokens, seed) for sock, seed in zip(sockets, seeds, strict=True)
            ]
            pids = (server_pid, triton_pgid)
            if index % 2 == 0:
                d, s = await _round(direct, *pids), await _round(stack, *pids)
            else:
                s, d = await _round(stack, *pids), await _round(direct, *pids)
            for side, done in (("direct", d), ("stack", s)):
                short = [run.tokens for run in done.runs if run.tokens != max_tokens]
                if short:
                    raise RuntimeError(f"concurrent {side} streams ended short: {short}")
            result.mismatches += sum(a.text != b.text for a, b in zip(d.runs, s.runs, strict=True))
            result.direct.append(d)
            result.stack.append(s)
    finally:
        await asyncio.gather(*(sock.aclose() for sock in sockets), return_exceptions=True)
    return result


def _direct(engine: TritonEngine, max_tokens: int, seed: int) -> Callable[[], Awaitable[StreamRun]]:
    return lambda: direct_run(engine, max_tokens=max_tokens, seed=seed)


def _stack(sock: Subscriber, max_tokens: int, seed: int) -> Callable[[], Awaitable[StreamRun]]:
    return lambda: sock.write(max_tokens=max_tokens, seed=seed)

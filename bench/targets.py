"""The issue's targets, checked against one run's results (every figure against a baseline
measured in the same run). A target whose phase did not run is reported as not measured."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

_AT_MOST = ("≤", operator.le)
_AT_LEAST = ("≥", operator.ge)
_EXACTLY = ("=", operator.eq)


@dataclass(frozen=True)
class Target:
    """One target: the figure, its goal, what was measured and against what."""

    name: str
    goal: str
    value: float
    unit: str
    baseline: str
    met: bool | None  # None: not measured in this run

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def _target(
    name: str,
    value: float | None,
    goal: tuple[tuple[str, Callable[[float, float], bool]], float],
    unit: str,
    baseline: str,
) -> Target:
    (sign, compare), bound = goal
    measured = value is not None and not math.isnan(value)
    return Target(
        name=name,
        goal=f"{sign} {bound:g}{unit}",
        value=value if value is not None else math.nan,
        unit=unit,
        baseline=baseline,
        met=compare(value, bound) if measured and value is not None else None,
    )


def evaluate(results: dict[str, Any]) -> list[Target]:
    """Every target of the issue, from the results `bench.__main__` collects."""
    targets: list[Target] = []
    streaming = next(iter(results.get("streaming") or []), None)
    if streaming is not None:
        ttft = streaming["ttft"]
        direct, stack = ttft["direct"], ttft["stack"]
        targets += [
            _target(
                "added time to first token, p50",
                ttft["added_p50"],
                (_AT_MOST, 5),
                " ms",
                f"direct Triton {direct['p50']:.1f} ms, stack {stack['p50']:.1f} ms",
            ),
            _target(
                "added time to first token, p99",
                ttft["added_p99"],
                (_AT_MOST, 15),
                " ms",
                f"direct Triton {direct['p99']:.1f} ms, stack {stack['p99']:.1f} ms",
            ),
        ]
    concurrency = results.get("concurrency")
    if concurrency:
        targets.append(
            _target(
                f"{concurrency['streams']} concurrent streams, tokens/s stack / direct",
                concurrency["ratio"],
                (_AT_LEAST, 0.9),
                "x",
                f"direct {concurrency['direct_tokens_per_s']:,.0f} tokens/s, "
                f"stack {concurrency['stack_tokens_per_s']:,.0f} tokens/s",
            )
        )
    loads = {r["label"]: r for r in results.get("throughput") or []}
    if "bare" in loads and "full" in loads:
        bare, full = loads["bare"], loads["full"]
        targets.append(
            _target(
                "authenticated `{ me { id } }` req/s, full / bare Strawberry",
                full["rps"] / bare["rps"] if bare["rps"] else math.nan,
                (_AT_LEAST, 0.8),
                "x",
                f"bare `{{ hello }}` {bare['rps']:,.0f} req/s, full {full['rps']:,.0f} req/s",
            )
        )
    fanout = results.get("fanout")
    if fanout:
        raw, stack = fanout["raw"], fanout["stack"]
        targets += [
            _target(
                f"fan-out to {stack['subscribers']:,} subscribers, p99 latency stack / raw",
                fanout["ratio_p99"],
                (_AT_MOST, 2),
                "x",
                f"raw broadcast p99 {raw['latency']['p99']:.1f} ms, "
                f"stack {stack['latency']['p99']:.1f} ms",
            ),
            _target(
                "fan-out, events lost or repeated (stack)",
                float(stack["lost"] + stack["duplicates"]),
                (_EXACTLY, 0),
                "",
                f"raw: {raw['lost'] + raw['duplicates']} of "
                f"{raw['events'] * raw['subscribers']:,} deliveries",
            ),
        ]
    idle = results.get("idle_memory")
    if idle:
        raw, stack = idle["raw"], idle["stack"]
        targets.append(
            _target(
                f"RSS per idle subscription ({stack['count']}), stack / raw websocket",
                idle["ratio"],
                (_AT_MOST, 1.5),
                "x",
                f"raw {raw['bytes_per_socket'] / 1024:.1f} KiB, "
                f"stack {stack['bytes_per_socket'] / 1024:.1f} KiB per socket",
            )
        )
    return targets

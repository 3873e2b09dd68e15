"""Markdown tables and the JSON file of a bench run."""

from __future__ import annotations

import json
import math
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stats import ratio


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _times(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def streaming_table(s: dict[str, Any]) -> str:
    """The streaming overhead of one configuration (all times in ms)."""
    ttft, gap, pace, last = s["ttft"], s["inter_arrival"], s["ms_per_token"], s["last_token"]
    started, lag = s["started_event"], s["token_lag"]
    rows = [
        "| metric (ms) | direct p50 | direct p99 | stack p50 | stack p99 "
        "| added p50 | added p99 | stack/direct p50 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        _row("time to first token", ttft["direct"], ttft["stack"], ttft["ratio_p50"]),
        f"| time to `CreationStarted` | - | - | {_num(started['p50'])} | {_num(started['p99'])} "
        "| - | - | - |",
        _row(
            "inter-arrival: direct per token, stack per `TokenDelta`",
            gap["direct_per_token"],
            gap["stack_per_delta"],
            gap["ratio_p50"],
            comparable=False,
        ),
        _row(
            "pace after first token (ms/token)", pace["direct"], pace["stack"], pace["ratio_p50"], 2
        ),
        _row("time to last token", last["direct"], last["stack"], last["ratio_p50"]),
        f"| per-token delivery lag (stack - direct, same token) | - | - | {_num(lag['p50'])} "
        f"| {_num(lag['p99'])} | - | - | - |",
    ]
    notes = (
        f"{s['runs']} paired runs, {s['max_tokens']} tokens each, Triton token delay "
        f"{s['token_delay_s'] * 1000:g} ms, CK_BATCH_INTERVAL_MS={s['batch_interval_ms']}; "
        f"{gap['tokens_per_delta']:.1f} tokens per `TokenDelta`; tokens/s p50: direct "
        f"{_num(pace['direct_tokens_per_s_p50'], 0)}, "
        f"stack {_num(pace['stack_tokens_per_s_p50'], 0)}; "
        f"text mismatches: {s['text_mismatches']}; whole machine busy during the phase: "
        f"{s.get('machine_busy_cores', math.nan):.2f} cores"
    )
    return f"### Streaming: {s['label']}\n\n" + "\n".join(rows) + f"\n\n{notes}\n"


def _row(
    name: str,
    direct: dict[str, Any],
    stack: dict[str, Any],
    times: float,
    digits: int = 1,
    *,
    comparable: bool = True,
) -> str:
    """A metric row; `comparable=False` leaves out the differences (not the same unit)."""
    added = (
        f"| {_num(stack['p50'] - direct['p50'], digits)} "
        f"| {_num(stack['p99'] - direct['p99'], digits)} "
        if comparable
        else "| - | - "
    )
    return (
        f"| {name} | {_num(direct['p50'], digits)} | {_num(direct['p99'], digits)} "
        f"| {_num(stack['p50'], digits)} | {_num(stack['p99'], digits)} "
        f"{added}| {_times(times)} |"
    )


def throughput_table(results: list[dict[str, Any]], baseline: str) -> str:
    """One row per load run plus its ratio to the `baseline` row's requests/s."""
    base = next((r for r in results if r["label"] == baseline), None)
    rows = [
        "| target | query | req/s | p50 ms | p99 ms | server CPU ms/req | Postgres CPU ms/req "
        "| errors | req/s vs bare |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r['label']} | `{r['query']}` | {_num(r['rps'], 0)} | {_num(r['latency']['p50'])} "
            f"| {_num(r['latency']['p99'])} | {_num(r['server_cpu_ms_per_request'], 3)} "
            f"| {_num(r['helper_cpu_ms_per_request'], 3)} | {r['errors']} "
            f"| {_times(ratio(r['rps'], base['rps'])) if base else '-'} |"
        )
    first = results[0] if results else None
    notes = ""
    if first is not None:
        notes = (
            f"\n{first['concurrency']} concurrent clients, {first['window_s']:.1f} s measured "
            f"per row after a warm-up; load generator CPU: "
            + ", ".join(f"{r['label']} {r['client_cpu_utilisation']:.0%}" for r in results)
            + "; server CPU: "
            + ", ".join(f"{r['label']} {r['server_cpu_utilisation']:.0%}" for r in results)
            + "; other processes: "
            + ", ".join(f"{r['label']} {r['other_cpu_utilisation']:.0%}" for r in results)
            + " (of one core)\n"
        )
    return "### Query throughput\n\n" + "\n".join(rows) + "\n" + notes


def headline(streaming: list[dict[str, Any]], throughput: list[dict[str, Any]]) -> str:
    """The few ratios that matter, as one small table."""
    rows = ["| figure | value |", "|---|---:|"]
    for s in streaming:
        ttft = s["ttft"]
        rows.append(
            f"| added TTFT p50 / p99, {s['label']} | {_num(ttft['added_p50'])} ms / "
            f"{_num(ttft['added_p99'])} ms ({_times(ttft['ratio_p50'])} p50) |"
        )
        rows.append(
            f"| per-token delivery lag p50 / p99, {s['label']} | {_num(s['token_lag']['p50'])} ms "
            f"/ {_num(s['token_lag']['p99'])} ms |"
        )
        rows.append(
            f"| tokens/s p50 direct / stack, {s['label']} | "
            f"{_num(s['ms_per_token']['direct_tokens_per_s_p50'], 0)} / "
            f"{_num(s['ms_per_token']['stack_tokens_per_s_p50'], 0)} |"
        )
    by_label = {r["label"]: r for r in throughput}
    bare = by_label.get("bare")
    full = by_label.get("full")
    if bare and full:
        p50 = ratio(full["latency"]["p50"], bare["latency"]["p50"])
        p99 = ratio(full["latency"]["p99"], bare["latency"]["p99"])
        cpu = ratio(full["server_cpu_ms_per_request"], bare["server_cpu_ms_per_request"])
        rows.append(
            f"| req/s full / bare | {_num(full['rps'], 0)} / {_num(bare['rps'], 0)} = "
            f"{_times(ratio(full['rps'], bare['rps']))} |"
        )
        rows.append(f"| latency p50 / p99 full vs bare | {_times(p50)} / {_times(p99)} |")
        rows.append(f"| server CPU per request full / bare | {_times(cpu)} |")
    return "### Summary (ratios against same-run baselines)\n\n" + "\n".join(rows) + "\n"


def write_json(directory: Path, data: dict[str, Any]) -> Path:
    """Write `data` with run metadata to directory/bench-<UTC time>.json."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"bench-{stamp}.json"
    meta = {
        "time": stamp,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": _cpus(),
    }
    path.write_text(json.dumps({"meta": meta, **data}, indent=2, allow_nan=True) + "\n")
    return path


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0

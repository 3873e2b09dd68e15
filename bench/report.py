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
from bench.targets import Target


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


def targets_table(targets: list[Target]) -> str:
    """Each target of the issue with its goal, the measured figure and whether it is met."""
    rows = [
        "| target | goal | measured | baseline (same run) | met |",
        "|---|---:|---:|---|---|",
    ]
    for t in targets:
        met = "not measured" if t.met is None else ("met" if t.met else "**not met**")
        digits = 3 if t.unit == "x" else (0 if t.unit == "" else 1)
        rows.append(
            f"| {t.name} | {t.goal} | {_num(t.value, digits)}{t.unit} | {t.baseline} | {met} |"
        )
    return "### Targets\n\n" + "\n".join(rows) + "\n"


def concurrency_table(c: dict[str, Any]) -> str:
    """Aggregate tokens/s of concurrent streams, direct and through the stack."""
    d_wall, s_wall, d_ttft, s_ttft = (
        c["direct_wall_s"],
        c["stack_wall_s"],
        c["direct_ttft"],
        c["stack_ttft"],
    )
    server, triton = c["server_cores"], c["triton_cores"]
    rows = [
        "| side | tokens/s (all rounds) | round wall time p50 s | TTFT p50 ms | TTFT p99 ms "
        "| API server cores | Triton cores |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| direct Triton | {_num(c['direct_tokens_per_s'], 0)} | {_num(d_wall['p50'], 2)} "
        f"| {_num(d_ttft['p50'])} | {_num(d_ttft['p99'])} | {_num(server['direct'], 2)} "
        f"| {_num(triton['direct'], 2)} |",
        f"| stack (`write` subscriptions) | {_num(c['stack_tokens_per_s'], 0)} "
        f"| {_num(s_wall['p50'], 2)} | {_num(s_ttft['p50'])} | {_num(s_ttft['p99'])} "
        f"| {_num(server['stack'], 2)} | {_num(triton['stack'], 2)} |",
    ]
    notes = (
        f"{c['streams']} streams at once x {c['max_tokens']} tokens, {c['rounds']} round(s) per "
        f"side, Triton token delay {c['token_delay_s'] * 1000:g} ms; stack / direct "
        f"{_times(c['ratio'])} (per round: "
        + ", ".join(_times(r) for r in c["round_ratios"])
        + f"); text mismatches: {c['text_mismatches']}; whole machine busy: "
        f"{c.get('machine_busy_cores', math.nan):.2f} cores"
    )
    return "### Concurrent streams in one API process\n\n" + "\n".join(rows) + f"\n\n{notes}\n"


def fanout_table(f: dict[str, Any]) -> str:
    """Fan-out of one creation's events to many subscribers, stack versus raw broadcast."""
    rows = [
        "| side | latency p50 ms | p99 ms | max ms | last subscriber p50 ms | lost "
        "| repeated | server CPU us/delivery | server CPU | opening s | left open |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for side in (f["raw"], f["stack"]):
        lat, last = side["latency"], side["last_subscriber"]
        rows.append(
            f"| {side['label']} | {_num(lat['p50'])} | {_num(lat['p99'])} | {_num(lat['max'])} "
            f"| {_num(last['p50'])} | {side['lost']} | {side['duplicates']} "
            f"| {_num(side['server_cpu_us_per_delivery'], 0)} "
            f"| {side['server_cpu_utilisation']:.0%} | {_num(side['open_s'])} "
            f"| {side['left_open']:.0f} |"
        )
    stack = f["stack"]
    notes = (
        f"{stack['subscribers']:,} sockets, {stack['events']} events each published once the "
        f"previous one reached every socket; latency = publish to arrival in the client, every "
        f"(socket, event) pair; stack / raw p50 {_times(f['ratio_p50'])}, p99 "
        f"{_times(f['ratio_p99'])}; opening: connect (stack: also authenticate and subscribe) "
        f"every socket, 50 at a time; socket errors raw {f['raw']['errors']}, stack "
        f"{stack['errors']}; client CPU raw {f['raw']['client_cpu_utilisation']:.0%}, stack "
        f"{stack['client_cpu_utilisation']:.0%} of a core"
    )
    return "### Fan-out: one creation, many subscribers\n\n" + "\n".join(rows) + f"\n\n{notes}\n"


def idle_table(m: dict[str, Any]) -> str:
    """RSS growth per idle socket, stack subscription versus raw websocket."""
    rows = [
        "| side | sockets | RSS before MiB | RSS after MiB | KiB per socket | idle server CPU "
        "| left open |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for side in (m["raw"], m["stack"]):
        rows.append(
            f"| {side['label']} | {side['count']} | {_num(side['rss_before'] / 2**20)} "
            f"| {_num(side['rss_after'] / 2**20)} | {_num(side['bytes_per_socket'] / 1024)} "
            f"| {side['idle_cpu_utilisation']:.0%} | {side['left_open']:.0f} |"
        )
    notes = (
        f"stack / raw per socket {_times(m['ratio'])}; stack sockets each hold one "
        "`creationEvents` subscription to a queued creation that nothing produces; idle "
        "server CPU is a share of one core while the sockets are idle; left open: sockets "
        "(raw) or subscriptions (stack, `ck_active_subscriptions`) the server still holds 2 s "
        "after every client closed"
    )
    return "### Memory per idle subscription\n\n" + "\n".join(rows) + f"\n\n{notes}\n"


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

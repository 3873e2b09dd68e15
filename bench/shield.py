"""`python -m bench.shield`: the injection shield against its labelled corpus and a held-out set.

Prints the detection rate (recall on attacks) and the false-positive rate (on benign
look-alikes), overall, per language, per category and per variant (`split`: words broken by
hyphens, spaces or invisible characters), then the misses and false positives by case id,
first for the corpus the rules are tuned on, then for the held-out set they were not
(`tests/resolvers/guard/injection_heldout.jsonl`: written before the rules it scores, never tuned
on). Then the time per check and per 1 KB input. Pure CPU: no services needed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from resolvers.guard.shield import RULES_FILE, Shield, Verdict, load_rules

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "resolvers" / "guard" / "injection_corpus.jsonl"
HELD_OUT = REPO / "tests" / "resolvers" / "guard" / "injection_heldout.jsonl"
KB = 1024  # characters of one timed input
LABELS = ("attack", "benign")


@dataclass(frozen=True, slots=True)
class Case:
    """One labelled text; `category` is the attack's, or the one a benign text resembles."""

    id: str
    label: str
    lang: str
    category: str
    text: str
    note: str = ""
    variant: str = ""  # how the text is disguised ("split"), if it is


@dataclass(slots=True)
class Tally:
    """Counts for one slice of the corpus."""

    attacks: int = 0
    detected: int = 0
    benign: int = 0
    flagged: int = 0

    @property
    def recall(self) -> float | None:
        return self.detected / self.attacks if self.attacks else None

    @property
    def false_positive_rate(self) -> float | None:
        return self.flagged / self.benign if self.benign else None

    def add(self, case: Case, blocked: bool) -> None:
        if case.label == "attack":
            self.attacks += 1
            self.detected += blocked
        else:
            self.benign += 1
            self.flagged += blocked


@dataclass(slots=True)
class Report:
    """The corpus scored by one shield."""

    overall: Tally = field(default_factory=Tally)
    by_language: dict[str, Tally] = field(default_factory=dict)
    by_category: dict[str, Tally] = field(default_factory=dict)
    by_variant: dict[str, Tally] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)


def load_corpus(path: Path = CORPUS) -> list[Case]:
    """The corpus file, one JSON object per line; raises ValueError on a malformed line."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        case = Case(**json.loads(line))
        if case.label not in LABELS or not case.text:
            raise ValueError(f"{path.name}:{number}: label must be one of {LABELS}, text non-empty")
        cases.append(case)
    return cases


def evaluate(shield: Shield, cases: Iterable[Case]) -> Report:
    """Check every case as a single `prompt` field and tally blocked verdicts."""
    report = Report()
    for case in cases:
        blocked = shield.check({"prompt": case.text}).blocked
        tallies = [
            report.overall,
            report.by_language.setdefault(case.lang, Tally()),
            report.by_category.setdefault(case.category, Tally()),
        ]
        if case.variant:
            tallies.append(report.by_variant.setdefault(case.variant, Tally()))
        for tally in tallies:
            tally.add(case, blocked)
        if case.label == "attack" and not blocked:
            report.misses.append(case.id)
        elif case.label == "benign" and blocked:
            report.false_positives.append(case.id)
    return report


def _rate(hits: int, total: int, rate: float | None) -> str:
    return "-" if rate is None else f"{hits}/{total} = {rate:.3f}"


def table(report: Report) -> str:
    """Markdown: detection and false-positive rates overall, per language, category, variant."""
    rows = [
        "| slice | detection rate (recall) | false-positive rate |",
        "|---|---:|---:|",
    ]
    slices = [("**all**", report.overall)]
    slices += [(f"lang `{k}`", v) for k, v in sorted(report.by_language.items())]
    slices += [(f"category `{k}`", v) for k, v in sorted(report.by_category.items())]
    slices += [(f"variant `{k}`", v) for k, v in sorted(report.by_variant.items())]
    for name, t in slices:
        recall = _rate(t.detected, t.attacks, t.recall)
        fp = _rate(t.flagged, t.benign, t.false_positive_rate)
        rows.append(f"| {name} | {recall} | {fp} |")
    return "\n".join(rows)


def _timings(shield: Shield, cases: Sequence[Case], rounds: int) -> tuple[float, float, float]:
    per_check = []
    for _ in range(rounds):
        for case in cases:
            start = time.perf_counter()
            shield.check({"prompt": case.text})
            per_check.append(time.perf_counter() - start)
    big = "\n".join(c.text for c in cases if c.label == "benign")
    big = (big * (100_000 // len(big) + 1))[:100_000]
    start = time.perf_counter()
    shield.check({"prompt": big})
    large = time.perf_counter() - start
    return statistics.median(per_check), max(per_check), large


def kilobyte_inputs(cases: Sequence[Case]) -> dict[str, str]:
    """Per language, and for all of them mixed, benign corpus texts joined to 1 KB characters."""
    texts: dict[str, list[str]] = {}
    for case in cases:
        if case.label == "benign":
            texts.setdefault(case.lang, []).append(case.text)
            texts.setdefault("mixed", []).append(case.text)
    inputs = {}
    for lang, parts in sorted(texts.items()):
        joined = "\n".join(parts)
        inputs[lang] = (joined * (KB // len(joined) + 1))[:KB]
    return inputs


def per_kilobyte(shield: Shield, cases: Sequence[Case], rounds: int) -> dict[str, float]:
    """Median seconds per check of a 1 KB benign input, per language and mixed."""
    medians = {}
    for lang, text in kilobyte_inputs(cases).items():
        runs = []
        for _ in range(max(rounds * 10, 50)):
            start = time.perf_counter()
            shield.check({"prompt": text})
            runs.append(time.perf_counter() - start)
        medians[lang] = statistics.median(runs)
    return medians


def _verdict_line(case: Case, verdict: Verdict) -> str:
    return f"- `{case.id}` ({case.lang}, {case.category}) score {verdict.score:.2f}: " + (
        ", ".join(verdict.rule_ids) or "no rule"
    )


def _print_report(title: str, shield: Shield, cases: Sequence[Case]) -> None:
    report = evaluate(shield, cases)
    by_id = {c.id: c for c in cases}
    print(f"## {title}: {len(cases)} cases, {len(shield.rules.rules)} rules, "
          f"threshold {shield.threshold}\n")  # fmt: skip
    print(table(report))
    for heading, ids in (
        ("Missed attacks", report.misses),
        ("False positives", report.false_positives),
    ):
        print(f"\n### {heading} ({len(ids)})\n")
        for case_id in ids:
            case = by_id[case_id]
            print(_verdict_line(case, shield.check({"prompt": case.text})))
    print()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shield", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--held-out", type=Path, default=HELD_OUT, help="scored, never tuned on")
    parser.add_argument("--rules", type=Path, default=RULES_FILE)
    parser.add_argument("--threshold", type=float, default=None, help="default: the rule file's")
    parser.add_argument("--rounds", type=int, default=20, help="timing rounds over the corpus")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    shield = Shield(load_rules(args.rules), threshold=args.threshold)
    load_ms = (time.perf_counter() - start) * 1000
    cases = load_corpus(args.corpus)
    _print_report("Injection shield, tuning corpus", shield, cases)
    if args.held_out.exists():
        _print_report("Injection shield, held-out set", shield, load_corpus(args.held_out))
    median, worst, large = _timings(shield, cases, args.rounds)
    kilobyte = per_kilobyte(shield, cases, args.rounds)
    print(
        f"Rules loaded and compiled in {load_ms:.1f} ms; per check (one field of the corpus) "
        f"median {median * 1e6:.0f} µs, max {worst * 1e6:.0f} µs; one 100 kB field "
        f"{large * 1e3:.1f} ms.\nPer 1 KB benign input (median): "
        + ", ".join(f"{lang} {seconds * 1e6:.0f} µs" for lang, seconds in kilobyte.items())
        + "."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

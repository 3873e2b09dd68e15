"""`python -m bench.pii`: recall and precision of the PII detector on the labelled corpus.

The corpus (`tests/resolvers/guard/pii_corpus.jsonl`) holds one case a line: `text`, `lang` (`en` or
`zh`) and `pii`, the labelled values as `{"kind", "value"}`. Per case, a detected span counts
as a true positive when its kind and exact text equal a label's (each distinct pair once);
an unmatched detection is a false positive, an unmatched label a false negative. Prints the
figures per kind and per language, the time per case, and with `--errors` every miss.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from resolvers.guard.pii import Kind, detect

CORPUS = (
    Path(__file__).resolve().parent.parent / "tests" / "resolvers" / "guard" / "pii_corpus.jsonl"
)
ALL = "all"

Label = tuple[str, str]  # kind, value


@dataclass(frozen=True)
class Case:
    """One labelled text of the corpus."""

    text: str
    lang: str
    pii: frozenset[Label]


@dataclass
class Tally:
    """True positives, false positives and false negatives of one kind (or of all)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        """Share of detections that are labelled; 1.0 when nothing was detected."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """Share of labels that were detected; 1.0 when there are none."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Score:
    """Tallies per kind and overall, and the mistakes as (case text, kind, value)."""

    tallies: dict[str, Tally] = field(default_factory=dict)
    missed: list[tuple[str, str, str]] = field(default_factory=list)
    wrong: list[tuple[str, str, str]] = field(default_factory=list)

    def tally(self, kind: str) -> Tally:
        """The tally of `kind` (or of `ALL`), empty if it never occurred."""
        return self.tallies.setdefault(kind, Tally())


def load_corpus(path: Path = CORPUS) -> list[Case]:
    """The labelled cases of a JSON-lines corpus."""
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw = json.loads(line)
            labels = frozenset((p["kind"], p["value"]) for p in raw["pii"])
            cases.append(Case(raw["text"], raw["lang"], labels))
    return cases


def predicted(text: str) -> frozenset[Label]:
    """The detector's (kind, value) pairs of `text`."""
    return frozenset((str(span.kind), text[span.start : span.end]) for span in detect(text))


def score(cases: Iterable[Case]) -> Score:
    """Compare the detector with the labels of `cases`."""
    result = Score()
    for kind in (*Kind, ALL):
        result.tally(kind)
    for case in cases:
        found = predicted(case.text)
        for kind, value in found | case.pii:
            tallies = (result.tally(kind), result.tally(ALL))
            if (kind, value) not in case.pii:
                result.wrong.append((case.text, kind, value))
                for tally in tallies:
                    tally.fp += 1
            elif (kind, value) not in found:
                result.missed.append((case.text, kind, value))
                for tally in tallies:
                    tally.fn += 1
            else:
                for tally in tallies:
                    tally.tp += 1
    return result


def table(result: Score, title: str) -> str:
    """A Markdown table of the tallies."""
    rows = [
        f"### {title}",
        "",
        "| kind | labels | detected | TP | FP | FN | recall | precision |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, t in result.tallies.items():
        rows.append(
            f"| {kind} | {t.tp + t.fn} | {t.tp + t.fp} | {t.tp} | {t.fp} | {t.fn} "
            f"| {t.recall:.3f} | {t.precision:.3f} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    """Score the corpus and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.pii", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="a JSON-lines corpus")
    parser.add_argument("--errors", action="store_true", help="list every miss and false hit")
    args = parser.parse_args(argv)
    cases = load_corpus(args.corpus)
    started = time.perf_counter()
    overall = score(cases)
    elapsed = time.perf_counter() - started
    negatives = sum(1 for case in cases if not case.pii)
    print(table(overall, f"All {len(cases)} cases ({negatives} without PII)"))
    for lang in sorted({case.lang for case in cases}):
        subset = [case for case in cases if case.lang == lang]
        print()
        print(table(score(subset), f"lang={lang}: {len(subset)} cases"))
    print(f"\n{elapsed / len(cases) * 1000:.2f} ms per case ({len(cases)} cases)")
    if args.errors:
        for what, mistakes in (("missed", overall.missed), ("false", overall.wrong)):
            for text, kind, value in mistakes:
                print(f"{what} {kind} {value!r} in {text!r}")


if __name__ == "__main__":
    main()

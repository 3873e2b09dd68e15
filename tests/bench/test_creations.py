"""`python -m bench.creations` runs end to end on the real services and reports its ratio."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.services


def test_the_memory_bench_runs_creations_and_reports_the_rss_ratio() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.creations", "--creations", "24", "--every", "12"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "24 creations: RSS" in done.stderr  # each text was checked on the way
    ratio = re.search(r"RSS after 24 / after 12: ([0-9.]+)x", done.stdout)
    assert ratio is not None and float(ratio.group(1)) > 0

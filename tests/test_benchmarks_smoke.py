"""The benchmarks' smallest settings run (a smoke test; the ratios are read by people, not here)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    "script, expected",
    [
        ("pathway_gradient.py", ["pathway / saliency", "IG50 / pathway"]),
        ("models.py", ["Lite0 forward"]),
    ],
)
def test_benchmark_quick_setting_runs(script, expected):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for text in expected:
        assert text in done.stdout, done.stdout[-3000:]

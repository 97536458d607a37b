"""The benchmark harness (``benchmarks/run.py``) reads every script's results: no timing here."""

from __future__ import annotations

from pathlib import Path

from benchmarks import run as harness
from benchmarks.common import read_results

ROOT = Path(__file__).resolve().parent.parent


def test_every_benchmark_the_harness_runs_exists_and_prints_results():
    for name in harness.BENCHMARKS:
        script = ROOT / "benchmarks" / f"{name}.py"
        assert script.is_file(), name
        text = script.read_text(encoding="utf-8")
        assert "RESULT" in text or "result(" in text, f"{name} prints no RESULT line for the table"
        assert "--quick" in text, f"{name} has no --quick mode"


def test_result_lines_are_read_and_described():
    output = "\n".join([
        "noise",
        'RESULT {"benchmark": "engine_overhead", "case": "frozen", "plain_seconds": 2.0, '
        '"engine_seconds": 2.05, "ratio": 0.9756}',
        'RESULT {"benchmark": "growth", "images": 1000, "size": 64, "first_epoch_seconds": 9.5, '
        '"second_epoch_seconds": 1.25, "images_per_second": 640.0}',
        'RESULT {"benchmark": "something_new", "speed": 1.5}',
    ])
    rows = read_results(output)
    assert [row["benchmark"] for row in rows] == ["engine_overhead", "growth", "something_new"]
    texts = [harness.describe(row) for row in rows]
    assert "plain/engine 0.98" in texts[0]
    assert "epoch 2 1.2 s" in texts[1] or "epoch 2 1.3 s" in texts[1]
    assert texts[2] == "speed 1.5"

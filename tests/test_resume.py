"""Resume: a run killed with SIGKILL mid-epoch continues and ends where an uninterrupted
run with the same seed ends; the best-so-far score survives, so a worse epoch after the
resume never replaces the best model."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import make_tiny_dataset
from training.config import Config
from training.engine.checkpoint import load_checkpoint
from training.engine.run import resume_training, run_training
from training.events import BatchEnd, Failed

ROOT = Path(__file__).resolve().parent.parent
# Measured: on CPU the resumed run repeats the uninterrupted one exactly (TensorFlow's CPU
# kernels are deterministic for a fixed thread count). The tolerance only absorbs float
# formatting in metrics.csv.
TOLERANCE = 1e-5


def resume_config(data: Path) -> Config:
    return Config().with_overrides({
        "data.dir": str(data), "data.image_size": 32, "data.batch_size": 8,
        "model.backbone": "SmallCNN", "model.weights": "none", "model.head.dropout": 0.3,
        "augmentation.horizontal_flip": True, "augmentation.rotation": 0.1,
        "augmentation.zoom": 0.0, "augmentation.translation": 0.0,
        "optimizer.name": "adam", "optimizer.learning_rate": 0.01,
        "schedule.name": "cosine", "training.head_epochs": 2, "training.fine_tune_epochs": 4,
        "training.fine_tune_layers": 2, "training.fine_tune_learning_rate": 0.003})


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_metrics(actual: list[dict], expected: list[dict]) -> None:
    assert [r["epoch"] for r in actual] == [r["epoch"] for r in expected]
    for got, want in zip(actual, expected):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            assert float(got[key]) == pytest.approx(float(want[key]), rel=TOLERANCE, abs=TOLERANCE), \
                f"epoch {want['epoch']} {key}: resumed {got[key]} != uninterrupted {want[key]}"


def epochs_done(run_dir: Path) -> int:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"type": "epoch"' in line)


def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    data = make_tiny_dataset(tmp_path, size=32)
    config = resume_config(data)
    config_file = tmp_path / "config.json"
    config.save(config_file)

    reference = tmp_path / "reference"
    result = run_training(config, run_dir=reference, on_event=lambda e: None)
    assert result.stop_reason == "completed", result.error

    killed = tmp_path / "killed"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, "main.py", "train", str(config_file), "--out",
                                str(killed), "--quiet"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while epochs_done(killed) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    checkpoint = load_checkpoint(killed)
    assert checkpoint is not None and 2 <= checkpoint.epoch <= 3
    assert not (killed / "summary.json").exists()

    resumed = resume_training(killed, on_event=lambda e: None)
    assert resumed.stop_reason == "completed", resumed.error
    assert_same_metrics(read_metrics(killed), read_metrics(reference))
    summary = json.loads((killed / "summary.json").read_text())
    expected = json.loads((reference / "summary.json").read_text())
    assert summary["best_epoch"] == expected["best_epoch"]
    assert summary["best_metrics"]["val_loss"] == pytest.approx(expected["best_metrics"]["val_loss"],
                                                                rel=TOLERANCE)
    assert summary["epochs_completed"] == 6


def test_resume_keeps_the_best_score_so_a_worse_epoch_never_overwrites_best(tmp_path):
    data = make_tiny_dataset(tmp_path, size=32)
    stop = threading.Event()

    def stop_in_epoch_four(event):
        if isinstance(event, BatchEnd) and event.epoch == 4:
            stop.set()

    run_dir = tmp_path / "run"
    first = run_training(resume_config(data), run_dir=run_dir, on_event=stop_in_epoch_four, stop=stop)
    assert first.stop_reason == "stopped" and len(first.history) == 3
    checkpoint = load_checkpoint(run_dir)
    assert checkpoint.best_epoch == first.best_epoch
    assert checkpoint.best_value == pytest.approx(first.best_metrics["val_loss"])

    # Pretend the best so far was unbeatable: no later epoch may replace best.keras.
    state_file = run_dir / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    state["best_value"] = 1e-9
    state_file.write_text(json.dumps(state))
    best_file = (run_dir / "best.keras").read_bytes()

    events = []
    second = resume_training(run_dir, on_event=events.append)
    assert second.stop_reason == "completed", second.error
    assert [e.epoch for e in events if e.type == "epoch"] == [4, 5, 6]
    assert not any(e.is_best for e in events if e.type == "epoch")
    assert (run_dir / "best.keras").read_bytes() == best_file
    assert json.loads((run_dir / "summary.json").read_text())["best_epoch"] == first.best_epoch
    assert [int(r["epoch"]) for r in read_metrics(run_dir)] == [1, 2, 3, 4, 5, 6]


def test_nothing_to_resume_is_a_clear_error(tmp_path):
    events = []
    result = resume_training(tmp_path, on_event=events.append)
    assert result.stop_reason == "failed"
    assert isinstance(events[0], Failed) and "config.json" in events[0].message

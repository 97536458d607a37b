"""TensorBoard logs (``training.engine.tensorboard``): every run writes per-epoch and
per-batch scalars to ``RUN_DIR/tensorboard``, stepped so that phases and a resumed run
continue one curve; histograms of weights and gradients when asked."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from tests.helpers import make_tiny_dataset
from tests.test_engine import small_config
from training.engine.run import resume_training, run_training
from training.engine.tensorboard import RunTensorBoard
from training.events import EpochEnd


def scalars(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} over every event file under ``folder`` (later files win)."""
    found: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                    found.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return found


def tags(folder: Path) -> set[str]:
    names = set()
    for path in folder.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            names.update(v.tag for v in event_pb2.Event.FromString(record.numpy()).summary.value)
    return names


def metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tb"), size=32, per_class=12)


def config(data: Path, **overrides):
    return small_config(data, **{"training.mode": "from_scratch", "training.head_epochs": 0,
                                 "training.fine_tune_epochs": 2, **overrides})


@pytest.fixture
def every_batch(monkeypatch):
    """Batch scalars for every batch (a run writes at most 4 a second)."""
    monkeypatch.setattr(RunTensorBoard, "BATCH_SECONDS", 0.0)


def test_a_run_writes_epoch_and_batch_scalars_that_match_its_metrics(data, tmp_path, every_batch):
    result = run_training(config(data), run_dir=tmp_path / "run", on_event=lambda e: None)
    assert result.stop_reason == "completed", result.error
    rows = metrics(tmp_path / "run")
    train = scalars(tmp_path / "run" / "tensorboard" / "train")
    validation = scalars(tmp_path / "run" / "tensorboard" / "validation")
    np.testing.assert_allclose([train["epoch_loss"][e] for e in (0, 1)], [float(r["loss"]) for r in rows], rtol=1e-4)
    np.testing.assert_allclose([validation["epoch_loss"][e] for e in (0, 1)],
                               [float(r["val_loss"]) for r in rows], rtol=1e-4)
    np.testing.assert_allclose([train["epoch_learning_rate"][e] for e in (0, 1)],
                               [float(r["learning_rate"]) for r in rows], rtol=1e-4)
    steps = sorted(train["batch_loss"])
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 2 * result_steps(tmp_path / "run")
    assert not [t for t in tags(tmp_path / "run" / "tensorboard" / "train") if t.endswith("histogram")]
    assert not (tmp_path / "run" / "tensorboard" / "gradients").exists()


def result_steps(run_dir: Path) -> int:
    import json

    return next(json.loads(line)["steps_per_epoch"] for line in (run_dir / "events.jsonl").open()
                if json.loads(line)["type"] == "phase")


def test_histograms_of_weights_and_gradients_when_asked(data, tmp_path, monkeypatch):
    monkeypatch.setattr(RunTensorBoard, "BATCH_SECONDS", 3600.0)
    result = run_training(config(data, **{"training.tensorboard_histograms": True, "training.fine_tune_epochs": 1}),
                          run_dir=tmp_path / "run", on_event=lambda e: None)
    assert result.stop_reason == "completed", result.error
    # Batch scalars are throttled: only the phase's first batch within the hour.
    assert sorted(scalars(tmp_path / "run" / "tensorboard" / "train")["batch_loss"]) == [1]
    weights = tags(tmp_path / "run" / "tensorboard" / "train")
    gradients = tags(tmp_path / "run" / "tensorboard" / "gradients")
    assert "block1_conv/kernel/histogram" in weights
    assert "block1_conv/kernel" in gradients and "predictions/kernel" in gradients


def test_a_resumed_run_continues_the_curves(data, tmp_path, every_batch):
    stop = threading.Event()
    first = run_training(config(data, **{"training.fine_tune_epochs": 3}), run_dir=tmp_path / "run", stop=stop,
                         on_event=lambda e: stop.set() if isinstance(e, EpochEnd) and e.epoch == 1 else None)
    assert first.stop_reason == "stopped"
    resumed = resume_training(tmp_path / "run", on_event=lambda e: None)
    assert resumed.stop_reason == "completed", resumed.error
    train = scalars(tmp_path / "run" / "tensorboard" / "train")
    assert sorted(train["epoch_loss"]) == [0, 1, 2]
    steps_per_epoch = result_steps(tmp_path / "run")
    assert sorted(train["batch_loss"]) == list(range(1, 3 * steps_per_epoch + 1))
    rows = metrics(tmp_path / "run")
    np.testing.assert_allclose([train["epoch_loss"][e] for e in (0, 1, 2)], [float(r["loss"]) for r in rows],
                               rtol=1e-4)

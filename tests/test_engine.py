"""The engine end to end: learning, the run folder, transfer, freezing, stopping."""

from __future__ import annotations

import csv
import json
import shutil
import threading
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.helpers import make_tiny_dataset
from training.config import Config
from training.data.sample import make_shapes_dataset
from training.engine.run import TrainingSession, run_training
from training.events import BatchEnd, EpochEnd, Failed, PhaseChanged
from training.rundir import read_events

QUIET_AUGMENTATION = {"augmentation.horizontal_flip": False, "augmentation.rotation": 0.0,
                      "augmentation.zoom": 0.0, "augmentation.translation": 0.0}


def small_config(data_dir, **overrides) -> Config:
    values = {"data.dir": str(data_dir), "model.backbone": "SmallCNN", "model.weights": "none",
              "data.image_size": 32, "data.batch_size": 16, **QUIET_AUGMENTATION}
    values.update(overrides)
    return Config().with_overrides(values)


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One real from-scratch run on 3 classes x 30 images at 64 px, shared by several tests."""
    root = tmp_path_factory.mktemp("learn")
    data = make_tiny_dataset(root)
    config = small_config(data, **{
        "data.image_size": 64, "training.head_epochs": 0, "training.fine_tune_epochs": 10,
        "training.fine_tune_layers": "all", "training.fine_tune_learning_rate": 0.003,
        "augmentation.horizontal_flip": True})
    recorder = Recorder()
    result = run_training(config, run_dir=root / "run", on_event=recorder)
    return config, result, recorder, root / "run"


def test_small_backbone_learns_tiny_folder(trained_run):
    _, result, recorder, _ = trained_run
    assert result.stop_reason == "completed", result.error
    assert result.best_metrics["val_accuracy"] >= 0.9
    epochs = recorder.of(EpochEnd)
    assert [e.epoch for e in epochs] == list(range(1, 11))
    assert epochs[-1].loss < epochs[0].loss


def test_run_dir_files_are_complete_and_consistent(trained_run):
    config, result, recorder, run_dir = trained_run
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "labels.txt", "events.jsonl", "metrics.csv", "best.keras",
            "summary.json"} <= names
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"

    saved = Config.load(run_dir / "config.json")
    assert saved.data.image_size == 64 and saved.model.backbone == "SmallCNN"
    labels = (run_dir / "labels.txt").read_text().split()
    assert labels == ["circle", "square", "triangle"]

    events = read_events(run_dir)
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "finished"
    assert {"data_report", "phase", "batch", "epoch"} <= set(types)
    assert len(events) == len(recorder.events)

    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy",
                             "learning_rate", "seconds", "images_per_second"]
    epoch_events = [e for e in events if e["type"] == "epoch"]
    assert len(rows) == len(epoch_events) == 10
    for row, event in zip(rows, epoch_events):
        assert float(row["val_loss"]) == pytest.approx(event["val_loss"], rel=1e-4)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "completed" and summary["epochs_completed"] == 10
    best_row = min(rows, key=lambda r: float(r["val_loss"]))
    assert summary["best_epoch"] == int(best_row["epoch"])
    assert summary["best_metrics"]["val_accuracy"] == pytest.approx(float(best_row["val_accuracy"]), rel=1e-4)
    assert {"python", "tensorflow", "keras"} <= set(summary["versions"])
    assert summary["device"].startswith(("CPU", "GPU"))
    assert summary["classes"] == labels

    # best.keras really is the best epoch's model: it scores that epoch's val_loss again.
    from training.data.pipeline import prepare_data

    model = keras.saving.load_model(run_dir / "best.keras", compile=False, safe_mode=True)
    data = prepare_data(saved.data, 64, seed=saved.data.seed)
    loss_fn = keras.losses.CategoricalCrossentropy()
    losses, weights = [], []
    for images, onehot in data.validation:
        losses.append(float(loss_fn(onehot, model(images, training=False))))
        weights.append(len(images))
    assert np.average(losses, weights=weights) == pytest.approx(float(best_row["val_loss"]), rel=1e-3)


def test_transfer_from_weights_file_beats_random_init(tmp_path):
    # Task A (circle, square, triangle) teaches shape features; task B (star, cross) has
    # other classes. Colours are random, so only shape tells the classes apart.
    task_a = make_shapes_dataset(tmp_path / "a", classes=3, per_class=150, size=32, seed=1)
    five = make_shapes_dataset(tmp_path / "five", classes=5, per_class=30, size=32, seed=2)
    task_b = tmp_path / "b"
    task_b.mkdir()
    for name in ("star", "cross"):
        shutil.move(str(five / name), str(task_b / name))
    run_a = run_training(small_config(task_a, **{
        "training.head_epochs": 0, "training.fine_tune_epochs": 15, "training.fine_tune_layers": "all",
        "training.fine_tune_learning_rate": 0.003, "augmentation.horizontal_flip": True,
        "augmentation.rotation": 0.05, "augmentation.zoom": 0.1, "augmentation.translation": 0.1,
    }), run_dir=tmp_path / "run_a", on_event=lambda e: None)
    assert run_a.stop_reason == "completed", run_a.error

    results = {}
    for weights in (str(tmp_path / "run_a" / "best.keras"), "none"):
        result = run_training(small_config(task_b, **{
            "model.weights": weights, "training.mode": "head_only", "training.head_epochs": 5,
            "training.fine_tune_epochs": 0, "optimizer.learning_rate": 0.01}), run_dir=tmp_path / f"run_b_{len(results)}",
            on_event=lambda e: None)
        assert result.stop_reason == "completed", result.error
        results["pretrained" if weights != "none" else "random"] = result.best_metrics
    assert results["pretrained"]["val_loss"] < results["random"]["val_loss"] - 0.1
    assert results["pretrained"]["val_accuracy"] > results["random"]["val_accuracy"]


def _backbone_weights(backbone) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in backbone.layers
            if layer.weights}


def test_freezing_is_real(tmp_path):
    data = make_tiny_dataset(tmp_path, size=32)
    from models.backbones import build_backbone

    source = build_backbone("SmallCNN", 32, "none")
    rng = np.random.default_rng(0)
    # Non-trivial BatchNorm statistics, so "unchanged" means something.
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([w + rng.uniform(0.1, 0.5, w.shape).astype(w.dtype) for w in layer.get_weights()])
    weights_file = tmp_path / "pretrained.weights.h5"
    source.save_weights(weights_file)
    loaded = _backbone_weights(source)

    config = small_config(data, **{"model.weights": str(weights_file), "training.head_epochs": 2,
                                   "training.fine_tune_epochs": 2, "training.fine_tune_layers": 2,
                                   "optimizer.learning_rate": 0.01})
    session = TrainingSession(config, tmp_path / "run", lambda e: None, threading.Event(), 0.0)
    (tmp_path / "run").mkdir()
    session.start()
    session.data = session.prepare_data()
    classifier = session.build_model()
    head_before = [np.array(w) for w in classifier.model.get_layer("predictions").get_weights()]

    assert session.run_phase(classifier, "head") is None
    after_head = _backbone_weights(classifier.backbone)
    for name, values in loaded.items():
        for a, b in zip(values, after_head[name]):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} changed while frozen")
    head_after = classifier.model.get_layer("predictions").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(head_before, head_after)), "head did not learn"

    assert session.run_phase(classifier, "fine_tune") is None
    after_tune = _backbone_weights(classifier.backbone)
    weighted = [l for l in classifier.backbone.layers if l.weights]
    convs = [l for l in weighted if not isinstance(l, keras.layers.BatchNormalization)]
    top = {l.name for l in convs[-2:]}
    for layer in weighted:
        changed = any(not np.array_equal(a, b) for a, b in zip(loaded[layer.name], after_tune[layer.name]))
        if layer.name in top:
            assert changed, f"{layer.name} was unfrozen but did not change"
        else:
            assert not changed, f"{layer.name} changed although it should stay frozen"


def test_stop_mid_epoch_ends_within_one_batch(tmp_path):
    data = make_tiny_dataset(tmp_path, size=32)
    stop = threading.Event()
    seen: dict = {}

    def on_event(event):
        if isinstance(event, BatchEnd) and event.epoch == 2 and not stop.is_set():
            seen["step"] = event.step
            stop.set()
        if isinstance(event, BatchEnd) and stop.is_set():
            seen["last_step"] = event.step

    config = small_config(data, **{"data.batch_size": 4, "training.head_epochs": 0,
                                   "training.fine_tune_epochs": 5, "training.fine_tune_layers": "all"})
    result = run_training(config, run_dir=tmp_path / "run", on_event=on_event, stop=stop)
    assert result.stop_reason == "stopped"
    assert seen["last_step"] - seen["step"] <= 1
    run_dir = tmp_path / "run"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "stopped"
    assert summary["epochs_completed"] == 1 and summary["best_epoch"] == 1
    keras.saving.load_model(run_dir / "best.keras", compile=False, safe_mode=True)
    events = read_events(run_dir)
    assert events[-1]["type"] == "finished"
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1]


def test_stop_as_an_epoch_ends_trains_no_further_batch(tmp_path):
    """A stop asked for while epoch 1 ends (here by a listener of its EpochEnd) ends the run
    there: no batch of epoch 2 trains, and epoch 1 is saved and checkpointed."""
    data = make_tiny_dataset(tmp_path, size=32)
    stop, events = threading.Event(), []

    def on_event(event):
        events.append(event)
        if isinstance(event, EpochEnd) and event.epoch == 1:
            stop.set()

    config = small_config(data, **{"data.batch_size": 8, "training.head_epochs": 0,
                                   "training.fine_tune_epochs": 3, "training.fine_tune_layers": "all"})
    result = run_training(config, run_dir=tmp_path / "run", on_event=on_event, stop=stop)
    assert result.stop_reason == "stopped"
    assert not [e for e in events if isinstance(e, BatchEnd) and e.epoch == 2]
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [1]
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1


def test_both_phases_run_in_order_and_zero_epoch_phase_is_skipped(tmp_path):
    data = make_tiny_dataset(tmp_path, size=32)
    recorder = Recorder()
    result = run_training(small_config(data, **{"training.mode": "fine_tune", "training.head_epochs": 1,
                                                "training.fine_tune_epochs": 1,
                                                "optimizer.learning_rate": 0.01}),
                          run_dir=tmp_path / "both", on_event=recorder)
    assert result.stop_reason == "completed", result.error
    phases = recorder.of(PhaseChanged)
    assert [p.phase for p in phases] == ["head", "fine_tune"]
    # From scratch there are no pretrained features to protect: fine-tuning trains at the
    # user's rate, not a tenth of it.
    assert phases[1].learning_rate == pytest.approx(0.01)
    assert "from random weights" in phases[1].description
    assert phases[1].trainable_weights > phases[0].trainable_weights
    assert [(e.phase, e.epoch) for e in recorder.of(EpochEnd)] == [("head", 1), ("fine_tune", 2)]

    recorder = Recorder()
    run_training(small_config(data, **{"training.mode": "head_only", "training.head_epochs": 2,
                                       "training.fine_tune_epochs": 0}),
                 run_dir=tmp_path / "head_only", on_event=recorder)
    assert [p.phase for p in recorder.of(PhaseChanged)] == ["head"]


def test_bad_folder_fails_with_a_clear_message(tmp_path):
    (tmp_path / "only_class").mkdir()
    recorder = Recorder()
    result = run_training(small_config(tmp_path), run_dir=tmp_path / "run", on_event=recorder)
    assert result.stop_reason == "failed"
    failed = recorder.of(Failed)
    assert len(failed) == 1 and "at least 2" in failed[0].message
    assert "Traceback" not in failed[0].message
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["stop_reason"] == "failed"


def test_non_finite_loss_stops_at_once_and_is_never_saved(tmp_path):
    from training.engine.callbacks import bridge_callbacks
    from training.engine.state import RunState
    from training.events import Hint

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")
    state = RunState(monitor="val_loss", planned_epochs=3, total_steps=30, phase="head",
                     steps_per_epoch=10)
    recorder = Recorder()
    bridge = keras.callbacks.CallbackList(bridge_callbacks(
        state, recorder, threading.Event(), batch_size=4, train_count=40,
        best_path=tmp_path / "best.keras"), model=model)
    bridge.on_epoch_begin(0)
    bridge.on_train_batch_end(0, {"loss": 0.7, "accuracy": 0.5})
    assert not model.stop_training
    bridge.on_train_batch_end(1, {"loss": float("nan"), "accuracy": 0.5})
    assert model.stop_training and state.stop_reason == "diverged"
    hints = recorder.of(Hint)
    assert [h.id for h in hints] == ["lr_too_high"]
    assert hints[0].fixes == [{"optimizer.learning_rate": pytest.approx(0.05)}]
    bridge.on_epoch_end(0, {"loss": float("nan"), "val_loss": 0.1, "accuracy": 0.5, "val_accuracy": 1.0})
    assert not (tmp_path / "best.keras").exists() and state.best_epoch == 0
    assert recorder.of(EpochEnd) == []
    assert recorder.of(BatchEnd)[-1].batch == 2


def test_imagenet_offline_fails_fast_naming_the_file(tmp_path, monkeypatch):
    import time
    import urllib.error
    import urllib.request

    from keras.src.backend import config as keras_config
    from keras.src.utils import file_utils

    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    data = make_tiny_dataset(tmp_path, size=32)
    recorder = Recorder()
    started = time.monotonic()
    result = run_training(small_config(data, **{"model.backbone": "MobileNetV2", "model.weights": "imagenet",
                                                "data.image_size": 96}),
                          run_dir=tmp_path / "run", on_event=recorder)
    assert time.monotonic() - started < 30
    assert result.stop_reason == "failed"
    message = recorder.of(Failed)[0].message
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in message
    assert str(home / "models") in message
    assert "Traceback" not in message


def test_many_options_together_complete_a_run(tmp_path):
    data = make_tiny_dataset(tmp_path, size=32)
    validation = make_tiny_dataset(tmp_path, size=32, per_class=6, seed=5, name="validation")
    recorder = Recorder()
    config = small_config(data, **{
        "data.validation_dir": str(validation), "data.class_weight": "balanced",
        "data.image_size": None, "optimizer.name": "sgd", "optimizer.nesterov": True,
        "optimizer.learning_rate": 0.05, "optimizer.ema": True, "optimizer.clipnorm": 1.0,
        "schedule.name": "reduce_on_plateau", "schedule.plateau_patience": 1,
        "regularization.l2": 1e-4, "regularization.label_smoothing": 0.1,
        "augmentation.mixup": 0.2, "model.head.hidden_units": [16], "model.head.batch_norm": True,
        "training.head_epochs": 3, "training.fine_tune_epochs": 0,
        "training.early_stopping.patience": 1, "training.monitor": "val_accuracy"})
    result = run_training(config, run_dir=tmp_path / "run", on_event=recorder)
    assert result.stop_reason in ("completed", "early_stopping"), result.error
    report = next(e for e in recorder.events if e.type == "data_report")
    assert sum(report.validation_counts.values()) == 18
    saved = Config.load(tmp_path / "run" / "config.json")
    assert saved.data.image_size is not None  # null resolved to the backbone's default size


def test_broken_files_are_reported_in_data_report_json_and_the_run_finishes(tmp_path):
    from tests.helpers import write_broken_files

    data = make_tiny_dataset(tmp_path, size=32)
    broken = write_broken_files(data / "square")
    (data / ".DS_Store").write_bytes(b"junk")
    recorder = Recorder()
    result = run_training(small_config(data, **{"training.head_epochs": 1, "training.fine_tune_epochs": 0}),
                          run_dir=tmp_path / "run", on_event=recorder)
    assert result.stop_reason == "completed", result.error
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    skipped = {Path(item["path"]).name: item["reason"] for item in report["skipped"]}
    assert set(skipped) == {p.name for p in broken.values()}
    assert all(skipped.values())
    assert any(Path(item["path"]).name == ".DS_Store" for item in report["ignored"])
    assert report["train_images"] + report["validation_images"] == 90


def test_disk_full_while_saving_fails_clearly_and_keeps_earlier_files(tmp_path, monkeypatch):
    import errno

    from training.engine import callbacks

    data = make_tiny_dataset(tmp_path, size=32)
    saves = []
    original = callbacks.BestModelSaver.save

    def save_then_fill_the_disk(self):
        if saves:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.best_path))
        original(self)
        saves.append((self.best_path.read_bytes()))

    monkeypatch.setattr(callbacks.BestModelSaver, "save", save_then_fill_the_disk)
    recorder = Recorder()
    config = small_config(data, **{"training.head_epochs": 0, "training.fine_tune_epochs": 6,
                                   "training.fine_tune_layers": "all",
                                   "training.fine_tune_learning_rate": 0.003})
    result = run_training(config, run_dir=tmp_path / "run", on_event=recorder)
    assert result.stop_reason == "failed"
    message = recorder.of(Failed)[0].message
    assert "No space left on device" in message and "disk" in message
    assert (tmp_path / "run" / "best.keras").read_bytes() == saves[0]
    keras.saving.load_model(tmp_path / "run" / "best.keras", compile=False)
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") >= 2


def test_unwritable_run_folder_is_a_clear_error(tmp_path, monkeypatch):
    # As root chmod cannot take write access away: make creating the folder fail instead.
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    recorder = Recorder()
    result = run_training(small_config(tmp_path), run_dir=tmp_path / "locked" / "run", on_event=recorder)
    assert result.stop_reason == "failed"
    message = recorder.of(Failed)[0].message
    assert "Cannot write the run folder" in message and "Permission denied" in message


def test_a_damaged_model_file_never_replaces_the_good_one(tmp_path):
    from training.rundir import atomic_path, verify_keras_archive

    target = tmp_path / "best.keras"
    target.write_bytes(b"the good one")
    with pytest.raises(OSError, match="damaged"):
        with atomic_path(target, verify=verify_keras_archive) as tmp:
            tmp.write_bytes(b"PK\x03\x04 torn in half")
    assert target.read_bytes() == b"the good one"
    assert [p.name for p in tmp_path.iterdir()] == ["best.keras"]

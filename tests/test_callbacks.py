"""The bridge's single-job callbacks, driven in their real order through Keras's own
``CallbackList`` on a tiny model: stopping (also during validation), divergence, the best
model (never an interrupted, non-finite or unsaved epoch; the best survives a resume) and
the throttled event stream."""

from __future__ import annotations

import errno
import threading

import keras
import numpy as np
import pytest

from training.engine import callbacks
from training.engine.callbacks import EMIT_INTERVAL_SECONDS, ImprovementMonitor, bridge_callbacks
from training.engine.state import RunState
from training.events import BatchEnd, EpochEnd

GOOD_EPOCH = {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.4, "val_accuracy": 0.9}


class Bridge:
    """The bridge around a tiny compiled model, with what it emitted."""

    def __init__(self, tmp_path, *, monitor: str = "val_loss", steps_per_epoch: int = 4):
        self.model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
        self.model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy",
                           metrics=["accuracy"])
        self.state = RunState(monitor=monitor, planned_epochs=5, total_steps=5 * steps_per_epoch,
                              phase="head", steps_per_epoch=steps_per_epoch)
        self.stop = threading.Event()
        self.events: list = []
        self.best_path = tmp_path / "best.keras"
        self.parts = bridge_callbacks(self.state, self.events.append, self.stop, batch_size=4,
                                      train_count=4 * steps_per_epoch, best_path=self.best_path)
        self.hooks = keras.callbacks.CallbackList(self.parts, model=self.model)

    def epoch(self, index: int, logs: dict | None = None, *, batches: int | None = None) -> None:
        self.hooks.on_epoch_begin(index)
        for batch in range(self.state.steps_per_epoch if batches is None else batches):
            self.hooks.on_train_batch_end(batch, {"loss": 0.6, "accuracy": 0.7})
        self.hooks.on_epoch_end(index, dict(GOOD_EPOCH, **(logs or {})))

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def test_a_stop_during_validation_ends_it_and_the_epoch_is_not_recorded(tmp_path):
    bridge = Bridge(tmp_path)
    bridge.hooks.on_epoch_begin(0)
    for batch in range(4):
        bridge.hooks.on_train_batch_end(batch, {"loss": 0.6, "accuracy": 0.7})
    bridge.hooks.on_test_batch_end(0, {})
    assert not bridge.model.stop_training
    bridge.stop.set()
    bridge.hooks.on_test_batch_end(1, {})
    assert bridge.model.stop_evaluating and bridge.model.stop_training
    bridge.hooks.on_epoch_end(0, dict(GOOD_EPOCH))
    assert bridge.state.stop_reason == "stopped"
    assert bridge.state.history == [] and bridge.state.best_epoch == 0
    assert not bridge.best_path.exists() and bridge.of(EpochEnd) == []


def test_a_stop_within_a_batch_sends_that_batch(tmp_path):
    bridge = Bridge(tmp_path, steps_per_epoch=50)
    bridge.hooks.on_epoch_begin(0)
    bridge.hooks.on_train_batch_end(0, {"loss": 0.6, "accuracy": 0.7})
    bridge.stop.set()
    bridge.hooks.on_train_batch_end(1, {"loss": 0.6, "accuracy": 0.7})
    assert bridge.model.stop_training and bridge.state.stop_reason == "stopped"
    assert bridge.of(BatchEnd)[-1].batch == 2


def test_divergence_is_the_reason_even_when_stop_is_pressed_in_the_same_batch(tmp_path):
    bridge = Bridge(tmp_path)
    bridge.hooks.on_epoch_begin(0)
    bridge.stop.set()
    bridge.hooks.on_train_batch_end(0, {"loss": float("inf"), "accuracy": 0.5})
    assert bridge.state.stop_reason == "diverged"


def test_batch_events_are_throttled_and_each_epochs_last_batch_is_sent(tmp_path, monkeypatch):
    clock = iter(np.arange(1000.0, 2000.0, 0.03))  # every batch takes 30 ms
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: float(next(clock)))
    bridge = Bridge(tmp_path, steps_per_epoch=20)
    bridge.epoch(0)
    sent = bridge.of(BatchEnd)
    assert sent[-1].batch == 20 and 3 <= len(sent) < 20
    assert all(b.batch - a.batch >= round(EMIT_INTERVAL_SECONDS / 0.03) for a, b in zip(sent, sent[1:-1]))
    assert [e.step for e in sent] == [e.batch for e in sent]
    assert sent[-1].loss == pytest.approx(0.6) and sent[-1].accuracy == pytest.approx(0.7)


def test_only_a_better_finite_epoch_is_saved_and_becomes_best(tmp_path):
    bridge = Bridge(tmp_path)
    bridge.epoch(0, {"val_loss": float("nan")})
    assert not bridge.best_path.exists() and bridge.state.best_epoch == 0
    bridge.epoch(1, {"val_loss": 0.4})
    saved = bridge.best_path.read_bytes()
    bridge.epoch(2, {"val_loss": 0.7})
    assert bridge.best_path.read_bytes() == saved
    assert [(e.epoch, e.is_best) for e in bridge.of(EpochEnd)] == [(1, False), (2, True), (3, False)]
    assert bridge.state.best_epoch == 2 and bridge.state.best_metrics["val_loss"] == 0.4
    assert [row["epoch"] for row in bridge.state.history] == [1, 2, 3]


def test_a_failed_save_never_records_the_epoch_as_best(tmp_path, monkeypatch):
    def full_disk(self):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.best_path))

    monkeypatch.setattr(callbacks.BestModelSaver, "save", full_disk)
    bridge = Bridge(tmp_path)
    with pytest.raises(OSError):
        bridge.epoch(0)
    assert bridge.state.best_epoch == 0 and bridge.state.best_value is None
    assert bridge.state.history == [] and bridge.of(EpochEnd) == []


def test_the_best_so_far_survives_a_resume(tmp_path):
    bridge = Bridge(tmp_path, monitor="val_accuracy")
    bridge.state.best_value, bridge.state.best_epoch = 0.95, 3  # as restored from a checkpoint
    monitor = next(c for c in bridge.parts if isinstance(c, ImprovementMonitor))
    assert (monitor.monitor, monitor.mode, monitor.best) == ("val_accuracy", "max", 0.95)
    bridge.epoch(3, {"val_accuracy": 0.9})
    assert not bridge.best_path.exists() and bridge.state.best_epoch == 3
    bridge.epoch(4, {"val_accuracy": 0.97})
    assert bridge.best_path.exists() and bridge.state.best_epoch == 5 and monitor.best == 0.97

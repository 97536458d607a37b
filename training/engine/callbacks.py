"""The bridge between ``model.fit`` and the event stream.

``EventBridge`` does constant-time work per batch (a few float conversions, a stop-flag
check) and emits ``BatchEnd`` at most every ~0.1 s, like Keras's own ``Progbar``
throttles its redraws. Cancellation and divergence end the epoch by setting
``model.stop_training`` (as Keras's ``TerminateOnNaN`` and ``EarlyStopping`` do); the
interrupted epoch is then not recorded, so an incomplete or diverged epoch can never
become "best".
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras

from training.diagnostics.monitor import Diagnostics
from training.engine.optim import current_learning_rate
from training.events import BatchEnd, EpochEnd, Event
from training.rundir import atomic_path, keras_temp_folder, verify_keras_archive

EMIT_INTERVAL_SECONDS = 0.1


@dataclass
class RunState:
    """What the run knows across phases; touched only by the training thread."""
    monitor: str
    planned_epochs: int
    total_steps: int
    phase: str = ""
    steps_per_epoch: int = 1
    best_value: float | None = None
    best_epoch: int = 0
    best_metrics: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    global_step: int = 0
    started: float = field(default_factory=time.monotonic)

    def restore(self, checkpoint) -> None:
        """Continues from a ``training.engine.checkpoint.ResumeState``."""
        self.best_value = checkpoint.best_value
        self.best_epoch = checkpoint.best_epoch
        self.best_metrics = dict(checkpoint.best_metrics)
        self.history = [dict(row) for row in checkpoint.history]
        self.global_step = checkpoint.global_step

    def improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        return value < self.best_value if self.monitor == "val_loss" else value > self.best_value


class EventBridge(keras.callbacks.Callback):
    """Turns Keras callbacks into events, checks the stop flag and saves the best model."""

    def __init__(self, state: RunState, emit: Callable[[Event], None], stop: threading.Event, *,
                 batch_size: int, train_count: int, best_path: Path,
                 diagnostics: Diagnostics | None = None):
        super().__init__()
        self.state = state
        self.diagnostics = diagnostics or Diagnostics(num_classes=2, phase_learning_rates={})
        self.emit = emit
        self.stop = stop
        self.batch_size = batch_size
        self.train_count = train_count
        self.best_path = best_path
        self._epoch_start = 0.0
        self._train_end = 0.0
        self._last_emit = 0.0
        self._seen = 0
        self._epoch_index = 0
        self._loss_mean = 0.0
        self._accuracy_mean = 0.0

    # -- stopping -----------------------------------------------------------------
    def _request_stop(self, reason: str) -> None:
        if self.state.stop_reason is None:
            self.state.stop_reason = reason
        self.state.interrupted = True
        self.model.stop_training = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.state.interrupted = False
        self._epoch_index = epoch
        self._epoch_start = time.monotonic()
        self._train_end = self._epoch_start
        self._seen = 0
        self._loss_mean = self._accuracy_mean = 0.0
        if self.stop.is_set():
            self._request_stop("stopped")

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.state.global_step += 1
        batches = self.state.steps_per_epoch
        seen = min((batch + 1) * self.batch_size, self.train_count)
        size = max(1, seen - self._seen)
        # Keras logs running means over the epoch weighted by batch size; the batch's own
        # values follow from two consecutive means.
        loss_mean = float(logs.get("loss", math.nan))
        accuracy_mean = float(logs.get("accuracy", math.nan))
        loss = (loss_mean * seen - self._loss_mean * self._seen) / size
        accuracy = (accuracy_mean * seen - self._accuracy_mean * self._seen) / size
        self._seen, self._loss_mean, self._accuracy_mean = seen, loss_mean, accuracy_mean
        self._train_end = time.monotonic()

        # A running mean that turned non-finite means this batch diverged.
        if not math.isfinite(loss_mean):
            loss = loss_mean
        learning_rate = current_learning_rate(self.model.optimizer)
        hints, diverged = self.diagnostics.observe_batch(
            phase=self.state.phase, epoch=self._epoch_number(), batch=batch + 1,
            step=self.state.global_step, loss=loss, accuracy=accuracy,
            learning_rate=learning_rate)
        if diverged:
            self._request_stop("diverged")
        elif self.stop.is_set():
            self._request_stop("stopped")

        now = self._train_end
        if now - self._last_emit >= EMIT_INTERVAL_SECONDS or batch + 1 >= batches or self.state.interrupted:
            self._last_emit = now
            elapsed = max(1e-9, now - self._epoch_start)
            step_seconds = elapsed / (batch + 1)
            remaining = max(0, self.state.total_steps - self.state.global_step)
            self.emit(BatchEnd(
                phase=self.state.phase, epoch=self._epoch_number(), batch=batch + 1, batches=batches,
                step=self.state.global_step, loss=loss, accuracy=accuracy,
                learning_rate=learning_rate, images_per_second=seen / elapsed, eta_seconds=remaining * step_seconds))
        for hint in hints:
            self.emit(hint)

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.stop.is_set():
            self._request_stop("stopped")
            self.model.stop_evaluating = True

    # -- epoch end: record, keep the best -------------------------------------------
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.state.interrupted:
            return
        logs = logs or {}
        train_seconds = max(1e-9, self._train_end - self._epoch_start)
        row = {
            "epoch": epoch + 1, "phase": self.state.phase,
            "loss": float(logs.get("loss", math.nan)), "accuracy": float(logs.get("accuracy", math.nan)),
            "val_loss": float(logs.get("val_loss", math.nan)),
            "val_accuracy": float(logs.get("val_accuracy", math.nan)),
            "learning_rate": current_learning_rate(self.model.optimizer),
            "seconds": time.monotonic() - self._epoch_start,
            "images_per_second": self._seen / train_seconds,
        }
        is_best = self.state.improves(row[self.state.monitor])
        if is_best:
            self._save_best()
            self.state.best_value = row[self.state.monitor]
            self.state.best_epoch = epoch + 1
            self.state.best_metrics = dict(row)
        self.state.history.append(row)
        self.emit(EpochEnd(epochs=self.state.planned_epochs, is_best=is_best, **row))
        for hint in self.diagnostics.observe_epoch(dict(row)):
            self.emit(hint)

    def _save_best(self) -> None:
        # Keras's temporary folders go into the run folder, where a kill's leftovers are found.
        with atomic_path(self.best_path, verify=verify_keras_archive) as tmp, \
                keras_temp_folder(self.best_path.parent):
            self.model.save(tmp)

    def _epoch_number(self) -> int:
        return self._epoch_index + 1

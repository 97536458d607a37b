"""The bridge between ``model.fit`` and the event stream: single-job Keras callbacks.

``bridge_callbacks`` returns them in the order they must run; each does constant-time
work per batch. Cancellation and divergence end the epoch by setting
``model.stop_training`` (as Keras's ``TerminateOnNaN`` and ``EarlyStopping`` do); the
interrupted epoch is then not recorded, so an incomplete or diverged epoch can never
become "best".
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Callable

import keras

from models.saving import save_model
from training.diagnostics.monitor import Diagnostics
from training.engine.optim import current_learning_rate
from training.engine.state import EpochProgress, RunState
from training.events import BatchEnd, EpochEnd, Event
from training.rundir import atomic_path, keras_temp_folder, verify_keras_archive

__all__ = ["RunState", "bridge_callbacks"]

# Keras's own Progbar redraws at most this often; the GUI's plots refresh at the same pace.
EMIT_INTERVAL_SECONDS = 0.1


def bridge_callbacks(state: RunState, emit: Callable[[Event], None], stop: threading.Event, *,
                     batch_size: int, train_count: int, best_path: Path,
                     diagnostics: Diagnostics | None = None,
                     stop_agreement: Callable[[bool], bool] | None = None) -> list[keras.callbacks.Callback]:
    """The bridge's callbacks, in the order Keras must call them.

    Within each hook: the meter first (everything after it reads this batch's numbers); the
    divergence guard before the stop flag (a run that diverged says so even when the user
    also pressed Stop); the saver before the monitor records a new best (the run's best is
    never an epoch whose model failed to save); the emitter last (a batch that stopped the
    run is reported, and an epoch's event says whether it became the best).

    ``batch_size`` is the global batch (all replicas together); ``stop_agreement`` makes the
    workers of a cluster stop together (``StopFlag``).
    """
    diagnostics = diagnostics or Diagnostics(num_classes=2, phase_learning_rates={})
    progress = EpochProgress()
    return [
        ProgressMeter(state, progress, batch_size=batch_size, train_count=train_count),
        DivergenceGuard(state, progress, diagnostics),
        StopFlag(state, stop, agreement=stop_agreement),
        BestModelSaver(state, progress, best_path),
        ImprovementMonitor(state, progress),
        EventEmitter(state, progress, emit, diagnostics),
    ]


def _request_stop(model: keras.Model, state: RunState, reason: str) -> None:
    state.stop(reason)
    model.stop_training = True


class ProgressMeter(keras.callbacks.Callback):
    """Counts steps and images, derives each batch's own loss and accuracy from Keras's
    running means, and builds each completed epoch's metrics row."""

    def __init__(self, state: RunState, progress: EpochProgress, *, batch_size: int, train_count: int):
        super().__init__()
        self.state, self.progress = state, progress
        self.batch_size, self.train_count = batch_size, train_count

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.progress.begin(epoch, time.monotonic())

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        logs, p = logs or {}, self.progress
        self.state.global_step += 1
        seen = min((batch + 1) * self.batch_size, self.train_count)
        size = max(1, seen - p.seen)
        # Keras logs running means over the epoch weighted by batch size; the batch's own
        # values follow from two consecutive means.
        loss_mean = float(logs.get("loss", math.nan))
        accuracy_mean = float(logs.get("accuracy", math.nan))
        loss = (loss_mean * seen - p.loss_mean * p.seen) / size
        p.accuracy = (accuracy_mean * seen - p.accuracy_mean * p.seen) / size
        # A running mean that turned non-finite means this batch diverged.
        p.loss = loss if math.isfinite(loss_mean) else loss_mean
        p.seen, p.loss_mean, p.accuracy_mean = seen, loss_mean, accuracy_mean
        p.batch, p.hints = batch + 1, []
        p.train_end = time.monotonic()
        p.learning_rate = current_learning_rate(self.model.optimizer)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        p = self.progress
        if self.state.interrupted:
            p.row = None
            return
        logs = logs or {}
        train_seconds = max(1e-9, p.train_end - p.started)
        p.row = {
            "epoch": epoch + 1, "phase": self.state.phase,
            "loss": float(logs.get("loss", math.nan)), "accuracy": float(logs.get("accuracy", math.nan)),
            "val_loss": float(logs.get("val_loss", math.nan)),
            "val_accuracy": float(logs.get("val_accuracy", math.nan)),
            "learning_rate": current_learning_rate(self.model.optimizer),
            "seconds": time.monotonic() - p.started,
            "images_per_second": p.seen / train_seconds,
        }


class DivergenceGuard(keras.callbacks.Callback):
    """Ends the run at once when the diagnostics see the loss diverge (non-finite, or far
    above its starting level), as Keras's ``TerminateOnNaN`` does; keeps the batch's hints
    for the emitter."""

    def __init__(self, state: RunState, progress: EpochProgress, diagnostics: Diagnostics):
        super().__init__()
        self.state, self.progress, self.diagnostics = state, progress, diagnostics

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        p = self.progress
        p.hints, diverged = self.diagnostics.observe_batch(
            phase=self.state.phase, epoch=p.epoch_number, batch=p.batch, step=self.state.global_step,
            loss=p.loss, accuracy=p.accuracy, learning_rate=p.learning_rate)
        if diverged:
            _request_stop(self.model, self.state, "diverged")


class StopFlag(keras.callbacks.Callback):
    """Cooperative cancel: the user's stop flag ends the run within one batch, also during
    validation.

    In a cluster every worker must leave ``fit`` at the same batch, or the others wait for it
    forever: ``agreement(stopping here)`` says whether any worker stops (a collective all-reduce,
    at the same points on every worker), and a stop anywhere, or a divergence seen here,
    stops all.
    """

    def __init__(self, state: RunState, stop: threading.Event,
                 agreement: Callable[[bool], bool] | None = None):
        super().__init__()
        self.state, self.stop, self.agreement = state, stop, agreement

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.state.interrupted = False
        self._check()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._check()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._check():
            self.model.stop_evaluating = True

    def _check(self) -> bool:
        stopping = self.stop.is_set()
        if self.agreement is not None:
            stopping = self.agreement(stopping or self.state.interrupted)
        if stopping:
            _request_stop(self.model, self.state, "stopped")
            return True
        return False


class StopAtEpochEnd(StopFlag):
    """A stop asked for while an epoch ends (during its validation, its saving, or by a
    listener of its ``EpochEnd``) ends the run there, once the epoch is saved and its
    checkpoint written: the last of a phase's callbacks. Without it, Keras would begin the next
    epoch and train one more batch before ``StopFlag`` saw the flag.
    """

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.model.stop_training:  # already stopping (early stopping, a stop mid-epoch)
            self._check()


def save_keras_file(model: keras.Model, path: Path, run_dir: Path) -> None:
    """``models.saving.save_model`` to ``path`` atomically and verified (a crash or a full disk
    leaves the previous file intact); Keras's temporary folders go into ``run_dir``, where a
    kill's leftovers are found."""
    with atomic_path(path, verify=verify_keras_archive) as tmp, keras_temp_folder(run_dir):
        save_model(model, tmp)


class BestModelSaver(keras.callbacks.Callback):
    """Saves the model to ``best_path`` when a completed epoch beats the run's best: atomically
    and verified, so a crash or a full disk leaves the previous best model intact. An
    interrupted epoch, or one whose score is not finite, is never saved."""

    def __init__(self, state: RunState, progress: EpochProgress, best_path: Path):
        super().__init__()
        self.state, self.progress, self.best_path = state, progress, best_path
        # The model to save when ``fit`` trains another one that shares its weights (the
        # feature cache fits the head alone: ``training.engine.feature_cache``).
        self.saved_model: keras.Model | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = self.progress.row
        if row is not None and self.state.improves(row[self.state.monitor]):
            self.save()

    def save(self) -> None:
        save_keras_file(self.model if self.saved_model is None else self.saved_model, self.best_path,
                        self.best_path.parent)


class ImprovementMonitor(keras.callbacks.Callback):
    """Keeps the run's score, in the manner of Keras's ``MonitorCallback`` (``monitor``,
    ``mode``, ``best``): each completed epoch joins the history and becomes the best when
    it improves on the best so far. The best lives in ``RunState``, so it survives a resume
    and a worse epoch after it never replaces the best model."""

    def __init__(self, state: RunState, progress: EpochProgress):
        super().__init__()
        self.state, self.progress = state, progress
        self.monitor, self.mode = state.monitor, state.mode

    @property
    def best(self) -> float | None:
        return self.state.best_value

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = self.progress.row
        if row is not None:
            self.progress.is_best = self.state.record_epoch(row)


class EventEmitter(keras.callbacks.Callback):
    """``BatchEnd`` at most every ``EMIT_INTERVAL_SECONDS`` (and always for an epoch's last
    batch or one that stopped the run), ``EpochEnd`` for each recorded epoch, and the
    diagnostics' hints after the event they belong to."""

    def __init__(self, state: RunState, progress: EpochProgress, emit: Callable[[Event], None],
                 diagnostics: Diagnostics):
        super().__init__()
        self.state, self.progress, self.emit, self.diagnostics = state, progress, emit, diagnostics
        self._last_emit = 0.0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        p, state = self.progress, self.state
        now = p.train_end
        if (now - self._last_emit >= EMIT_INTERVAL_SECONDS or p.batch >= state.steps_per_epoch
                or state.interrupted):
            self._last_emit = now
            elapsed = max(1e-9, now - p.started)
            remaining = max(0, state.total_steps - state.global_step)
            self.emit(BatchEnd(
                phase=state.phase, epoch=p.epoch_number, batch=p.batch, batches=state.steps_per_epoch,
                step=state.global_step, loss=p.loss, accuracy=p.accuracy,
                learning_rate=p.learning_rate, images_per_second=p.seen / elapsed,
                eta_seconds=remaining * elapsed / p.batch))
        for hint in p.hints:
            self.emit(hint)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = self.progress.row
        if row is None:
            return
        self.emit(EpochEnd(epochs=self.state.planned_epochs, is_best=self.progress.is_best, **row))
        for hint in self.diagnostics.observe_epoch(dict(row)):
            self.emit(hint)


def cycle_ends(first_period: int, t_mul: float, warmup: int, total: int) -> list[int]:
    """The steps of a phase at which ``CosineDecayRestarts`` (after ``warmup`` warm-up
    steps) ends a cycle: warmup + P, warmup + P + P * t_mul, ... up to ``total``."""
    ends, length, position = [], float(first_period), float(warmup)
    while position + length <= total + 1e-9 and len(ends) < 10_000:
        position += length
        ends.append(int(round(position)))
        length *= t_mul
    return ends


class SnapshotSaver(keras.callbacks.Callback):
    """Saves the model into ``folder`` at the end of each epoch in which a cosine-restarts
    cycle ended (Huang et al. 2017, snapshot ensembles): ``snapshot-epoch-0007.keras``.
    ``first_epoch`` is the phase's first epoch (0-based), ``ends`` the cycle ends in the
    phase's steps (``cycle_ends``)."""

    def __init__(self, folder: Path, first_epoch: int, steps_per_epoch: int, ends: list[int],
                 emit: Callable[[Event], None]):
        super().__init__()
        self.folder, self.first_epoch, self.steps_per_epoch = folder, first_epoch, steps_per_epoch
        self.ends, self.emit = ends, emit
        self.saved_model: keras.Model | None = None  # as ``BestModelSaver.saved_model``

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        done = (epoch - self.first_epoch + 1) * self.steps_per_epoch
        before = done - self.steps_per_epoch
        if not any(before < end <= done for end in self.ends):
            return
        from training.events import Log

        self.folder.mkdir(exist_ok=True)
        path = self.folder / f"snapshot-epoch-{epoch + 1:04d}.keras"
        save_keras_file(self.model if self.saved_model is None else self.saved_model, path, self.folder.parent)
        self.emit(Log(f"A cosine-restarts cycle ended: snapshot {path.parent.name}/{path.name} saved."))

"""What the training callbacks share: the run's state across phases and this epoch's progress.

Keras-free plain data, touched only by the training thread. ``RunState`` lives as long as
the run (and is restored on resume); ``EpochProgress`` is written by
``training.engine.callbacks.ProgressMeter``, first in the callback order, and read by the
callbacks after it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from training.events import Hint


@dataclass
class RunState:
    """The run's position, its record of completed epochs and the best so far."""
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

    @property
    def mode(self) -> str:
        """"min" for a loss, "max" otherwise (Keras's ``MonitorCallback`` "auto" rule)."""
        return "min" if self.monitor.removeprefix("val_") == "loss" else "max"

    def improves(self, value: float) -> bool:
        """Whether ``value`` of the monitored metric beats the best so far. A non-finite
        value never does (Keras's own ``ModelCheckpoint`` kept an epoch with ``val_loss=inf``
        as the best)."""
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        return value < self.best_value if self.mode == "min" else value > self.best_value

    def record_epoch(self, row: dict[str, Any]) -> bool:
        """Appends a completed epoch's row; returns whether it became the best."""
        is_best = self.improves(row[self.monitor])
        if is_best:
            self.best_value = row[self.monitor]
            self.best_epoch = int(row["epoch"])
            self.best_metrics = dict(row)
        self.history.append(row)
        return is_best

    def stop(self, reason: str) -> None:
        """Marks the epoch as interrupted; the first reason given is the run's."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.interrupted = True


@dataclass
class EpochProgress:
    """This epoch's numbers so far, and the last training batch's own values."""
    epoch: int = 0                     # 0-based index, as Keras counts
    started: float = 0.0               # time.monotonic() at the epoch's start
    train_end: float = 0.0             # ... at its last training batch
    seen: int = 0                      # training images so far
    loss_mean: float = 0.0             # Keras's running means over the epoch
    accuracy_mean: float = 0.0
    batch: int = 0                     # 1-based number of the last batch
    loss: float = math.nan             # the last batch's own loss and accuracy
    accuracy: float = math.nan
    learning_rate: float = math.nan    # the rate of the optimizer's next step
    hints: list[Hint] = field(default_factory=list)  # the last batch's, emitted after it
    row: dict[str, Any] | None = None  # the completed epoch's metrics; None when interrupted
    is_best: bool = False              # the completed epoch became the run's best

    def begin(self, epoch: int, now: float) -> None:
        self.epoch, self.started, self.train_end = epoch, now, now
        self.seen, self.loss_mean, self.accuracy_mean = 0, 0.0, 0.0
        self.hints, self.row, self.is_best = [], None, False

    @property
    def epoch_number(self) -> int:
        return self.epoch + 1

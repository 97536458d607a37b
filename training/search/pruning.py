"""Ending bad trials early, from the trial's own event stream and its stop flag.

The divergence rule is the lectures': a trial whose training loss climbs above 3x its start
is stopped at once (it is not going to recover, and a search has better uses for the time).
The engine stops a diverging run by the same numbers on every batch
(``training.diagnostics.thresholds``); the search applies the rule itself too, to what it is
told, so a trial is pruned however the run reports the climb. The median rule (Optuna's
``MedianPruner``) stops a trial whose validation accuracy after an epoch is below the median
of the stage's earlier trials at that epoch.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Callable

from training.diagnostics.thresholds import DIVERGENCE_FACTOR, DIVERGENCE_WINDOW, REFERENCE_BATCHES
from training.events import BatchEnd, DataReport, EpochEnd, Event, PhaseChanged


class DivergenceRule:
    """Watches a trial's events; ``observe`` returns why the trial must stop, or "".

    The start is the lowest loss among a phase's first ``REFERENCE_BATCHES`` reported batches
    (the first is the untrained model's), never below ln(C), the loss of a uniform guess over
    the C classes: after a head phase the loss can be tiny, and 3x tiny is noise. The climb is
    the mean of the last ``DIVERGENCE_WINDOW`` reported batches, so one bad batch stops nothing.
    A loss that is not finite stops the trial at once.
    """

    def __init__(self, factor: float = DIVERGENCE_FACTOR):
        self.factor = factor
        self.floor = 0.0
        self._start: list[float] = []
        self._recent: deque[float] = deque(maxlen=DIVERGENCE_WINDOW)

    def observe(self, event: Event) -> str:
        if isinstance(event, DataReport) and len(event.classes) >= 2:
            self.floor = math.log(len(event.classes))
        elif isinstance(event, PhaseChanged):
            self._start.clear()
            self._recent.clear()
        elif isinstance(event, BatchEnd):
            return self._batch(float(event.loss))
        return ""

    def _batch(self, loss: float) -> str:
        if not math.isfinite(loss):
            return f"the training loss became {loss}"
        if len(self._start) < REFERENCE_BATCHES:
            self._start.append(loss)
        self._recent.append(loss)
        if len(self._recent) < DIVERGENCE_WINDOW:
            return ""
        start = max(self.floor, min(self._start))
        level = sum(self._recent) / len(self._recent)
        if start > 0 and level > self.factor * start:
            return (f"the training loss (mean of the last {DIVERGENCE_WINDOW} reported batches) reached "
                    f"{level:.3g}, above {self.factor:g}x its start {start:.3g}")
        return ""


class TrialWatcher:
    """The listener of one trial's run: applies the pruning rules, then passes each event on.

    When a rule fires it sets ``stop`` (the run's stop flag: the engine ends the run within
    a batch, or before the next epoch) and keeps the reason in ``pruned``.

    Args:
        stop: the flag given to ``run_training`` for this trial.
        on_event: the search's listener.
        report: called with (epoch, val_accuracy) after each epoch; returns True when the
            trial should be pruned (Optuna's ``trial.report`` and ``should_prune``), or None.
        planned_epochs: the trial's epochs; a trial is never pruned after its last one.
    """

    def __init__(self, stop: threading.Event, on_event: Callable[[Event], None], *,
                 report: Callable[[int, float], bool] | None = None, planned_epochs: int = 0):
        self.stop, self.on_event, self.report = stop, on_event, report
        self.planned_epochs = planned_epochs
        self.divergence = DivergenceRule()
        self.pruned = ""

    def __call__(self, event: Event) -> None:
        if not self.pruned and not self.stop.is_set():
            reason = self.divergence.observe(event)
            if not reason and isinstance(event, EpochEnd):
                reason = self._epoch(event)
            if reason:
                self.pruned = reason
                self.stop.set()
        self.on_event(event)

    def _epoch(self, event: EpochEnd) -> str:
        accuracy = float(event.val_accuracy)
        if self.report is None or not math.isfinite(accuracy) or event.epoch >= self.planned_epochs:
            return ""
        if self.report(event.epoch, accuracy):
            return (f"validation accuracy {accuracy:.3f} after epoch {event.epoch} is below the median "
                    "of the stage's earlier trials")
        return ""

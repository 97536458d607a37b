"""The command line's listener: a one-line progress bar and a line per epoch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TextIO

from training.events import (
    BatchEnd,
    DataReport,
    EpochEnd,
    Event,
    Failed,
    Finished,
    Hint,
    Log,
    PhaseChanged,
    RunStarted,
)
from training.files import is_regular_file
from training.rundir import CONFIG_FILE

BAR_WIDTH = 20


def _number(value) -> float:
    return float("nan") if value is None else float(value)


_PLURALS = {"batch": "batches"}


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {_PLURALS.get(noun, noun + 's')}"


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_batch(event: BatchEnd, planned_epochs: int) -> str:
    filled = int(BAR_WIDTH * event.batch / max(1, event.batches))
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return (f"[{event.phase}] epoch {event.epoch}/{planned_epochs} batch {event.batch}/{event.batches} "
            f"[{bar}] loss {event.loss:.4f} acc {event.accuracy:.3f} "
            f"{event.images_per_second:.0f} img/s ETA {format_duration(event.eta_seconds)}")


def format_epoch(event: EpochEnd) -> str:
    best = "  * best" if event.is_best else ""
    return (f"[{event.phase}] epoch {event.epoch}/{event.epochs}: loss {event.loss:.4f} "
            f"acc {event.accuracy:.3f} val_loss {event.val_loss:.4f} val_acc {event.val_accuracy:.3f} "
            f"lr {event.learning_rate:.2e} {event.seconds:.1f}s {event.images_per_second:.0f} img/s{best}")


class ProgressPrinter:
    """Prints events to a terminal; the progress bar redraws in place on a TTY only."""

    def __init__(self, stream: TextIO, *, quiet: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._bar_shown = False
        self._planned_epochs = 0

    def note(self, text: str) -> None:
        self._line(text)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Failed):
            self._line(f"error: {event.message}")
            return
        if isinstance(event, Finished):
            self._finished(event)
            return
        if self.quiet:
            return
        if isinstance(event, BatchEnd):
            if self.tty:
                self.stream.write("\r\x1b[2K" + format_batch(event, self._planned_epochs))
                self.stream.flush()
                self._bar_shown = True
        elif isinstance(event, EpochEnd):
            self._planned_epochs = event.epochs
            self._line(format_epoch(event))
        elif isinstance(event, PhaseChanged):
            self._planned_epochs = event.planned_epochs
            self._line(f"== {event.phase}: {event.description} ({_plural(event.epochs, 'epoch')}, "
                       f"{_plural(event.steps_per_epoch, 'batch')} each, "
                       f"{event.trainable_weights:,} trainable weights)")
        elif isinstance(event, RunStarted):
            self._line(f"Run folder: {event.run_dir}\nDevice: {event.device}")
        elif isinstance(event, DataReport):
            self._data_report(event)
        elif isinstance(event, Hint):
            self._line(f"hint ({event.severity}) {event.title}: {event.message}")
        elif isinstance(event, Log):
            prefix = "" if event.level == "info" else f"{event.level}: "
            self._line(prefix + event.message)

    def _data_report(self, event: DataReport) -> None:
        counts = ", ".join(f"{name} {event.train_counts.get(name, 0)}+{event.validation_counts.get(name, 0)}"
                           for name in event.classes)
        self._line(f"Classes (train+validation): {counts}")
        if event.skipped:
            self._line(f"warning: skipped {len(event.skipped)} unusable file(s), e.g. "
                       f"{event.skipped[0]['path']}: {event.skipped[0]['reason']}")
        if event.ignored:
            self._line(f"Ignored {len(event.ignored)} file(s) by rule (hidden, system or loose at the root).")
        for warning in event.warnings:
            self._line(f"warning: {warning}")

    def _finished(self, event: Finished) -> None:
        metrics = event.best_metrics or {}
        if event.best_epoch:
            best = (f"best epoch {event.best_epoch}: val_accuracy {_number(metrics.get('val_accuracy')):.3f}, "
                    f"val_loss {_number(metrics.get('val_loss')):.4f}")
        else:
            best = "no epoch completed, so no model was saved"
        self._line(f"Finished ({event.stop_reason}) in {format_duration(event.seconds)}; {best}.\n"
                   f"Run folder: {event.run_dir}")
        # A run stopped before its first epoch ended is resumed from the start, in its folder;
        # without its config.json there is nothing to resume.
        if event.stop_reason == "stopped" and is_regular_file(Path(event.run_dir) / CONFIG_FILE):
            self._line(f"Continue it with: python main.py train --resume {event.run_dir}")

    def _line(self, text: str) -> None:
        if self._bar_shown:
            self.stream.write("\r\x1b[2K")
            self._bar_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

"""The run progress strip: phase, epoch, batch, images/s and ETA."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSizePolicy, QWidget

from training.events import BatchEnd, EpochEnd, Event, Failed, Finished, PhaseChanged, RunStarted

PHASE_NAMES = {"head": "Training head", "fine_tune": "Fine-tuning"}
TOOL_OUTCOME_MS = 6000  # how long a finished tool's outcome stays before the strip is idle


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class RunProgressWidget(QWidget):
    """What the current job is doing; its outcome stays until the next job starts or the
    settings change (``idle``); a tool's outcome goes after ``TOOL_OUTCOME_MS``.

    Args:
        plain: turns engine text (a failure's message) into the window's words.
    """

    def __init__(self, parent: QWidget | None = None, *, plain: Callable[[str], str] | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runProgress")
        self.plain = plain or (lambda text: text)
        self.idle_timer = QTimer(self, singleShot=True)
        self.idle_timer.timeout.connect(self.idle)
        self.bar = QProgressBar()
        self.bar.setObjectName("runProgressBar")
        self.bar.setTextVisible(True)
        self.bar.setToolTip("Progress of the whole run (all phases).")
        self.label = QLabel()
        self.label.setObjectName("runProgressLabel")
        # Ignored: a long message must not widen the window; it is cut and fully in the tooltip.
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.bar, 2)
        layout.addWidget(self.label, 3)
        self.total_epochs = 0
        self.steps_per_epoch = 0
        self.phase = ""
        self.idle()

    def idle(self) -> None:
        """No job, and no outcome worth showing any more."""
        self.idle_timer.stop()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("Idle")
        self._say("Ready.")

    def _say(self, text: str, tip: str = "") -> None:
        # One line: a message of several lines (a failure's instructions) would push the
        # plots down; all of it is in the tooltip and in the Result tab.
        lines = text.strip().splitlines()
        self.label.setText(lines[0] + (" …" if len(lines) > 1 else "") if lines else "")
        self.label.setToolTip(tip or (text if len(lines) > 1 else ""))

    def start(self, total_epochs: int) -> None:
        self.idle_timer.stop()
        self.total_epochs = total_epochs
        self.steps_per_epoch = 0
        self.phase = ""
        self.bar.setRange(0, 0)  # busy indicator until the first phase says how many steps
        self.bar.setFormat("Starting…")
        self._say("Loading TensorFlow and the data…")

    def handle_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.label.setText(f"Started on {event.device}")
        elif isinstance(event, PhaseChanged):
            self.phase = event.phase
            self.steps_per_epoch = max(1, event.steps_per_epoch)
            self.bar.setRange(0, max(1, self.total_epochs * self.steps_per_epoch))
            self.bar.setFormat(f"{PHASE_NAMES.get(event.phase, event.phase)} %p%")
            self.label.setText(self.plain(event.description) or PHASE_NAMES.get(event.phase, event.phase))
        elif isinstance(event, BatchEnd):
            self.bar.setMaximum(max(self.bar.maximum(), event.step))
            self.bar.setValue(event.step)
            self.label.setText(
                f"{PHASE_NAMES.get(event.phase, event.phase)} · epoch {event.epoch}/{self.total_epochs} · "
                f"batch {event.batch}/{event.batches} · {event.images_per_second or 0:.0f} img/s · "
                f"ETA {format_eta(event.eta_seconds)}")
        elif isinstance(event, EpochEnd):
            if self.steps_per_epoch:
                self.bar.setValue(min(self.bar.maximum(), event.epoch * self.steps_per_epoch))
        elif isinstance(event, Finished):
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
            self.bar.setFormat(f"Finished ({event.stop_reason})")
            self._say(f"Best epoch {event.best_epoch} · run {Path(event.run_dir).name}", event.run_dir)
        elif isinstance(event, Failed):
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.bar.setFormat("Failed")
            message = self.plain(event.message)
            self._say(message, message)

    def start_tool(self, title: str) -> None:
        self.idle_timer.stop()
        self.total_epochs = 0
        self.bar.setRange(0, 0)
        self.bar.setFormat(f"{title}…")
        self._say("Loading TensorFlow and the data…")

    def tool_message(self, message: str) -> None:
        self._say(message, message)

    def tool_done(self, text: str, message: str = "") -> None:
        """The tool's outcome, shown for ``TOOL_OUTCOME_MS``; its progress messages go."""
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.bar.setFormat(text)
        self._say(message)
        self.idle_timer.start(TOOL_OUTCOME_MS)

    def stopping(self) -> None:
        self.bar.setFormat("Stopping after this batch… %p%")

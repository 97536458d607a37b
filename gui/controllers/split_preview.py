"""The window's planned training, validation and test images, and the check of them.

``SplitPreview``: the engine's own split of the scanned folder (``training.api.plan_split``),
test set included (``plan.test_counts``, empty when there is none), made off the GUI thread because the split's first use imports scikit-learn (about 0.8 s).
``DataCheckRunner``: what training would find wrong with those images
(``training.api.check_data``: every image decoded, small classes, copies across the split),
in a background thread with its progress.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot

from gui.tasks import BackgroundTasks
from training.api import SplitPlan, check_data, plan_split
from training.config import DataConfig
from training.data.check import DataCheck
from training.data.errors import CheckStopped, DataError

# Progress reaches the window at most this often (seconds): a fast check of thousands of
# small images would otherwise queue thousands of signals.
PROGRESS_INTERVAL = 0.1


class SplitPreview(QObject):
    """Plans the split again when the scan or the split's settings change (validation and
    test shares and folders, seed).

    The batch size does not change the split: ``plan.steps_per_epoch(batch_size)``.
    """

    planned = Signal(object)  # the new SplitPlan, or None (no scan, invalid settings)
    failed = Signal(str)      # the engine would refuse this data; the message says why

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.plan: SplitPlan | None = None
        self._scan: Any = None
        self._settings: tuple | None = None
        self._generation = 0
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)

    def update(self, scan: Any, data: DataConfig | None) -> None:
        """``scan``: the data folder's ``ScanResult``; ``data``: None while the settings are invalid."""
        settings = None if data is None else (data.validation_split, data.validation_dir, data.test_split,
                                              data.test_dir, data.seed)
        if scan is self._scan and settings == self._settings:
            return
        self._scan, self._settings = scan, settings
        self._generation += 1
        if scan is None or data is None:
            self.plan = None
            self.planned.emit(None)
            return
        self.tasks.submit("plan", _plan, self._generation, scan, data)

    def shutdown(self) -> None:
        self.tasks.shutdown()

    def _on_tasks_done(self, name: str, result: tuple[int, SplitPlan | None, str]) -> None:
        generation, plan, problem = result
        if generation != self._generation:
            return  # the scan or the settings changed since
        self.plan = plan
        self.planned.emit(plan)
        if problem:
            self.failed.emit(problem)

    def _on_tasks_failed(self, name: str, error: Exception) -> None:
        self.plan = None
        self.planned.emit(None)
        self.failed.emit(f"Cannot plan the split: {error}")


def _plan(generation: int, scan: Any, data: DataConfig) -> tuple[int, SplitPlan | None, str]:
    try:
        return generation, plan_split(scan, data), ""
    except DataError as error:
        return generation, None, str(error)


class DataCheckRunner(QObject):
    """Runs ``training.api.check_data`` in a background thread, one check at a time.

    A new ``start`` stops the check before it (it ends within a block of images); progress
    and the result arrive in the GUI thread, and only those of the newest check.
    """

    progressed = Signal(str, int, int)  # stage ("decode", "duplicates"), done, total
    finished = Signal(object)           # the DataCheck
    failed = Signal(str)
    # (generation, stage, done, total) from the worker thread; this object lives in the
    # GUI thread, so the connection is queued.
    _progress = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)
        self._progress.connect(self._on_self_progress)
        self._stop = threading.Event()
        self._generation = 0
        self.running = False
        app = QCoreApplication.instance()
        if app is not None:  # a check must not keep the process alive after the window quit
            app.aboutToQuit.connect(self.cancel)

    def start(self, scan: Any, data: DataConfig, image_size: int | None, known: Any = None) -> None:
        self.cancel()
        self._stop = stop = threading.Event()
        self.running = True
        self.tasks.submit("check", _run_check, self._generation, scan, data, image_size, known,
                          self._reporter(self._generation), stop)

    def cancel(self) -> None:
        self._stop.set()
        self._generation += 1
        self.running = False

    def _reporter(self, generation: int):
        """A progress callback for the worker thread, throttled to ``PROGRESS_INTERVAL``."""
        last = [0.0]

        def report(stage: str, done: int, total: int) -> None:
            now = time.monotonic()
            if done < total and now - last[0] < PROGRESS_INTERVAL:
                return
            last[0] = now
            try:
                self._progress.emit((generation, stage, done, total))
            except RuntimeError:
                pass  # the panel was destroyed while the check ran
        return report

    @Slot(object)
    def _on_self_progress(self, report: tuple) -> None:
        generation, stage, done, total = report
        if generation == self._generation and self.running:
            self.progressed.emit(stage, done, total)

    def _on_tasks_done(self, name: str, result: tuple) -> None:
        generation, check = result
        if generation != self._generation or check is None:
            return  # stopped, or a newer check was started since
        self.running = False
        self.finished.emit(check)

    def _on_tasks_failed(self, name: str, error: Exception) -> None:
        self.running = False
        self.failed.emit(f"The images could not be checked: {error}")


def _run_check(generation: int, scan: Any, data: DataConfig, image_size: int | None, known: Any,
               report: Any, stop: threading.Event) -> tuple[int, DataCheck | None]:
    try:
        return generation, check_data(scan, data, image_size=image_size, known=known,
                                      on_progress=report, stop=stop)
    except CheckStopped:
        return generation, None

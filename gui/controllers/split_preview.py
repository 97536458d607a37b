"""The window's planned training and validation images: the engine's own split of the
scanned folder (``training.api.plan_split``), made off the GUI thread because the split's
first use imports scikit-learn (about 0.8 s)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from gui.tasks import BackgroundTasks
from training.api import SplitPlan, plan_split
from training.config import DataConfig
from training.data.errors import DataError


class SplitPreview(QObject):
    """Plans the split again when the scan or the split's settings change.

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
        settings = None if data is None else (data.validation_split, data.validation_dir, data.seed)
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

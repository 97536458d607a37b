"""The Regularization panel: weight penalties, label smoothing and early stopping."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from gui.forms import ConfigForm

PENALTIES = ("regularization.l1", "regularization.l2", "regularization.max_norm",
             "regularization.label_smoothing")
BEST_MODEL = ("training.monitor", "training.early_stopping.patience", "training.early_stopping.restore_best")


class RegularizationPanel(ConfigForm):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = self.group("Weight penalties (head)", "penaltiesGroup")
        for key in PENALTIES:
            self.row(form, key)
        form = self.group("Best model and early stopping", "earlyStoppingGroup")
        for key in BEST_MODEL:
            self.row(form, key)
        self.finish()

"""The Regularization panel: weight penalties, label smoothing and early stopping."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QWidget

from gui.forms import ConfigForm, combo, double, scientific, spin
from training.config import MONITORS


class RegularizationPanel(ConfigForm):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = self.group("Weight penalties (head)", "penaltiesGroup")
        self.row(form, "L1:", "regularization.l1", scientific(0.0, 1.0, special="off"))
        self.row(form, "L2:", "regularization.l2", scientific(0.0, 1.0, special="off"))
        self.row(form, "Max-norm:", "regularization.max_norm", double(0.0, 1e6, 0.5, 2, special="off"))
        self.row(form, "Label smoothing:", "regularization.label_smoothing", double(0.0, 0.5, 0.05, 2))
        form = self.group("Best model and early stopping", "earlyStoppingGroup")
        self.row(form, "Monitor:", "training.monitor", combo(MONITORS))
        self.row(form, "Patience (epochs):", "training.early_stopping.patience",
                 spin(0, 10000, special="off (never stop early)"))
        self.row(form, "Restore best:", "training.early_stopping.restore_best",
                 QCheckBox("keep the best epoch's weights"))
        self.finish()

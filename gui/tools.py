"""The sanity tools' results in the window: summaries for the Hints list, and the
learning-rate range test as a plot with a draggable marker.

The tools themselves (``training.engine.sanity`` through ``training.api``) import TensorFlow, so
they run in the engine's child process like a training run (``gui.worker.Job("tool")``);
their results arrive here as plain dicts (``training.service.messages.ToolResult``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPushButton, QVBoxLayout, QWidget

from gui.plots import COLOURS, apply_palette, light_grid
from training.events import Hint

TOOL_TITLES = {
    "check_setup": "Check setup",
    "overfit_tiny_subset": "Overfit a tiny subset",
    "lr_range_test": "Learning-rate range test",
}
TOOL_TIPS = {
    "check_setup": "Check the data, the untrained model's loss against ln(classes) and that "
                   "regularization reaches the loss (a few seconds; no run folder).",
    "overfit_tiny_subset": "Train on 20 images until they are memorized: a model or pipeline "
                           "that cannot is broken (up to a minute or two).",
    "lr_range_test": "Raise the learning rate step by step on a throwaway model and plot the "
                     "loss, to pick a rate (a minute or two).",
}


def learning_rate_key(result: dict[str, Any]) -> str:
    """The setting behind the rate a range test measured, as the engine names it (from scratch
    the one phase trains at ``optimizer.learning_rate``); by its phase for older results."""
    if result.get("learning_rate_key"):
        return str(result["learning_rate_key"])
    return "optimizer.learning_rate" if result.get("phase", "head") == "head" else "training.fine_tune_learning_rate"


def summary_hint(tool: str, result: dict[str, Any]) -> Hint | None:
    """A one-line outcome for the Hints list (the tools' own hints arrive as events)."""
    if result.get("stopped"):
        return Hint(id=f"{tool}_stopped", severity="info", title=f"{TOOL_TITLES[tool]}: stopped",
                    message="You stopped the tool before it finished.")
    if tool == "check_setup":
        problems = [h for h in result.get("hints", []) if h.get("severity") in ("warning", "error")]
        expected, initial = _float(result.get("expected_loss")), _float(result.get("initial_loss"))
        return Hint(id="check_setup_done", severity="info",
                    title="Setup check: " + (f"{len(problems)} problem(s), see above" if problems else "all good"),
                    message=(f"Untrained loss {initial:.3f} (a model guessing evenly over "
                             f"{result.get('num_classes')} classes: {expected:.3f}); with strong L2 "
                             f"{_float(result.get('regularized_loss')):.3f}."))
    if tool == "overfit_tiny_subset":
        if result.get("reached"):
            return Hint(id="overfit_done", severity="info",
                        title=f"Overfit test passed: {result.get('images')} images memorized",
                        message=(f"Training accuracy reached 100 % in {result.get('epochs')} epochs at "
                                 f"learning rate {_float(result.get('learning_rate')):.3g}: the model "
                                 "and the pipeline can learn."))
        return None  # the engine's own error hint says what is wrong
    if tool == "lr_range_test":
        return _lr_range_summary(result)
    return None


def _lr_range_summary(result: dict[str, Any]) -> Hint | None:
    """Words that agree with the engine's verdict on the curve: a rate only when one was
    suggested, cautious when the loss fell only a little, and nothing (the engine's hint says
    why no rate fits) when none was."""
    suggested = result.get("suggested_learning_rate")
    if suggested is None:
        return None
    fixes = [{learning_rate_key(result): float(suggested)}]
    plot = "The plot of loss against learning rate is open; drag the marker and apply the rate you choose."
    if result.get("verdict") == "shallow":
        fall = _float(result.get("fall"))
        return Hint(id="lr_range_done", severity="info",
                    title=f"Learning-rate range test: {suggested:.2g}, a cautious choice",
                    message=(f"The loss fell only a little over the range ({100 * fall:.0f} %), so the "
                             f"curve says little; {suggested:.2g} (it fell fastest near "
                             f"{_float(result.get('steepest_learning_rate')):.2g}) is a cautious choice. "
                             f"{plot} If training then stalls, use {TOOL_TITLES['check_setup']} in the "
                             "Tools menu."),
                    fixes=fixes)
    return Hint(id="lr_range_done", severity="info", title=f"Learning-rate range test: try {suggested:.2g}",
                message=plot, fixes=fixes)


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


class LRRangeDialog(QDialog):
    """Loss against learning rate (log x-axis) with a draggable marker.

    The marker starts at the suggested rate; "Apply this learning rate" emits
    ``apply_requested({key: rate})`` with the marker's rate rounded to two significant
    digits, where key is the setting of the phase the test measured.
    """

    apply_requested = Signal(dict)

    def __init__(self, result: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lrRangeDialog")
        self.setWindowTitle("Learning-rate range test")
        self.result = result
        self.key = learning_rate_key(result)
        rates = np.asarray(result.get("learning_rates") or [], float)
        losses = np.asarray([_float(v) for v in result.get("losses") or []], float)
        raw = np.asarray([_float(v) for v in result.get("raw_losses") or []], float)
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("lrRangePlot")
        self.plot.setLogMode(x=True, y=False)
        self.plot.setLabel("bottom", "learning rate")
        self.plot.setLabel("left", "training loss")
        light_grid(self.plot)
        self.plot.addLegend(offset=(-10, 10))
        if len(raw) == len(rates) and len(rates):
            self.plot.plot(rates, raw, pen=pg.mkPen(QColor(128, 128, 128, 110), width=1), name="loss")
        self.curve = self.plot.plot(rates, losses, pen=pg.mkPen(COLOURS["train"], width=2), name="smoothed loss")
        if len(losses) and np.isfinite(losses).any():
            finite = losses[np.isfinite(losses)]
            # Diverging losses would squash the useful part of the curve: show up to 1.5x the start.
            top = max(float(finite[0]) * 1.5, float(finite.min()) * 1.2)
            self.plot.setYRange(float(finite.min()) * 0.95, top, padding=0.02)
        suggested = result.get("suggested_learning_rate")
        start = suggested or (float(np.sqrt(rates[0] * rates[-1])) if len(rates) else 1e-3)
        self.marker = pg.InfiniteLine(pos=math.log10(start), angle=90, movable=True,
                                      pen=pg.mkPen(COLOURS["marker"], width=2),
                                      hoverPen=pg.mkPen(COLOURS["marker"], width=4))
        self.marker.setObjectName("lrMarker")
        if len(rates):
            self.marker.setBounds((math.log10(rates[0]), math.log10(rates[-1])))
        self.plot.addItem(self.marker)
        self.marker.sigPositionChanged.connect(self._on_marker_position_changed)
        apply_palette(self.plot)
        self.explanation = QLabel(self._explanation(suggested))
        self.explanation.setWordWrap(True)
        self.rate_label = QLabel()
        self.rate_label.setObjectName("lrMarkerRate")
        self.apply_button = QPushButton("Apply this learning rate")
        self.apply_button.setObjectName("applyLearningRateButton")
        self.apply_button.setToolTip(f"Set {self.key} to the marker's rate (for the next run).")
        self.apply_button.clicked.connect(self._on_apply_button_clicked)
        self.apply_button.setEnabled(len(rates) > 0)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.apply_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.explanation)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.rate_label)
        layout.addWidget(buttons)
        self.resize(760, 520)
        self.setWindowModality(Qt.WindowModality.NonModal)  # the settings stay editable
        self._on_marker_position_changed()

    def _explanation(self, suggested: float | None) -> str:
        text = ("The training loss while the learning rate grew exponentially on a throwaway model. "
                "Good rates sit where the loss falls fastest, well before it turns up. ")
        if suggested:
            text += (f"The marker starts at the suggested {suggested:.2g}; drag it to choose another rate. "
                     f"Applying sets <b>{self.key}</b>.")
        else:
            text += "No rate could be suggested: the curve shows no rate that helps (the Hints say why)."
        if self.result.get("diverged"):
            text += " The test ended early when the loss diverged."
        return text

    def rate(self) -> float:
        """The marker's learning rate, two significant digits."""
        return float(f"{10 ** self.marker.value():.2g}")

    def _on_marker_position_changed(self) -> None:
        self.rate_label.setText(f"Marker: learning rate {self.rate():.2g}")

    def _on_apply_button_clicked(self) -> None:
        self.apply_requested.emit({self.key: self.rate()})

"""The Optimizer and schedule panel: only the parameters that apply are shown, and the
planned learning rate of the whole run is plotted before training starts."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QCheckBox, QLabel, QWidget

from gui import engine_calls
from gui.forms import ConfigForm
from gui.plots import CompactAxis, fit_rates_from_zero, light_grid
from gui.tasks import BackgroundTasks
from gui.words import PLAIN
from training.api import Config, phase_plan
from training.config import SCHEDULES

OPTIMIZER_KEYS = ("optimizer.name", "optimizer.learning_rate", "training.fine_tune_learning_rate",
                  "optimizer.momentum", "optimizer.nesterov", "optimizer.amsgrad", "optimizer.weight_decay",
                  "optimizer.clipnorm", "optimizer.clipvalue", "optimizer.ema", "optimizer.ema_momentum")
SCHEDULE_KEYS = ("schedule.name", "schedule.warmup_epochs", "schedule.step_epochs", "schedule.decay_rate",
                 "schedule.min_learning_rate", "schedule.restart_epochs", "schedule.restart_t_mul",
                 "schedule.restart_m_mul", "schedule.save_snapshots", "schedule.cycle_epochs", "schedule.one_cycle_warmup_fraction",
                 "schedule.plateau_patience")
# Which optimizer parameters each optimizer uses (the others are hidden): training/engine/optim.py
# passes momentum to SGD only.
OPTIMIZER_PARAMS = {
    "optimizer.momentum": ("sgd",),
    "optimizer.nesterov": ("sgd",),
    "optimizer.amsgrad": ("adam", "adamw"),
}
# Which schedule parameters each schedule uses (training/engine/optim.py's formulas).
SCHEDULE_PARAMS = {
    "schedule.warmup_epochs": tuple(s for s in SCHEDULES if s != "reduce_on_plateau"),
    "schedule.step_epochs": ("step",),
    "schedule.decay_rate": ("step", "exponential", "inverse_time", "reduce_on_plateau"),
    "schedule.min_learning_rate": ("cosine", "cosine_restarts", "cyclic", "one_cycle", "reduce_on_plateau"),
    "schedule.restart_epochs": ("cosine_restarts",),
    "schedule.restart_t_mul": ("cosine_restarts",),
    "schedule.restart_m_mul": ("cosine_restarts",),
    "schedule.save_snapshots": ("cosine_restarts",),
    "schedule.cycle_epochs": ("cyclic",),
    "schedule.one_cycle_warmup_fraction": ("one_cycle",),
    "schedule.plateau_patience": ("reduce_on_plateau",),
}
PLAN_DEBOUNCE_MS = 250
PHASE_NAMES = {"head": "head", "fine_tune": "fine-tune"}


def planned_curve(rates: dict[str, list[float]], steps_per_epoch: int) -> tuple[list[float], list[float]]:
    """Concatenates the phases' planned rates on an epoch axis (step 1 of epoch 1 at 1/E)."""
    values = list(rates.get("head", [])) + list(rates.get("fine_tune", []))
    epochs = (np.arange(1, len(values) + 1) / max(1, steps_per_epoch)).tolist()
    return epochs, values


class LearningRatePlot(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, axisItems={"left": CompactAxis("left")})
        self.setObjectName("plannedLearningRatePlot")
        self.setFixedHeight(170)
        self.setLabel("bottom", "epoch")
        self.setLabel("left", "learning rate")
        light_grid(self)
        self.getAxis("left").enableAutoSIPrefix(False)
        self.curve = self.plot([], [], pen=pg.mkPen("#2ca02c", width=2))
        self.marker = pg.InfiniteLine(angle=90, pen=pg.mkPen("#d62728", style=pg.QtCore.Qt.PenStyle.DashLine))
        self.marker.hide()
        self.addItem(self.marker)
        self.setToolTip("The learning rate at every step of the planned run, head phase then "
                        "fine-tuning (red line). Reduce-on-plateau is drawn as if no plateau came.")

    def show_plan(self, epochs: list[float], values: list[float], fine_tune_start: float | None) -> None:
        self.curve.setData(np.asarray(epochs, float), np.asarray(values, float))
        fit_rates_from_zero(self, values)
        if fine_tune_start is None:
            self.marker.hide()
        else:
            self.marker.setPos(fine_tune_start)
            self.marker.show()


class OptimizerPanel(ConfigForm):
    def __init__(self, config_source: Callable[[], Config | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._config_source = config_source
        self.steps_per_epoch: int | None = None
        self.plan: tuple[list[float], list[float]] = ([], [])
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)
        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(PLAN_DEBOUNCE_MS)
        self.debounce.timeout.connect(self.refresh_plan)
        self.on_plan: Callable[[list[float], list[float]], None] | None = None
        self.words = PLAIN  # the window gives its own (with each key's tab)
        self._build_optimizer_group()
        self._build_schedule_group()
        self._build_plot()
        self.finish()

    def _build_optimizer_group(self) -> None:
        self._optimizer_form = self.group("Optimizer", "optimizerGroup")
        for key in OPTIMIZER_KEYS:
            self.row(self._optimizer_form, key)

    def _build_schedule_group(self) -> None:
        self._schedule_form = self.group("Learning-rate schedule", "scheduleGroup")
        for key in SCHEDULE_KEYS:
            self.row(self._schedule_form, key)

    def _build_plot(self) -> None:
        form = self.group("Planned learning rate", "plannedRateGroup")
        self.plan_status = QLabel("Load a folder to plan the steps.")
        self.plan_status.setObjectName("planStatus")
        self.plan_status.setWordWrap(True)
        form.addRow(self.plan_status)
        self.plot = LearningRatePlot()
        form.addRow(self.plot)

    # -- relevance ----------------------------------------------------------------------
    def after_load(self, config: Config) -> None:
        self._update_visibility()
        self.debounce.start()

    def on_field_changed(self) -> None:
        self._update_visibility()
        self.debounce.start()

    def _update_visibility(self) -> None:
        optimizer = self.bindings["optimizer.name"].get()
        schedule = self.bindings["schedule.name"].get()
        for key, used_by in OPTIMIZER_PARAMS.items():
            widget = self.bindings[key].widget
            self._optimizer_form.setRowVisible(widget, optimizer in used_by)
            # A hidden option must not keep a value the new optimizer refuses.
            if optimizer not in used_by and isinstance(widget, QCheckBox) and widget.isChecked():
                widget.blockSignals(True)
                widget.setChecked(False)
                widget.blockSignals(False)
        self._optimizer_form.setRowVisible(self.bindings["optimizer.ema_momentum"].widget,
                                           self.bindings["optimizer.ema"].get())
        for key, used_by in SCHEDULE_PARAMS.items():
            self._schedule_form.setRowVisible(self.bindings[key].widget, schedule in used_by)

    def visible_keys(self) -> set[str]:
        """Config keys whose rows are shown now (tests check the relevance rules)."""
        return {key for key, b in self.bindings.items() if not b.widget.isHidden()}

    # -- planned learning rate ------------------------------------------------------------
    def set_steps_per_epoch(self, steps: int | None) -> None:
        self.steps_per_epoch = steps
        self.debounce.start()

    def schedule_plan(self) -> None:
        """Plans again shortly: the plan depends on settings of other tabs too (epochs and
        training mode on the Model tab, batch size and data on the Data tab), so the window
        calls this after every valid change; the debounce makes a burst of edits one plan."""
        self.debounce.start()

    def refresh_plan(self) -> None:
        config = self._config_source()
        if config is None or not self.steps_per_epoch:
            return
        self.plan_status.setText("Computing the plan…")
        self.tasks.submit("plan", _plan, config, self.steps_per_epoch)

    def _on_tasks_done(self, name: str, result: Any) -> None:
        epochs, values, fine_tune_start, text = result
        self.plan = (epochs, values)
        self.plot.show_plan(epochs, values, fine_tune_start)
        self.plan_status.setText(self.words.plain(text))
        if self.on_plan is not None:
            self.on_plan(epochs, values)

    def _on_tasks_failed(self, name: str, error: Exception) -> None:
        self.plan_status.setText(f"Cannot plan the learning rate: {error}")


def _plan(config: Config, steps_per_epoch: int) -> tuple[list[float], list[float], float | None, str]:
    rates = engine_calls.planned_learning_rates(config, steps_per_epoch)
    epochs, values = planned_curve(rates, steps_per_epoch)
    head_steps = len(rates.get("head", []))
    fine_tune_start = head_steps / steps_per_epoch if rates.get("fine_tune") and head_steps else None
    phases = "; ".join(f"{PHASE_NAMES.get(p.phase, p.phase)}: {p.describe_rate()}" for p in phase_plan(config))
    text = (f"{len(values)} steps ({steps_per_epoch} per epoch); rate from "
            f"{min(values, default=0):.3g} to {max(values, default=0):.3g}.\nBase rates: {phases}.")
    return epochs, values, fine_tune_start, text

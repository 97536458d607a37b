"""A search's trials as they come: a table sorted by validation accuracy, and a plot of
validation accuracy against one searched setting (the Search dialog's right-hand side).

The best trial is the engine's own (``training.search.best_record``: the highest validation
accuracy of a completed trial, then the lowest loss). Settings are named by their controls'
labels; a log range gets a log axis, a list of choices one tick per choice.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.plots import apply_palette, light_grid
from gui.words import PLAIN, Words
from training.config.knobs import number_text
from training.search import TrialRecord, best_record

COLUMNS = ("Trial", "Stage", "Status", "Val accuracy", "Val loss")
STAGE_SERIES = (("coarse", "o", "#1f77b4"), ("fine", "t", "#2ca02c"))  # stage, symbol, colour
RUN_ROLE = Qt.ItemDataRole.UserRole  # the trial's run folder, on the first column


def choice_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def value_text(value: Any) -> str:
    """A searched value, short: 3 significant digits."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if value is None:
        return ""
    return number_text(value) if isinstance(value, int) and not isinstance(value, bool) else choice_text(value)


def metric_text(value: float | None) -> str:
    return f"{value:.3f}" if value is not None and math.isfinite(value) else ""


def ranked(records: list[TrialRecord]) -> list[TrialRecord]:
    """The highest validation accuracy first (then the lowest loss, then the earliest); trials
    without an accuracy (running, failed) last, in their order."""
    def key(record: TrialRecord) -> tuple:
        if record.val_accuracy is None or not math.isfinite(record.val_accuracy):
            return (1, 0.0, 0.0, record.trial)
        loss = record.val_loss if record.val_loss is not None and math.isfinite(record.val_loss) else math.inf
        return (0, -record.val_accuracy, loss, record.trial)
    return sorted(records, key=key)


class SearchTrialsView(QWidget):
    """The table over the plot; ``show_search`` for a new search, ``show_trials`` as they end."""

    open_requested = Signal(str)  # a trial's run folder, double-clicked

    def __init__(self, parent: QWidget | None = None, *, words: Words | None = None) -> None:
        super().__init__(parent)
        self.words = words or PLAIN
        self.space: dict[str, dict] = {}   # the search's space, SPACE.json form
        self.keys: list[str] = []
        self.records: list[TrialRecord] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("trialsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip("Every trial, the most accurate first (validation accuracy of its best "
                              "epoch; the best in bold). Double-click a trial to see its results.")
        self.table.cellDoubleClicked.connect(self._on_table_cell_double_clicked)
        self.plot_knob = QComboBox()
        self.plot_knob.setObjectName("plotKnob")
        self.plot_knob.setToolTip("The searched setting along the horizontal axis.")
        self.plot_knob.currentIndexChanged.connect(self.redraw_plot)
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("searchPlot")
        self.plot.setMinimumHeight(160)
        light_grid(self.plot)
        self.plot.setLabel("left", "Validation accuracy")
        self.plot.addLegend(offset=(-10, 10))
        for side in ("left", "bottom"):  # "(x0.001)" beside 400 reads worse than 0.4
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        # One series per stage (a coarse trial trained a third of the epochs: not comparable
        # with a fine one), and the best trial ringed.
        self.series = {stage: pg.PlotDataItem([], [], pen=None, symbol=symbol, symbolSize=9, symbolBrush=colour,
                                              symbolPen=None, name=f"{stage} trials")
                       for stage, symbol, colour in STAGE_SERIES}
        self.best_point = pg.PlotDataItem([], [], pen=None, symbol="o", symbolSize=18, symbolBrush=None,
                                          symbolPen=pg.mkPen("#ff7f0e", width=2.5), name="best")
        for item in (*self.series.values(), self.best_point):
            self.plot.addItem(item)
        apply_palette(self.plot)
        plot_holder = QWidget()
        plot_layout = QVBoxLayout(plot_holder)
        plot_layout.setContentsMargins(0, 0, 0, 0)
        knob_row = QHBoxLayout()
        knob_row.addWidget(QLabel("Accuracy against"))
        knob_row.addWidget(self.plot_knob, 1)
        plot_layout.addLayout(knob_row)
        plot_layout.addWidget(self.plot, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("searchOutputSplitter")
        splitter.addWidget(self.table)
        splitter.addWidget(plot_holder)
        splitter.setSizes([260, 300])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    def show_search(self, space: dict[str, dict]) -> None:
        """A new search: one column and one plot choice per searched setting, no trials yet."""
        self.space, self.keys, self.records = dict(space), list(space), []
        self.table.setColumnCount(len(COLUMNS) + len(self.keys))
        self.table.setHorizontalHeaderLabels([*COLUMNS, *(self.words.label(k) for k in self.keys)])
        self.plot_knob.blockSignals(True)
        self.plot_knob.clear()
        for key in self.keys:
            self.plot_knob.addItem(self.words.label(key), key)
        self.plot_knob.blockSignals(False)
        self.show_trials([])

    def show_trials(self, records: list[TrialRecord]) -> None:
        """Every trial so far (a running one with the status "running")."""
        self.records = ranked(records)
        best = self.best()
        self.table.setRowCount(len(self.records))
        bold = QFont()
        bold.setBold(True)
        for line, record in enumerate(self.records):
            texts = [str(record.trial), record.stage, record.status, metric_text(record.val_accuracy),
                     metric_text(record.val_loss), *(value_text(record.params.get(k)) for k in self.keys)]
            for column, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if column == 0:
                    item.setData(RUN_ROLE, record.run_dir)
                if column == 2 and record.reason:
                    item.setToolTip(self.words.plain(record.reason))
                if best is not None and record.trial == best.trial:
                    item.setFont(bold)
                self.table.setItem(line, column, item)
        self.redraw_plot()

    def best(self) -> TrialRecord | None:
        return best_record([r for r in self.records if r.status != "running"])

    def plot_points(self) -> list[tuple[float, float]]:
        """(x, validation accuracy) of each point drawn: the setting's value (a choice's index)."""
        points = []
        for item in self.series.values():
            xs, ys = item.getOriginalDataset()
            points += [(float(x), float(y)) for x, y in zip(xs if xs is not None else [], ys if ys is not None else [])]
        return points

    def redraw_plot(self) -> None:
        key = self.plot_knob.currentData()
        entry = self.space.get(key, {}) if key else {}
        choices, log = entry.get("choices"), bool(entry.get("log"))
        self.plot.getPlotItem().setLogMode(x=log, y=False)
        self.plot.getAxis("bottom").setTicks([[(i, choice_text(c)) for i, c in enumerate(choices)]] if choices else None)
        self.plot.setLabel("bottom", self.words.label(key) if key else "")
        best = self.best()
        points: dict[str, tuple[list[float], list[float]]] = {stage: ([], []) for stage in self.series}
        best_xy: tuple[list[float], list[float]] = ([], [])
        for record in self.records:
            x = _plot_x(record, key, choices, log)
            if x is None:
                continue
            for xs, ys in (points.get(record.stage, points["coarse"]),
                           *([best_xy] if best is not None and record.trial == best.trial else [])):
                xs.append(x)
                ys.append(record.val_accuracy)
        for stage, series in self.series.items():
            series.setData(*points[stage])
        self.best_point.setData(*best_xy)
        # The whole searched range along x, so the points show where in it they fell.
        if choices:
            self.plot.setXRange(-0.5, len(choices) - 0.5, padding=0.02)
        elif "low" in entry:
            low, high = entry["low"], entry["high"]
            self.plot.setXRange(*((math.log10(low), math.log10(high)) if log else (low, high)), padding=0.04)
        ys = [y for _, y in self.plot_points()]
        if ys:
            self.plot.setYRange(max(0.0, min(ys) - 0.05), min(1.0, max(ys) + 0.05), padding=0)

    def _on_table_cell_double_clicked(self, row: int, _column: int) -> None:
        item = self.table.item(row, 0)
        run_dir = item.data(RUN_ROLE) if item is not None else ""
        if run_dir:
            self.open_requested.emit(run_dir)


def _plot_x(record: TrialRecord, key: str | None, choices: list | None, log: bool) -> float | None:
    """Where a trial goes along x: its value (a choice's index); None when it has no score."""
    if key is None or record.val_accuracy is None or key not in record.params:
        return None
    value = record.params[key]
    if choices:
        return float(choices.index(value)) if value in choices else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or (log and value <= 0):
        return None
    return float(value)

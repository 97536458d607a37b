"""Compare runs: their validation curves overlaid (one colour a run), their best metrics side
by side and the settings that differ between them, the values that differ from the first
run's highlighted. The same diff as ``python main.py compare`` (``training.api.config_diff``),
in the window's words: control labels and values as the controls show them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QApplication,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.plots import TrainingPlot
from gui.words import PLAIN, Words
from training import api
from training.api import Config
from training.files import display_path
from training.rundir import RunDirError

# One colour a run (matplotlib's "tab10"); more runs than colours take them again, dashed.
RUN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf")
COLUMN_MAX_PX = 240  # a longer value (a folder's path) is elided; its tooltip holds it all
# (metric, row title, whether higher is better)
METRICS = (("val_accuracy", "Validation accuracy", True), ("val_loss", "Validation loss", False),
           ("accuracy", "Training accuracy", True), ("loss", "Training loss", False))


@dataclass(frozen=True)
class ComparedRun:
    """What the dialog shows of one run."""

    run_dir: str
    name: str              # its column's title and its legend entry
    record: Any            # training.experiments.RunRecord
    config: Config
    metrics: list[dict[str, Any]]  # metrics.csv, one dict an epoch


def load_compared(run_dirs: list[str]) -> list[ComparedRun]:
    """Reads each run's record, config and metrics (call it off the GUI thread).

    Raises:
        RunDirError: a folder is not a run any more, or its config.json or metrics.csv
            cannot be read; the message names the folder.
    """
    names = run_names(run_dirs)
    runs = []
    for run_dir, name in zip(run_dirs, names):
        record = api.read_run(run_dir)
        if record is None:
            raise RunDirError(f"{display_path(run_dir)} is not a run folder any more (was it moved or "
                              "deleted?). Refresh the list of runs.")
        runs.append(ComparedRun(run_dir, name, record, api.run_config(run_dir), api.read_metrics(run_dir)))
    return runs


def run_names(run_dirs: list[str]) -> list[str]:
    """Each folder's name, or its last two parts where names repeat (two searches' trial-000)."""
    names = [Path(run_dir).name for run_dir in run_dirs]
    if len(set(names)) == len(names):
        return names
    return [Path(*Path(run_dir).parts[-2:]).as_posix() for run_dir in run_dirs]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


class RunsCompareDialog(QDialog):
    """Two or more runs side by side (non-modal)."""

    def __init__(self, runs: list[ComparedRun], *, words: Words | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runsCompareDialog")
        self.setWindowTitle(f"Compare {len(runs)} runs")
        self.runs = list(runs)
        self.words = words or PLAIN
        self.diff = api.config_diff([run.config for run in self.runs])
        self.diff_keys = list(self.diff)
        self.loss_plot = TrainingPlot("Validation loss", "loss", "compareLossPlot")
        self.accuracy_plot = TrainingPlot("Validation accuracy", "accuracy", "compareAccuracyPlot")
        self._plot_curves()
        self.metrics_table = self._metrics_table()
        self.diff_table = self._diff_table()
        self._align_columns()
        self._build()
        screen = QGuiApplication.primaryScreen()
        available = screen.availableGeometry() if screen is not None else None
        width, height = 1100, 760
        if available is not None:  # a small screen (1024x700) gets a dialog that fits on it
            width, height = min(width, available.width() - 40), min(height, available.height() - 60)
        self.resize(width, height)
        self.splitter.setSizes([round(height * 0.42), round(height * 0.58)])  # the tables are the news

    # -- the curves --------------------------------------------------------------------------------
    def _plot_curves(self) -> None:
        for index, run in enumerate(self.runs):
            colour = RUN_COLOURS[index % len(RUN_COLOURS)]
            style = Qt.PenStyle.DashLine if index >= len(RUN_COLOURS) else None
            epochs = [float(row["epoch"]) for row in run.metrics]
            for plot, key in ((self.loss_plot, "val_loss"), (self.accuracy_plot, "val_accuracy")):
                series = plot.add_series(run.run_dir, run.name, colour, symbol="o", width=2.0, style=style)
                series.set(epochs, [row.get(key, math.nan) for row in run.metrics])
        for plot in self.plots:
            plot.redraw()
        self.accuracy_plot.setYRange(0, 1)

    @property
    def plots(self) -> tuple[TrainingPlot, TrainingPlot]:
        return self.loss_plot, self.accuracy_plot

    # -- the tables ----------------------------------------------------------------------------------
    def _table(self, name: str, rows: int) -> QTableWidget:
        table = QTableWidget(rows, len(self.runs))
        table.setObjectName(name)
        table.setHorizontalHeaderLabels([run.name for run in self.runs])
        for column, run in enumerate(self.runs):
            table.horizontalHeaderItem(column).setToolTip(display_path(run.run_dir))
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.setWordWrap(False)
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        table.horizontalHeader().setMinimumSectionSize(60)
        table.setMinimumSize(40, 40)
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)
        return table

    def _cell(self, text: str, *, highlight: bool = False, tip: str = "") -> QTableWidgetItem:
        item = QTableWidgetItem(text)
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        if tip:
            item.setToolTip(tip)
        if highlight:
            font = QFont(item.font())
            font.setBold(True)
            item.setFont(font)
            colour = QColor(QApplication.palette().color(QPalette.ColorRole.Highlight))
            colour.setAlpha(70)
            item.setBackground(QBrush(colour))
            item.setData(Qt.ItemDataRole.UserRole, True)  # highlighted (tests read it)
        return item

    def _metrics_table(self) -> QTableWidget:
        """Status, best epoch and the best epoch's metrics; the best value of each row highlighted."""
        table = self._table("compareMetricsTable", 2 + len(METRICS))
        table.setVerticalHeaderLabels(["Status", "Best epoch", *(title for _, title, _ in METRICS)])
        for column, run in enumerate(self.runs):
            table.setItem(0, column, self._cell(run.record.status, tip=self.words.plain(run.record.reason)))
            table.setItem(1, column, self._cell(str(run.record.best_epoch or "-")))
        for row, (key, _, higher) in enumerate(METRICS, start=2):
            values = [_number(run.record.best_metrics.get(key)) for run in self.runs]
            known = [value for value in values if value is not None]
            best = (max(known) if higher else min(known)) if len(known) > 1 else None
            for column, value in enumerate(values):
                text = "-" if value is None else (f"{100 * value:.1f} %" if "accuracy" in key else f"{value:.4g}")
                table.setItem(row, column, self._cell(text, highlight=value is not None and value == best))
        # All its rows in sight: it grows with them, and only the settings' table scrolls.
        table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        return table

    def _diff_table(self) -> QTableWidget:
        """One row a setting that differs; each value that is not the first run's highlighted."""
        table = self._table("compareDiffTable", len(self.diff))
        table.setVerticalHeaderLabels([self.words.control(key) for key in self.diff])
        for row, (key, values) in enumerate(self.diff.items()):
            table.verticalHeaderItem(row).setToolTip(f"{key} in the config file")
            for column, value in enumerate(values):
                text = self.words.value(key, value)
                table.setItem(row, column, self._cell(text, highlight=value != values[0], tip=text))
        return table

    def _align_columns(self) -> None:
        """The two tables' run columns line up: the same header width and column widths."""
        tables = (self.metrics_table, self.diff_table)
        for table in tables:
            table.resizeColumnsToContents()
        for column in range(len(self.runs)):
            width = min(max(table.columnWidth(column) for table in tables), COLUMN_MAX_PX)
            for table in tables:
                table.setColumnWidth(column, width)
        header = max(table.verticalHeader().sizeHint().width() for table in tables)
        for table in tables:
            table.verticalHeader().setFixedWidth(header)

    def highlighted(self, table: QTableWidget) -> list[tuple[int, int]]:
        """The (row, column) cells shown highlighted."""
        return [(row, column) for row in range(table.rowCount()) for column in range(table.columnCount())
                if table.item(row, column) is not None and table.item(row, column).data(Qt.ItemDataRole.UserRole)]

    # -- layout -------------------------------------------------------------------------------------
    def _build(self) -> None:
        plots = QWidget()
        plots_layout = QHBoxLayout(plots)
        plots_layout.setContentsMargins(0, 0, 0, 0)
        for plot in self.plots:
            plot.setMinimumSize(160, 140)
            plots_layout.addWidget(plot)
        first = self.runs[0].name if self.runs else ""
        diff_title = QLabel(f"Settings that differ ({len(self.diff)}): highlighted where not as in "
                            f"the first run, {first}." if self.diff else
                            "The settings are the same in these runs.")
        diff_title.setObjectName("compareDiffTitle")
        diff_title.setWordWrap(True)
        metrics_title = QLabel("Best epoch of each run (the best value of each row highlighted):")
        metrics_title.setWordWrap(True)
        tables = QWidget()
        tables_layout = QVBoxLayout(tables)
        tables_layout.setContentsMargins(0, 0, 0, 0)
        tables_layout.addWidget(metrics_title)
        tables_layout.addWidget(self.metrics_table)
        tables_layout.addWidget(diff_title)
        tables_layout.addWidget(self.diff_table, 1)
        self.diff_table.setVisible(bool(self.diff))
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("compareSplitter")
        splitter.addWidget(plots)
        splitter.addWidget(tables)
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)

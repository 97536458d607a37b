"""Live training plots: loss, accuracy and learning rate, redrawn from buffers by a timer.

Events only append floats to Python lists (constant time, in the GUI thread); a 100 ms
timer pushes whole arrays into the curves whose buffers changed (pyqtgraph's
``examples/scrollingPlots.py`` pattern). The x axis of every plot is the epoch, so a
batch half-way through epoch 3 sits at 2.5 and the epoch-3 point at 3.0.

Each plot's legend has its own row above the data, so it never hides the newest points;
the hover read-out floats above everything and stays inside the plot.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QGridLayout,
    QSizePolicy,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui.forms import tooltip
from training.events import BatchEnd, DataReport, EpochEnd, Event, PhaseChanged, RunStarted

SMOOTHING = 0.8  # weight of the running average, as TensorBoard's smoothing slider
REDRAW_MS = 100
# Narrower than this (an 800 px window), the three plots take turns in tabs rather than
# squeezing the accuracy and learning-rate plots to unreadable slivers side by side.
COMPACT_WIDTH = 560
COLOURS = {"train": "#1f77b4", "val": "#ff7f0e", "lr": "#2ca02c", "planned": "#7f7f7f",
           "marker": "#d62728"}
# A curve that moves by less than this fraction of its size is drawn flat: auto-range
# would otherwise blow 1.6094 +- 1e-4 up to the full height, as if the loss jumped.
MIN_RELATIVE_SPAN = 1e-3
EARLIER_RUNS_KEPT = 10
READOUT_GAP = 12  # pixels between the pointer and the read-out


def number(value: Any) -> float:
    """Event floats come back from JSON as None for NaN/inf."""
    return float("nan") if value is None else float(value)


class Series:
    """One curve's x/y buffer and whether the curve must be redrawn.

    ``keep`` series (the planned learning rate) belong to the settings, not to a run, so
    starting a run leaves them alone.
    """

    def __init__(self, curve: pg.PlotDataItem, *, keep: bool = False) -> None:
        self.curve = curve
        self.keep = keep
        self.x: list[float] = []
        self.y: list[float] = []
        self.magnitude = 0.0  # the largest finite |y|, for the smallest span worth showing
        self.dirty = False

    def append(self, x: float, y: float) -> None:
        self.x.append(x)
        self.y.append(y)
        if math.isfinite(y):
            self.magnitude = max(self.magnitude, abs(y))
        self.dirty = True

    def set(self, x: list[float], y: list[float]) -> None:
        self.x, self.y = list(x), list(y)
        finite = [abs(v) for v in self.y if v is not None and math.isfinite(v)]
        self.magnitude = max(finite, default=0.0)
        self.dirty = True

    def clear(self) -> None:
        self.set([], [])

    def redraw(self) -> None:
        if self.dirty:
            self.curve.setData(np.asarray(self.x, float), np.asarray(self.y, float))
            self.dirty = False


@dataclass(frozen=True)
class DataIdentity:
    """What makes two runs' curves comparable: the same folders and the same classes.
    ``classes`` is None until the run's DataReport says them."""

    folder: str
    validation_folder: str
    classes: tuple[str, ...] | None = None

    def matches(self, other: DataIdentity) -> bool:
        same_folders = (self.folder, self.validation_folder) == (other.folder, other.validation_folder)
        return same_folders and (self.classes is None or other.classes is None or self.classes == other.classes)


def data_identity(config: dict) -> DataIdentity:
    """The data of a run as its RunStarted event's config names it."""
    data = config.get("data") or {}
    return DataIdentity(_same_path(data.get("dir")), _same_path(data.get("validation_dir")))


def _same_path(path: Any) -> str:
    """One spelling per folder ("a/b/", "a/./b" and "a/b" are one folder); names like
    ``builtin:shapes`` pass through unchanged."""
    return os.path.normcase(os.path.normpath(os.path.expanduser(str(path)))) if path else ""


def fit_rates_from_zero(plot: pg.PlotWidget, values: list[float]) -> None:
    """Learning rates from 0 to a little above their largest: auto-range centres a constant
    rate of 0.003 in [-0.5, 0.5], where it reads as 0."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if finite and max(finite) > 0:
        plot.setYRange(0.0, max(finite) * 1.15, padding=0)


def light_grid(plot: pg.PlotItem | pg.PlotWidget) -> None:
    """A grid at the labelled ticks only. pyqtgraph's default also draws the minor ticks'
    lines, and replaying them cost 3-4 ms per axis per repaint: 40-60 ms for the window,
    the largest stall left while training (benchmarks/gui_responsiveness.py)."""
    plot.showGrid(x=True, y=True, alpha=0.25)
    for side in ("left", "bottom"):
        plot.getAxis(side).setStyle(maxTickLevel=0)


def apply_palette(plot: pg.PlotWidget, title: str | None = None) -> None:
    """Re-colours a plot for the current application palette (light/dark switch)."""
    palette = QApplication.palette()
    text = palette.color(QPalette.ColorRole.Text)
    plot.setBackground(palette.color(QPalette.ColorRole.Base))
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen(text)
        axis.setTextPen(text)
    if title:
        plot.setTitle(title, color=text)
    legend = plot.getPlotItem().legend
    if legend is not None:
        legend.setLabelTextColor(text)
        for _sample, label in legend.items:
            label.setText(label.text)  # setAttr alone does not re-render the label
        legend.setBrush(_translucent(palette.color(QPalette.ColorRole.Base)))


def _translucent(colour: QColor, alpha: int = 190) -> QColor:
    colour = QColor(colour)
    colour.setAlpha(alpha)
    return colour


def _plan_pen() -> Any:
    """The planned rate in the text colour, half-transparent and dashed: grey on white and
    on black alike, and plainly not the live (green) rate drawn over it."""
    text = QApplication.palette().color(QPalette.ColorRole.Text)
    return pg.mkPen(_translucent(text, 170), width=2, style=Qt.PenStyle.DashLine)


def configure_pyqtgraph() -> None:
    """Plots follow the system palette (light or dark) instead of pyqtgraph's black."""
    palette = QApplication.palette()
    pg.setConfigOptions(antialias=True,
                        background=palette.color(QPalette.ColorRole.Base),
                        foreground=palette.color(QPalette.ColorRole.Text))


def tick_labels(values: list[float], spacing: float) -> list[str]:
    """Tick labels in three significant digits (0.001, 1e-05, 2.5), or as many more as it
    takes to tell the ticks apart: a loss flat at 1.6094 gets 1.6092, 1.6094, ...
    rather than 1.61 on every tick."""
    # Tick positions are multiples of the spacing up to float noise: 0 can arrive as 1e-17.
    values = [0.0 if abs(v) < abs(spacing) * 1e-9 else v for v in values]
    largest = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    digits = 3
    if largest > 0 and spacing > 0:
        digits = max(digits, math.floor(math.log10(largest)) - math.floor(math.log10(spacing)) + 1)
    if 1 <= largest < 1e6:
        digits = max(digits, math.floor(math.log10(largest)) + 1)  # 12000, not 1.2e+04
    labels = [f"{v:.{min(digits, 15)}g}" for v in values]
    while len(set(labels)) < len(labels) and digits < 15:
        digits += 1
        labels = [f"{v:.{digits}g}" for v in values]
    return labels


class CompactAxis(pg.AxisItem):
    """Tick labels like 0.001 or 1e-05 (learning rates), never two alike."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return tick_labels([value * scale for value in values], spacing * scale)


class RowLegend(pg.LegendItem):
    """A legend laid out in its own row of the plot, above the data instead of on it:
    the entries side by side, wrapped onto more lines when the plot is narrow."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(offset=None, **kwargs)
        self.layout.setContentsMargins(0, 1, 0, 1)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)

    def _addItemToLayout(self, sample: Any, label: Any) -> None:  # noqa: N802
        # Entry i goes to row i // columns: pyqtgraph's own placement loses count when
        # the entries are laid out again with fewer columns.
        row, column = divmod(self.layout.count() // 2, self.columnCount)
        self.layout.addItem(sample, row, 2 * column, alignment=Qt.AlignmentFlag.AlignVCenter)
        self.layout.addItem(label, row, 2 * column + 1)

    def updateSize(self) -> None:  # noqa: N802
        # The plot's layout sizes the legend; pyqtgraph's setGeometry would move it to (0, 0).
        self.updateGeometry()

    def fit_width(self, width: float) -> None:
        """As many entries a line as fit in ``width`` pixels."""
        widths = [self._entry_width(sample, label) for sample, label in self.items]
        columns = max(len(widths), 1)
        while columns > 1 and _grid_width(widths, columns) > width:
            columns -= 1
        if columns != self.columnCount:
            self.setColumnCount(columns)

    def _entry_width(self, sample: Any, label: Any) -> float:
        hint = Qt.SizeHint.PreferredSize
        spacing = self.layout.horizontalSpacing()
        return sample.effectiveSizeHint(hint).width() + label.effectiveSizeHint(hint).width() + 2 * spacing

    def hoverEvent(self, event: Any) -> None:  # noqa: N802
        """Not draggable: a legend in a layout has no place to be dragged to."""

    def mouseDragEvent(self, event: Any) -> None:  # noqa: N802
        event.ignore()


def _grid_width(widths: list[float], columns: int) -> float:
    """Width of ``widths`` laid out ``columns`` a line, each column as wide as its widest."""
    return sum(max(widths[column::columns]) for column in range(columns))


class TrainingPlot(pg.PlotWidget):
    """A plot with a legend above the data, a hover read-out and fine-tune markers."""

    def __init__(self, title: str, y_label: str, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent, axisItems={"left": CompactAxis("left")})
        self.setObjectName(name)
        self.title = title
        self.setTitle(title)
        self.setLabel("bottom", "epoch")
        self.setLabel("left", y_label)
        light_grid(self)
        self.getAxis("left").enableAutoSIPrefix(False)
        self.getPlotItem().layout.setContentsMargins(2, 2, 12, 2)
        self.legend = self._add_row_legend()
        self.getPlotItem().setMenuEnabled(True)
        self.series: dict[str, Series] = {}
        self.markers: list[pg.InfiniteLine] = []
        self.faint: list[pg.PlotDataItem] = []
        self._readout = self._make_readout()
        self._hover = pg.SignalProxy(self.scene().sigMouseMoved, rateLimit=30, slot=self._on_scene_mouse_moved)
        self.getPlotItem().vb.sigResized.connect(self._on_view_resized)
        self.setToolTip("Drag to pan, wheel to zoom, right-click for options; "
                        "double-click or 'A' button to fit.")

    def _add_row_legend(self) -> RowLegend:
        """The legend takes the row of the (never shown) top axis, between title and data,
        and the width of the axis column beside it too."""
        item = self.getPlotItem()
        palette = QApplication.palette()
        legend = RowLegend(labelTextSize="8pt", horSpacing=4,
                           brush=_translucent(palette.color(QPalette.ColorRole.Base)),
                           labelTextColor=palette.color(QPalette.ColorRole.Text))
        item.layout.removeItem(item.getAxis("top"))
        item.layout.addItem(legend, 1, 0, 1, 3)
        item.layout.setAlignment(legend, Qt.AlignmentFlag.AlignHCenter)
        item.layout.setRowStretchFactor(1, 0)
        item.legend = legend  # curves plotted with a name join it
        return legend

    def _make_readout(self) -> pg.TextItem:
        """A child of the plot item, not of the view box: the view box clips its children
        to the data area, and the legend would be drawn over it."""
        readout = pg.TextItem(anchor=(0, 0))
        readout.setParentItem(self.getPlotItem())
        readout.setZValue(1000)
        readout.hide()
        self._style_readout(readout)
        return readout

    @staticmethod
    def _style_readout(readout: pg.TextItem) -> None:
        palette = QApplication.palette()
        text = palette.color(QPalette.ColorRole.Text)
        readout.setColor(text)
        readout.fill = pg.mkBrush(_translucent(palette.color(QPalette.ColorRole.Base), 235))
        readout.border = pg.mkPen(_translucent(text, 110))
        readout.update()

    def add_series(self, key: str, label: str, colour: str, *, width: float = 2.0,
                   symbol: str | None = None, style: Any = None, batch: bool = False,
                   alpha: int = 255, keep: bool = False) -> Series:
        colour_q = QColor(colour)
        colour_q.setAlpha(alpha)
        pen = pg.mkPen(colour_q, width=width, style=style) if style else pg.mkPen(colour_q, width=width)
        curve = self.plot([], [], name=label, pen=pen, symbol=symbol, symbolSize=6,
                          symbolBrush=colour_q if symbol else None, symbolPen=None)
        if batch:
            # Long per-batch curves: draw at most a few points per pixel column.
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        self.series[key] = Series(curve, keep=keep)
        return self.series[key]

    def redraw(self) -> None:
        if not any(series.dirty for series in self.series.values()):
            return
        for series in self.series.values():
            series.redraw()
        magnitude = max(series.magnitude for series in self.series.values())
        self.getPlotItem().vb.setLimits(minYRange=MIN_RELATIVE_SPAN * magnitude if magnitude > 0 else None)

    def add_marker(self, x: float, label: str) -> None:
        line = pg.InfiniteLine(pos=x, angle=90, pen=pg.mkPen(COLOURS["marker"], width=1,
                                                             style=pg.QtCore.Qt.PenStyle.DashLine),
                               label=label, labelOpts={"position": 0.92, "color": COLOURS["marker"]})
        self.addItem(line)
        self.markers.append(line)

    def archive_run(self) -> list[pg.PlotDataItem]:
        """Faint copies of this run's per-epoch curves, hidden until someone shows them."""
        ghosts = []
        for series in self.series.values():
            if series.x and series.curve.opts.get("symbol") is not None:
                colour = QColor(series.curve.opts["pen"].color())
                colour.setAlpha(70)
                ghost = pg.PlotDataItem(np.asarray(series.x), np.asarray(series.y),
                                        pen=pg.mkPen(colour, width=1.5))
                ghost.setZValue(-10)
                ghost.hide()
                self.addItem(ghost)
                self.faint.append(ghost)
                ghosts.append(ghost)
        return ghosts

    def remove_faint(self, ghost: pg.PlotDataItem) -> None:
        self.removeItem(ghost)
        self.faint.remove(ghost)

    def clear_run(self) -> None:
        """Empties the current run's curves (not the planned ones) and its markers."""
        for series in self.series.values():
            if not series.keep:
                series.clear()
                series.redraw()
        for line in self.markers:
            self.removeItem(line)
        self.markers.clear()

    def restyle(self) -> None:
        """Follows the application palette (light/dark switch)."""
        apply_palette(self, self.title)
        self._style_readout(self._readout)

    # -- hover read-out ------------------------------------------------------------------------
    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802
        self._hover.args = None  # a move still queued in the rate limiter must not bring it back
        self._readout.hide()
        super().leaveEvent(event)

    def _on_scene_mouse_moved(self, args: tuple) -> None:
        position = args[0]
        view = self.getPlotItem().vb
        if not view.sceneBoundingRect().contains(position):
            self._readout.hide()  # over an axis, the title or the legend
            return
        text = self._readout_text(view.mapSceneToView(position).x())
        if not text:
            self._readout.hide()
            return
        self._readout.setText(text)
        self._readout.show()
        self._place_readout(position)

    def _readout_text(self, x: float) -> str:
        lines = [f"{series.curve.name()}: {value:.4g}" for series in self.series.values()
                 if (value := _nearest(series, x)) is not None]
        return "\n".join([f"epoch {x:.2f}", *lines]) if lines else ""

    def _place_readout(self, pointer: QPointF) -> None:
        """Above and right of the pointer; left of it near the right edge, below it near the
        top; always inside the data area, or inside the plot when the data area is smaller."""
        size = self._readout.sceneBoundingRect().size()
        area = self.getPlotItem().vb.sceneBoundingRect()
        if size.width() > area.width() or size.height() > area.height():
            area = self.visible_scene_rect()
        x = pointer.x() + READOUT_GAP
        if x + size.width() > area.right():
            x = pointer.x() - READOUT_GAP - size.width()
        y = pointer.y() - READOUT_GAP - size.height()
        if y < area.top():
            y = pointer.y() + READOUT_GAP
        x = min(max(x, area.left()), area.right() - size.width())
        y = min(max(y, area.top()), area.bottom() - size.height())
        self._readout.setPos(self.getPlotItem().mapFromScene(QPointF(x, y)))

    def visible_scene_rect(self) -> QRectF:
        """The part of the scene this widget shows."""
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def _on_view_resized(self) -> None:
        item = self.getPlotItem()
        left, _top, right, _bottom = item.layout.getContentsMargins()
        self.legend.fit_width(item.width() - left - right)


def _nearest(series: Series, x: float) -> float | None:
    if not series.x or not series.curve.isVisible():
        return None
    xs = np.asarray(series.x)
    index = int(np.clip(np.searchsorted(xs, x), 0, len(xs) - 1))
    if index > 0 and abs(xs[index - 1] - x) < abs(xs[index] - x):
        index -= 1
    span = (xs[-1] - xs[0]) / max(len(xs) - 1, 1) if len(xs) > 1 else 1.0
    if abs(xs[index] - x) > max(span, 0.5):
        return None
    value = series.y[index]
    return None if math.isnan(value) else value


@dataclass
class EarlierRun:
    """The faint curves of a finished run and the data it ran on."""

    data: DataIdentity | None
    ghosts: list[tuple[TrainingPlot, pg.PlotDataItem]]


class LivePlotsWidget(QWidget):
    """The three live plots of a run and the 'earlier runs' toggle."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("livePlots")
        self.loss_plot = TrainingPlot("Loss", "loss", "lossPlot")
        self.accuracy_plot = TrainingPlot("Accuracy", "accuracy", "accuracyPlot")
        self.lr_plot = TrainingPlot("Learning rate", "learning rate", "learningRatePlot")
        self.loss_plot.add_series("batch_loss_raw", "batch loss", COLOURS["train"], width=1,
                                  batch=True, alpha=60)
        self.loss_plot.add_series("batch_loss", "batch loss (smoothed)", COLOURS["train"], width=1.5,
                                  batch=True)
        self.loss_plot.add_series("loss", "train loss", COLOURS["train"], symbol="o", width=2.5)
        self.loss_plot.add_series("val_loss", "val loss", COLOURS["val"], symbol="o", width=2.5)
        self.accuracy_plot.add_series("accuracy", "train accuracy", COLOURS["train"], symbol="o")
        self.accuracy_plot.add_series("val_accuracy", "val accuracy", COLOURS["val"], symbol="o")
        self.accuracy_plot.setYRange(0, 1)
        planned = self.lr_plot.add_series("planned", "planned", COLOURS["planned"], batch=True, keep=True)
        planned.curve.setPen(_plan_pen())
        planned.curve.setZValue(-1)  # behind the live rate, which covers the part already run
        self.lr_plot.add_series("lr", "learning rate", COLOURS["lr"], batch=True).curve.setZValue(1)
        self.show_earlier = QCheckBox("Show earlier runs")
        self.show_earlier.setObjectName("showEarlierRuns")
        self.show_earlier.setChecked(False)  # curves of another setup confuse more than they help
        self.show_earlier.setToolTip(tooltip("ui.show_earlier_runs"))
        self.show_earlier.toggled.connect(self._on_show_earlier_toggled)
        self._build_layout()
        self._smoothed: float | None = None
        self._smooth_steps = 0
        self._data: DataIdentity | None = None  # the current (or last) run's data
        self.earlier: list[EarlierRun] = []
        self.timer = QTimer(self)
        self.timer.setObjectName("plotRedrawTimer")
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self._on_timer_timeout)
        self.timer.start()

    def _build_layout(self) -> None:
        self.grid_page = QWidget()
        self.grid = QGridLayout(self.grid_page)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setRowStretch(0, 3)
        self.grid.setRowStretch(1, 2)
        self.plot_tabs = QTabWidget()
        self.plot_tabs.setObjectName("plotTabs")
        self.pages = QStackedWidget()
        self.pages.addWidget(self.grid_page)
        self.pages.addWidget(self.plot_tabs)
        self.compact = True
        self.set_compact(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.show_earlier)

    def set_compact(self, compact: bool) -> None:
        """Tabs (one plot at a time, each at full size) or the grid of all three."""
        if compact == self.compact:
            return
        self.compact = compact
        if compact:
            for plot, title in zip(self.plots, ("Loss", "Accuracy", "Learning rate")):
                self.plot_tabs.addTab(plot, title)
            self.pages.setCurrentWidget(self.plot_tabs)
        else:
            self.plot_tabs.clear()
            self.grid.addWidget(self.loss_plot, 0, 0, 1, 2)
            self.grid.addWidget(self.accuracy_plot, 1, 0)
            self.grid.addWidget(self.lr_plot, 1, 1)
            self.pages.setCurrentWidget(self.grid_page)
        for plot in self.plots:
            plot.show()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self.set_compact(self.width() < COMPACT_WIDTH)

    @property
    def plots(self) -> tuple[TrainingPlot, ...]:
        return self.loss_plot, self.accuracy_plot, self.lr_plot

    def series(self, key: str) -> Series:
        for plot in self.plots:
            if key in plot.series:
                return plot.series[key]
        raise KeyError(key)

    def point_counts(self) -> dict[str, int]:
        return {key: len(s.x) for plot in self.plots for key, s in plot.series.items()}

    # -- events -------------------------------------------------------------------------
    def handle_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.start_run()
            self._data = data_identity(event.config)
            self._show_earlier_runs()
        elif isinstance(event, DataReport) and self._data is not None:
            self._data = replace(self._data, classes=tuple(event.classes))
            self._show_earlier_runs()
        elif isinstance(event, BatchEnd):
            self._add_batch(event)
        elif isinstance(event, EpochEnd):
            self._add_epoch(event)
        elif isinstance(event, PhaseChanged) and event.phase == "fine_tune" and event.first_epoch > 1:
            # Where fine-tuning follows the head phase (from scratch it is the whole run).
            for plot in self.plots:
                plot.add_marker(event.first_epoch - 1, "fine-tune")

    def start_run(self) -> None:
        """Keeps the last run's curves as earlier ones and empties the plots for a new run;
        the planned learning rate stays."""
        self._archive_run()
        for plot in self.plots:
            plot.clear_run()
        self._data = None  # until the new run's RunStarted names its data
        self._show_earlier_runs()
        self._smoothed = None
        self._smooth_steps = 0

    def set_planned_learning_rates(self, epochs: list[float], rates: list[float]) -> None:
        self.lr_plot.series["planned"].set(epochs, rates)

    def _archive_run(self) -> None:
        ghosts = [(plot, ghost) for plot in (self.loss_plot, self.accuracy_plot)
                  for ghost in plot.archive_run()]
        if not ghosts:
            return  # nothing ran (the window and the RunStarted event both start a run)
        self.earlier.append(EarlierRun(self._data, ghosts))
        while len(self.earlier) > EARLIER_RUNS_KEPT:
            for plot, ghost in self.earlier.pop(0).ghosts:
                plot.remove_faint(ghost)

    def _show_earlier_runs(self) -> None:
        """Earlier runs show, when asked for, only beside a run on the same data."""
        wanted = self.show_earlier.isChecked() and self._data is not None
        for run in self.earlier:
            visible = wanted and run.data is not None and run.data.matches(self._data)
            for _plot, ghost in run.ghosts:
                ghost.setVisible(visible)

    def _add_batch(self, event: BatchEnd) -> None:
        x = event.epoch - 1 + event.batch / max(event.batches, 1)
        loss = number(event.loss)
        self.loss_plot.series["batch_loss_raw"].append(x, loss)
        if math.isfinite(loss):
            # Debiased exponential average, so the first points are not pulled to zero.
            self._smooth_steps += 1
            previous = 0.0 if self._smoothed is None else self._smoothed
            self._smoothed = SMOOTHING * previous + (1 - SMOOTHING) * loss
            smoothed = self._smoothed / (1 - SMOOTHING ** self._smooth_steps)
            self.loss_plot.series["batch_loss"].append(x, smoothed)
        self.lr_plot.series["lr"].append(x, number(event.learning_rate))

    def _add_epoch(self, event: EpochEnd) -> None:
        x = float(event.epoch)
        self.loss_plot.series["loss"].append(x, number(event.loss))
        self.loss_plot.series["val_loss"].append(x, number(event.val_loss))
        self.accuracy_plot.series["accuracy"].append(x, number(event.accuracy))
        self.accuracy_plot.series["val_accuracy"].append(x, number(event.val_accuracy))

    def _on_timer_timeout(self) -> None:
        rates_changed = any(series.dirty for series in self.lr_plot.series.values())
        for plot in self.plots:
            plot.redraw()
        if rates_changed:
            fit_rates_from_zero(self.lr_plot, [v for series in self.lr_plot.series.values() for v in series.y])

    def apply_palette(self) -> None:
        for plot in self.plots:
            plot.restyle()
        self.lr_plot.series["planned"].curve.setPen(_plan_pen())

    def _on_show_earlier_toggled(self, checked: bool) -> None:
        self._show_earlier_runs()

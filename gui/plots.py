"""Live training plots: loss, accuracy and learning rate, redrawn from buffers by a timer.

Events only append floats to Python lists (constant time, in the GUI thread); a 100 ms
timer pushes whole arrays into the curves whose buffers changed (pyqtgraph's
``examples/scrollingPlots.py`` pattern). The x axis of every plot is the epoch, so a
batch half-way through epoch 3 sits at 2.5 and the epoch-3 point at 3.0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QCheckBox, QGridLayout, QVBoxLayout, QWidget

from gui.forms import tooltip
from training.events import BatchEnd, EpochEnd, Event, PhaseChanged, RunStarted

SMOOTHING = 0.8  # weight of the running average, as TensorBoard's smoothing slider
REDRAW_MS = 100
COLOURS = {"train": "#1f77b4", "val": "#ff7f0e", "lr": "#2ca02c", "planned": "#7f7f7f",
           "marker": "#d62728"}


def number(value: Any) -> float:
    """Event floats come back from JSON as None for NaN/inf."""
    return float("nan") if value is None else float(value)


class Series:
    """One curve's x/y buffer and whether the curve must be redrawn."""

    def __init__(self, curve: pg.PlotDataItem) -> None:
        self.curve = curve
        self.x: list[float] = []
        self.y: list[float] = []
        self.dirty = False

    def append(self, x: float, y: float) -> None:
        self.x.append(x)
        self.y.append(y)
        self.dirty = True

    def set(self, x: list[float], y: list[float]) -> None:
        self.x, self.y = list(x), list(y)
        self.dirty = True

    def clear(self) -> None:
        self.set([], [])

    def redraw(self) -> None:
        if self.dirty:
            self.curve.setData(np.asarray(self.x, float), np.asarray(self.y, float))
            self.dirty = False


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


def configure_pyqtgraph() -> None:
    """Plots follow the system palette (light or dark) instead of pyqtgraph's black."""
    palette = QApplication.palette()
    pg.setConfigOptions(antialias=True,
                        background=palette.color(QPalette.ColorRole.Base),
                        foreground=palette.color(QPalette.ColorRole.Text))


class CompactAxis(pg.AxisItem):
    """Tick labels like 0.001 or 1e-05 in three significant digits (learning rates)."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return [f"{value * scale:.3g}" for value in values]


class TrainingPlot(pg.PlotWidget):
    """A plot with a legend, a hover read-out and fine-tune markers."""

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
        palette = QApplication.palette()
        # A translucent box keeps the legend readable where it covers a curve.
        self.addLegend(offset=(-10, 10), labelTextSize="8pt",
                       brush=_translucent(palette.color(QPalette.ColorRole.Base)),
                       labelTextColor=palette.color(QPalette.ColorRole.Text))
        self.getPlotItem().setMenuEnabled(True)
        self.series: dict[str, Series] = {}
        self.markers: list[pg.InfiniteLine] = []
        self.faint: list[pg.PlotDataItem] = []
        self._readout = pg.TextItem(anchor=(0, 1), color=QApplication.palette().color(QPalette.ColorRole.Text))
        self._readout.setZValue(100)
        self.addItem(self._readout, ignoreBounds=True)
        self._readout.hide()
        self._hover = pg.SignalProxy(self.scene().sigMouseMoved, rateLimit=30, slot=self._on_scene_mouse_moved)
        self.setToolTip("Drag to pan, wheel to zoom, right-click for options; "
                        "double-click or 'A' button to fit.")

    def add_series(self, key: str, label: str, colour: str, *, width: float = 2.0,
                   symbol: str | None = None, style: Any = None, batch: bool = False,
                   alpha: int = 255) -> Series:
        colour_q = QColor(colour)
        colour_q.setAlpha(alpha)
        pen = pg.mkPen(colour_q, width=width, style=style) if style else pg.mkPen(colour_q, width=width)
        curve = self.plot([], [], name=label, pen=pen, symbol=symbol, symbolSize=6,
                          symbolBrush=colour_q if symbol else None, symbolPen=None)
        if batch:
            # Long per-batch curves: draw at most a few points per pixel column.
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        self.series[key] = Series(curve)
        return self.series[key]

    def redraw(self) -> None:
        for series in self.series.values():
            series.redraw()

    def add_marker(self, x: float, label: str) -> None:
        line = pg.InfiniteLine(pos=x, angle=90, pen=pg.mkPen(COLOURS["marker"], width=1,
                                                             style=pg.QtCore.Qt.PenStyle.DashLine),
                               label=label, labelOpts={"position": 0.92, "color": COLOURS["marker"]})
        self.addItem(line)
        self.markers.append(line)

    def clear_run(self, keep_faint: bool) -> None:
        """Empties the current run's curves; with ``keep_faint`` keeps a ghost of them."""
        if keep_faint:
            for series in self.series.values():
                if series.x and series.curve.opts.get("symbol") is not None:
                    ghost = pg.PlotDataItem(np.asarray(series.x), np.asarray(series.y),
                                            pen=pg.mkPen(QColor(128, 128, 128, 90), width=1.5))
                    ghost.setZValue(-10)
                    self.addItem(ghost)
                    self.faint.append(ghost)
        for series in self.series.values():
            series.clear()
            series.redraw()
        for line in self.markers:
            self.removeItem(line)
        self.markers.clear()

    def set_faint_visible(self, visible: bool) -> None:
        for ghost in self.faint:
            ghost.setVisible(visible)

    def _on_scene_mouse_moved(self, args: tuple) -> None:
        position = args[0]
        view = self.getPlotItem().vb
        if not self.sceneBoundingRect().contains(position):
            self._readout.hide()
            return
        point = view.mapSceneToView(position)
        lines = [f"epoch {point.x():.2f}"]
        for series in self.series.values():
            value = _nearest(series, point.x())
            if value is not None:
                lines.append(f"{series.curve.name()}: {value:.4g}")
        if len(lines) == 1:
            self._readout.hide()
            return
        self._readout.setText("\n".join(lines))
        self._readout.setPos(point)
        self._readout.show()


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
        self.lr_plot.add_series("planned", "planned", COLOURS["planned"], width=1.5,
                                style=pg.QtCore.Qt.PenStyle.DashLine, batch=True)
        self.lr_plot.add_series("lr", "learning rate", COLOURS["lr"], batch=True)
        # Rates are drawn from 0 up (fit_rates_from_zero), so a constant one runs along the
        # top: the legend goes to the bottom, where it hid the curve's last epochs.
        self.lr_plot.getPlotItem().legend.anchor(itemPos=(1, 1), parentPos=(1, 1), offset=(-10, -10))
        self.show_earlier = QCheckBox("Show earlier runs")
        self.show_earlier.setObjectName("showEarlierRuns")
        self.show_earlier.setChecked(True)
        self.show_earlier.setToolTip(tooltip("ui.show_earlier_runs"))
        self.show_earlier.toggled.connect(self._on_show_earlier_toggled)
        self._build_layout()
        self._smoothed: float | None = None
        self._smooth_steps = 0
        self._runs = 0
        self.timer = QTimer(self)
        self.timer.setObjectName("plotRedrawTimer")
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self._on_timer_timeout)
        self.timer.start()

    def _build_layout(self) -> None:
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.loss_plot, 0, 0, 1, 2)
        grid.addWidget(self.accuracy_plot, 1, 0)
        grid.addWidget(self.lr_plot, 1, 1)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid, 1)
        layout.addWidget(self.show_earlier)

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
        elif isinstance(event, BatchEnd):
            self._add_batch(event)
        elif isinstance(event, EpochEnd):
            self._add_epoch(event)
        elif isinstance(event, PhaseChanged) and event.phase == "fine_tune":
            for plot in self.plots:
                plot.add_marker(event.first_epoch - 1, "fine-tune")

    def start_run(self) -> None:
        keep = self._runs > 0
        for plot in self.plots:
            plot.clear_run(keep_faint=keep and plot is not self.lr_plot)
            plot.set_faint_visible(self.show_earlier.isChecked())
        self._runs += 1
        self._smoothed = None
        self._smooth_steps = 0

    def set_planned_learning_rates(self, epochs: list[float], rates: list[float]) -> None:
        self.lr_plot.series["planned"].set(epochs, rates)

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
            apply_palette(plot, plot.title)
            plot._readout.setColor(QApplication.palette().color(QPalette.ColorRole.Text))

    def _on_show_earlier_toggled(self, checked: bool) -> None:
        for plot in self.plots:
            plot.set_faint_visible(checked)

"""The live plots read clearly: legends beside the data, a read-out that follows the mouse
and goes with it, distinct tick labels on a flat loss, earlier runs only of the same data,
and the planned learning rate in view during a run. Driven by plain events, no engine."""

from __future__ import annotations

import math

import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from gui.plots import CompactAxis, LivePlotsWidget, TrainingPlot
from training.events import BatchEnd, DataReport, EpochEnd, RunStarted

STEPS = 5
SHAPES = ("circle", "square")


@pytest.fixture
def plots(qtbot) -> LivePlotsWidget:
    widget = LivePlotsWidget()
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def run(widget: LivePlotsWidget, *, folder: str = "/data/shapes", classes=SHAPES, epochs: int = 3,
        loss=lambda step: 2.0 / step) -> None:
    """One run's events as the engine sends them, after the window's own start_run()."""
    widget.start_run()
    widget.handle_event(RunStarted(run_dir="/runs/r", device="CPU: test",
                                   config={"data": {"dir": folder, "validation_dir": None}}))
    widget.handle_event(DataReport(root=folder, classes=list(classes)))
    for epoch in range(1, epochs + 1):
        for batch in range(1, STEPS + 1):
            step = (epoch - 1) * STEPS + batch
            widget.handle_event(BatchEnd(phase="head", epoch=epoch, batch=batch, batches=STEPS, step=step,
                                         loss=loss(step), accuracy=0.5, learning_rate=1e-3,
                                         images_per_second=10.0, eta_seconds=1.0))
        value = loss(epoch * STEPS)
        widget.handle_event(EpochEnd(phase="head", epoch=epoch, epochs=epochs, loss=value, accuracy=0.6,
                                     val_loss=value, val_accuracy=0.5, learning_rate=1e-3,
                                     seconds=1.0, images_per_second=10.0))


def redrawn(qtbot, widget: LivePlotsWidget) -> None:
    """Waits for the redraw timer to push the buffers into the curves, and for the layout."""
    qtbot.waitUntil(lambda: not any(s.dirty for p in widget.plots for s in p.series.values()), timeout=2000)
    QApplication.processEvents()


def hover(qtbot, plot: TrainingPlot, scene_point: QPointF) -> None:
    """Moves the real mouse pointer there (through the rate-limited hover signal)."""
    QTest.mouseMove(plot.viewport(), plot.mapFromScene(scene_point))
    qtbot.waitUntil(lambda: plot._hover.args is None, timeout=1000)


def shown_rect(plot: TrainingPlot):
    """The part of the scene the plot widget shows."""
    return plot.mapToScene(plot.viewport().rect()).boundingRect()


def visible_ghosts(widget: LivePlotsWidget) -> list:
    return [ghost for plot in widget.plots for ghost in plot.faint if ghost.isVisible()]


# -- 1. legends ------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(900, 600), (520, 420)])
def test_legends_sit_beside_the_data_never_on_it(qtbot, plots, size):
    plots.resize(*size)
    run(plots, epochs=5)
    redrawn(qtbot, plots)
    for plot in plots.plots:
        legend, view = plot.getPlotItem().legend, plot.getPlotItem().vb
        assert legend.isVisible() and len(legend.items) >= 2
        assert not legend.sceneBoundingRect().intersects(view.sceneBoundingRect()), plot.objectName()
        assert shown_rect(plot).contains(legend.sceneBoundingRect()), plot.objectName()
    # The newest points, at the right end of the data, are in the view and not under the legend.
    x, y = plots.series("val_loss").curve.getData()
    newest = plots.loss_plot.getPlotItem().vb.mapViewToScene(QPointF(x[-1], y[-1]))
    assert plots.loss_plot.getPlotItem().vb.sceneBoundingRect().contains(newest)
    assert not plots.loss_plot.getPlotItem().legend.sceneBoundingRect().contains(newest)


# -- 2. hover read-out -----------------------------------------------------------------------
def test_the_readout_follows_the_mouse_on_top_inside_the_plot_and_leaves_with_it(qtbot, plots):
    run(plots, epochs=5)
    redrawn(qtbot, plots)
    plot = plots.accuracy_plot
    readout, legend = plot._readout, plot.getPlotItem().legend
    data = plot.getPlotItem().vb.sceneBoundingRect()
    shown = shown_rect(plot)
    corners = {"top right": QPointF(data.right() - 3, data.top() + 3),
               "bottom right": QPointF(data.right() - 3, data.bottom() - 3),
               "top left": QPointF(data.left() + 3, data.top() + 3),
               "middle": data.center()}
    for name, pointer in corners.items():
        hover(qtbot, plot, pointer)
        assert readout.isVisible(), name
        box = readout.sceneBoundingRect()
        assert shown.contains(box), f"{name}: {box} is cut by the plot's edge {shown}"
        assert not box.contains(pointer), f"{name}: the read-out hides the point it reads"
        # It stays next to the pointer: flipped to the left near the right edge, below near the top.
        assert min(abs(box.left() - pointer.x()), abs(box.right() - pointer.x())) < 40, name
    hover(qtbot, plot, corners["top right"])
    box = readout.sceneBoundingRect()
    assert box.right() < corners["top right"].x() and box.top() > corners["top right"].y()
    # Drawn above everything, the legend included.
    stacking = plot.scene().items(Qt.SortOrder.DescendingOrder)
    assert stacking.index(readout) < stacking.index(legend)
    # Over the axes or the legend (outside the data) it goes away ...
    hover(qtbot, plot, legend.sceneBoundingRect().center())
    assert not readout.isVisible()
    # ... and when the mouse leaves the plot, even with a move still queued.
    hover(qtbot, plot, corners["middle"])
    assert readout.isVisible()
    plot.scene().sigMouseMoved.emit(corners["middle"])
    QApplication.sendEvent(plot, QEvent(QEvent.Type.Leave))
    assert not readout.isVisible()
    qtbot.wait(100)
    assert not readout.isVisible()


# -- 3. tick labels --------------------------------------------------------------------------
def shown_tick_labels(plot: TrainingPlot) -> list[list[str]]:
    axis = plot.getAxis("left")
    low, high = plot.getPlotItem().vb.viewRange()[1]
    levels = axis.tickValues(low, high, axis.height())
    scale = axis.autoSIPrefixScale * axis.scale
    return [axis.tickStrings([v for v in values if low <= v <= high], scale, spacing) for spacing, values in levels]


def test_a_flat_loss_gets_tick_labels_that_differ(qtbot, plots):
    run(plots, epochs=6, loss=lambda step: 1.6094 + 1e-4 * (-1) ** step)
    redrawn(qtbot, plots)
    levels = shown_tick_labels(plots.loss_plot)
    labels = [label for level in levels for label in level]
    assert len(levels[0]) >= 2, levels
    assert len(set(labels)) == len(labels), labels


def test_tick_labels_stay_short_where_three_digits_tell_them_apart():
    axis = CompactAxis("left")
    assert axis.tickStrings([0.0005, 0.001, 0.0015], 1.0, 0.0005) == ["0.0005", "0.001", "0.0015"]
    assert axis.tickStrings([1e-5, 2e-5], 1.0, 1e-5) == ["1e-05", "2e-05"]
    assert axis.tickStrings([0.0, 0.5, 1.0], 1.0, 0.5) == ["0", "0.5", "1"]
    assert axis.tickStrings([-1e-17, 0.1, 0.2], 1.0, 0.1) == ["0", "0.1", "0.2"]
    assert axis.tickStrings([12000.0, 13000.0], 1.0, 1000.0) == ["12000", "13000"]
    assert axis.tickStrings([1.60930, 1.60935, 1.60940], 1.0, 5e-5) == ["1.6093", "1.60935", "1.6094"]


# -- 4. earlier runs ---------------------------------------------------------------------------
def test_earlier_runs_are_off_until_asked_for(plots):
    assert not plots.show_earlier.isChecked()
    run(plots)
    run(plots)
    ghosts = plots.loss_plot.faint
    assert ghosts and not visible_ghosts(plots)
    plots.show_earlier.setChecked(True)
    assert all(ghost.isVisible() for ghost in ghosts)
    plots.show_earlier.setChecked(False)
    assert not visible_ghosts(plots)


def test_only_earlier_runs_of_the_same_data_are_overlaid(plots):
    plots.show_earlier.setChecked(True)
    run(plots, folder="/data/shapes", epochs=3)
    run(plots, folder="/data/flowers", classes=("daisy", "rose", "tulip"), epochs=4)
    assert plots.loss_plot.faint and not visible_ghosts(plots)  # the shapes run is not a flowers run
    run(plots, folder="/data/shapes/", epochs=2)  # the same folder, spelled with a slash
    shown = visible_ghosts(plots)
    assert shown and all(len(ghost.getData()[0]) == 3 for ghost in shown)  # the first run only


def test_the_same_folder_with_other_classes_is_other_data(plots):
    plots.show_earlier.setChecked(True)
    run(plots, classes=("circle", "square"))
    run(plots, classes=("circle", "square", "triangle"))
    assert plots.loss_plot.faint and not visible_ghosts(plots)


# -- 5. the planned learning rate ----------------------------------------------------------
def palette_of(base: str, text: str) -> QPalette:
    palette = QPalette()
    palette.setColor(QPalette.ColorRole.Base, QColor(base))
    palette.setColor(QPalette.ColorRole.Text, QColor(text))
    return palette


def contrast(colour: QColor, background: QColor) -> float:
    """Lightness difference of a (translucent) colour drawn over the background, 0..1."""
    alpha = colour.alphaF()
    return abs(alpha * colour.lightnessF() + (1 - alpha) * background.lightnessF() - background.lightnessF())


def test_the_planned_rate_stays_drawn_and_in_view_during_the_run(qtbot, plots):
    epochs = [step / STEPS for step in range(1, 10 * STEPS + 1)]
    rates = [1e-3 * 0.5 * (1 + math.cos(math.pi * x / 10)) for x in epochs]
    plots.set_planned_learning_rates(epochs, rates)
    run(plots, epochs=2)
    redrawn(qtbot, plots)
    planned, live = plots.series("planned"), plots.series("lr")
    assert planned.x == epochs and planned.y == rates
    x, _ = planned.curve.getData()
    assert planned.curve.isVisible() and len(x) > 0 and x[-1] == pytest.approx(10.0)
    low, high = plots.lr_plot.getPlotItem().vb.viewRange()[0]
    assert low <= epochs[0] and high >= epochs[-1]
    assert planned.curve.opts["pen"].style() == Qt.PenStyle.DashLine
    assert planned.curve.zValue() < live.curve.zValue()


@pytest.mark.parametrize("base, text", [("#ffffff", "#000000"), ("#1e1e1e", "#f0f0f0")])
def test_the_planned_rate_is_readable_in_light_and_dark_palettes(qtbot, plots, base, text):
    original = QApplication.palette()
    QApplication.setPalette(palette_of(base, text))
    try:
        plots.apply_palette()
        pen = plots.series("planned").curve.opts["pen"]
        assert contrast(pen.color(), QColor(base)) > 0.4
    finally:
        QApplication.setPalette(original)
        plots.apply_palette()


def test_a_narrow_window_shows_one_plot_at_a_time_at_full_size(qtbot):
    """At 800x600 the plots area is about 380 px wide: side by side, the accuracy and
    learning-rate plots would be 190 px slivers; as tabs each takes the whole width."""
    from gui.plots import COMPACT_WIDTH, LivePlotsWidget

    widget = LivePlotsWidget()
    qtbot.addWidget(widget)
    widget.resize(900, 500)
    widget.show()
    qtbot.waitUntil(lambda: widget.isVisible())
    assert not widget.compact and widget.accuracy_plot.width() < widget.loss_plot.width()
    widget.resize(COMPACT_WIDTH - 180, 400)
    qtbot.waitUntil(lambda: widget.compact)
    widget.plot_tabs.setCurrentWidget(widget.accuracy_plot)
    qtbot.waitUntil(lambda: widget.accuracy_plot.width() >= COMPACT_WIDTH - 200)
    assert [widget.plot_tabs.tabText(i) for i in range(3)] == ["Loss", "Accuracy", "Learning rate"]
    widget.resize(900, 500)
    qtbot.waitUntil(lambda: not widget.compact)
    assert widget.accuracy_plot.isVisible() and widget.lr_plot.isVisible() and widget.loss_plot.isVisible()


def test_a_from_scratch_run_gets_no_fine_tune_marker(qtbot):
    from gui.plots import LivePlotsWidget
    from training.events import PhaseChanged

    widget = LivePlotsWidget()
    qtbot.addWidget(widget)
    widget.handle_event(PhaseChanged(phase="fine_tune", epochs=4, first_epoch=1, steps_per_epoch=3,
                                     learning_rate=1e-3, trainable_weights=10))
    assert widget.accuracy_plot.markers == []
    widget.handle_event(PhaseChanged(phase="fine_tune", epochs=4, first_epoch=3, steps_per_epoch=3,
                                     learning_rate=1e-3, trainable_weights=10))
    assert [m.value() for m in widget.accuracy_plot.markers] == [2]

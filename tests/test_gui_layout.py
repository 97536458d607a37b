"""Layouts that fit: from 1024x700 up every tab and every button of the window is whole on
screen (no tab behind scroll arrows, no button whose text is cut), and at 800x600 the window
still fits and its plots stay readable."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QScrollArea,
    QSplitter,
    QStyle,
    QStyleOptionComboBox,
    QTabBar,
    QToolButton,
    QWidget,
)

from gui.window import MainWindow
from tests.conftest import stop_run_before_close
from tests.helpers import make_tiny_dataset
from training.api import Config


def _never_runs(*args, **kwargs):
    raise AssertionError("these tests start no run")


@pytest.fixture
def window(qapp, qtbot, tmp_path):
    folder = make_tiny_dataset(tmp_path / "data", classes=3, per_class=4, size=32)
    main = MainWindow(Config().with_overrides({"data.dir": str(folder)}), runner=_never_runs)
    qtbot.addWidget(main, before_close_func=stop_run_before_close(qtbot))
    main.show()
    qtbot.waitExposed(main)
    return main


def _settle(window: MainWindow, width: int, height: int) -> None:
    window.resize(width, height)
    for _ in range(5):
        QApplication.processEvents()


def _on_window(widget: QWidget, window: MainWindow) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def _visible(widget: QWidget, window: MainWindow) -> bool:
    """Shown, and not inside a pane folded to nothing (the plots while Results is shown)."""
    if not (widget.isVisibleTo(window) and widget.window() is window):
        return False
    parent = widget.parentWidget()
    while parent is not None and parent is not window:
        if parent.width() == 0 or parent.height() == 0:
            return False
        parent = parent.parentWidget()
    return True


def _scroll_area(widget: QWidget) -> QScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    return parent


def _problems(window: MainWindow) -> list[str]:
    """Every tab behind scroll arrows or off the window, every button cut or off the window."""
    problems = []
    frame = window.rect()
    for bar in window.findChildren(QTabBar):
        if not _visible(bar, window):
            continue
        arrows = [b for b in bar.findChildren(QToolButton) if b.isVisible()]
        if arrows:
            problems.append(f"tabs {[bar.tabText(i) for i in range(bar.count())]} need scroll arrows")
        for index in range(bar.count()):
            rect = bar.tabRect(index)
            if not bar.rect().contains(rect) or not frame.contains(QRect(bar.mapTo(window, rect.topLeft()),
                                                                         rect.size())):
                problems.append(f"tab {bar.tabText(index)!r} is not whole")
    for button in window.findChildren(QAbstractButton):
        if not _visible(button, window) or button.parent() is None or isinstance(button.parent(), QTabBar):
            continue
        rect = _on_window(button, window)
        scroll = _scroll_area(button)
        if scroll is not None:  # reached by scrolling down, but never cut at the sides
            view = _on_window(scroll.viewport(), window)
            if rect.left() < view.left() or rect.right() > view.right():
                problems.append(f"button {button.text()!r} is cut at the side of its panel")
        elif not frame.contains(rect):
            problems.append(f"button {button.text()!r} reaches outside the window")
        if button.text() and button.width() < button.sizeHint().width() - 2:
            problems.append(f"button {button.text()!r} is cut ({button.width()} < {button.sizeHint().width()})")
    for combo in window.findChildren(QComboBox):
        if not _visible(combo, window) or combo.isEditable() or not combo.currentText():
            continue
        option = QStyleOptionComboBox()
        combo.initStyleOption(option)
        field = combo.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                             QStyle.SubControl.SC_ComboBoxEditField, combo)
        icon = combo.iconSize().width() + 4 if not combo.itemIcon(combo.currentIndex()).isNull() else 0
        needed = combo.fontMetrics().horizontalAdvance(combo.currentText()) + icon
        if field.width() < needed:
            problems.append(f"choice {combo.currentText()!r} is cut ({field.width()} < {needed})")
    return problems


@pytest.mark.parametrize("size, sidebar", [((1024, 700), None), ((1024, 700), 0), ((1440, 900), None)])
def test_every_tab_and_button_is_whole_from_1024x700_up(window, size, sidebar):
    """At the window's own layout, and with the sidebar dragged as narrow as it goes."""
    _settle(window, *size)
    assert (window.width(), window.height()) == size, "the window cannot be made this small"
    if sidebar is not None:
        splitter = window.findChild(QSplitter, "mainSplitter")
        splitter.setSizes([sidebar, size[0]])
        QApplication.processEvents()
        assert splitter.sizes()[0] < 450
    problems = []
    for index in range(window.settings_tabs.count()):
        window.settings_tabs.setCurrentIndex(index)
        QApplication.processEvents()
        problems += [f"{window.settings_tabs.tabText(index)} tab: {p}" for p in _problems(window)]
    for index in range(window.output_tabs.count()):
        window.output_tabs.setCurrentIndex(index)
        QApplication.processEvents()
        problems += [f"{window.output_tabs.tabText(index)} tab: {p}" for p in _problems(window)]
    assert not sorted(set(problems))


def test_at_800x600_the_window_fits_and_each_plot_gets_the_whole_width(window):
    _settle(window, 800, 600)
    assert (window.width(), window.height()) == (800, 600)
    plots = window.plots
    assert plots.compact, "side by side the accuracy and rate plots would be slivers"
    for plot in plots.plots:
        plots.plot_tabs.setCurrentWidget(plot)
        QApplication.processEvents()
        assert plot.width() >= plots.width() - 10


@pytest.mark.parametrize("size", [(800, 600), (1024, 700), (1440, 900)])
def test_the_results_and_predict_tabs_fit_with_a_run_shown(window, tmp_path, size):
    """With a run's evaluation in the Results tab (matrix, list, Grad-CAM pane) and a run in
    the Predict tab, the window still fits; from 1024x700 up nothing in them is cut."""
    from tests.test_gui_results import write_evaluation

    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_bytes(b"stand-in")
    write_evaluation(run, make_tiny_dataset(tmp_path / "shown", classes=3, per_class=4, size=32))
    assert window.open_run_results(run)
    window.results_view.show_cell(0, 2)
    _settle(window, *size)
    assert (window.width(), window.height()) == size, "the window cannot be made this small"
    if size[0] < 1024:
        return
    problems = []
    for tab in (window.results_view, window.predict_panel):
        window.output_tabs.setCurrentWidget(tab)
        QApplication.processEvents()
        problems += [f"{window.output_tabs.tabText(window.output_tabs.indexOf(tab))} tab: {p}"
                     for p in _problems(window)]
    assert not sorted(set(problems))

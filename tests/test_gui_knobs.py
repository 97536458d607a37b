"""The window and the knob table: every value the config accepts goes through the main
window unchanged, and every key has one control whose label, limits and tooltip are its row's.

One window serves the whole module (building one takes a while); each case loads a config
with ``set_config`` and reads it back with ``build_config``, as loading a run's config.json does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QCheckBox, QLabel, QWidget

from gui import engine_calls
from gui.forms import NumberBox
from gui.panels.augmentation import StrengthWidget
from gui.window import MainWindow
from tests.helpers import make_tiny_dataset
from tests.test_knobs import edge_configs
from training.config import Config, all_keys, knob_of


def _never_runs(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("these tests start no run")


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    """One window on a tiny folder, with plans and previews computed without Keras."""
    folder = make_tiny_dataset(tmp_path_factory.mktemp("knobs"), classes=2, per_class=4, size=32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_calls, "planned_learning_rates",
                      lambda config, steps: {"head": [1e-3] * steps, "fine_tune": []})
        patch.setattr(engine_calls, "augmentation_preview",
                      lambda config, paths, size, seed: (np.zeros((1, size, size, 3), np.uint8),) * 2)
        settings = QSettings(str(tmp_path_factory.mktemp("settings") / "settings.ini"),
                             QSettings.Format.IniFormat)
        config = Config().with_overrides({"data.dir": str(folder)})
        main = MainWindow(config, settings=settings, runner=_never_runs)
        main.show()
        yield main
        main.close()
        main.deleteLater()
        QApplication.processEvents()


def _bindings(window: MainWindow) -> dict:
    return {key: binding for form in window.forms for key, binding in form.bindings.items()}


def _shown_value(widget: QWidget) -> Any:
    """The value a control's text shows, read back as the control reads typed text."""
    box = widget.value if isinstance(widget, StrengthWidget) else widget
    return box.value_from_text(box.lineEdit().text())


def test_every_value_the_config_accepts_comes_back_from_the_window_exactly(window):
    bindings = _bindings(window)
    base = window.config
    problems = []
    cases = 0
    for key, value, config in edge_configs(base):
        cases += 1
        window.set_config(config)
        if window.config_error:
            problems.append(f"{key}={value!r}: the window refuses it: {window.config_error}")
            continue
        back = window.build_config()
        if back.to_json() != config.to_json():  # JSON: 1 and 1.0, 0.9995 and 0.999 differ
            changed = {k: (v, back.to_dict()) for k, v in config.to_dict().items() if back.to_dict()[k] != v}
            problems.append(f"{key}={value!r} came back changed: {sorted(changed)}")
        widget = bindings[key].widget
        number_shown = isinstance(value, (int, float)) and not isinstance(value, bool) and (
            isinstance(widget, NumberBox) or (isinstance(widget, StrengthWidget) and value))
        if number_shown and (_shown_value(widget) != value or type(_shown_value(widget)) is not type(value)):
            problems.append(f"{key}={value!r} is shown as {widget_text(widget)!r}")
    window.set_config(base)
    assert cases > 400
    assert not problems, "\n".join(problems[:40])


def widget_text(widget: QWidget) -> str:
    box = widget.value if isinstance(widget, StrengthWidget) else widget
    return box.lineEdit().text()


def test_every_key_has_one_control_named_labelled_and_explained_by_its_row(window):
    counts: dict[str, int] = {}
    for form in window.forms:
        for key in form.bindings:
            counts[key] = counts.get(key, 0) + 1
    assert counts == {key: 1 for key in all_keys() if key != "schema_version"}
    for key, binding in _bindings(window).items():
        row = knob_of(key)
        name = key.replace(".", "_")
        assert binding.widget.objectName() == name
        assert len(window.findChildren(QWidget, name)) == 1, f"two widgets are named {name}"
        assert binding.widget.toolTip() == row.tooltip(), key
        caption = binding.caption
        assert caption is not None and caption.window() is window, f"{key} has no label in the window"
        if isinstance(caption, QLabel):
            assert caption.text() == f"{row.caption}:" and caption.buddy() is binding.widget, key
        else:
            assert isinstance(caption, QCheckBox) and caption.text() == row.label, key


def _box(window: MainWindow, key: str) -> NumberBox:
    return _bindings(window)[key].widget


def _type(qtbot, box: NumberBox, text: str) -> None:
    box.selectAll()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, Qt.Key.Key_Return)


def test_typed_numbers_are_kept_exactly_and_illegal_ones_are_refused(qtbot, window):
    window.set_config(window.config.with_overrides({"optimizer.learning_rate": 0.001}))
    rate = _box(window, "optimizer.learning_rate")
    _type(qtbot, rate, "5e-9")
    assert rate.value() == 5e-9 and window.config.optimizer.learning_rate == 5e-9
    assert rate.lineEdit().text() == "5e-09"
    _type(qtbot, rate, "0")  # the range is (0, 10]: refused, the value stays
    assert rate.value() == 5e-9 and rate.lineEdit().text() == "5e-09"
    seed = _box(window, "data.seed")
    _type(qtbot, seed, "4294967295")
    assert window.config.data.seed == 2**32 - 1 and seed.lineEdit().text() == "4294967295"
    _type(qtbot, seed, "4294967296")
    assert window.config.data.seed == 2**32 - 1
    momentum = _box(window, "optimizer.momentum")
    _type(qtbot, momentum, "0.9995")
    assert window.config.optimizer.momentum == 0.9995
    window.set_config(Config().with_overrides({"data.dir": window.config.data.dir}))


def test_arrows_stay_inside_open_ends_and_null_lies_outside_the_range(window):
    rate = _box(window, "optimizer.learning_rate")
    rate.setValue(5e-324)  # the smallest positive float: the lowest legal rate
    rate.stepBy(-1)
    assert rate.value() == 5e-324
    rate.setValue(1e-3)
    rate.stepBy(1)
    assert rate.value() == 2e-3
    rate.stepBy(100)
    assert rate.value() == 10.0  # the closed upper end

    momentum = _box(window, "model.batch_norm_momentum")
    momentum.setValue(0.0)  # legal, and not null
    assert momentum.value() == 0.0 and momentum.lineEdit().text() == "0"
    momentum.stepBy(-1)
    assert momentum.value() is None and momentum.lineEdit().text() == knob_of("model.batch_norm_momentum").none_text
    momentum.stepBy(1)
    assert momentum.value() == 0.0
    momentum.setValue(None)

    size = _box(window, "data.image_size")
    size.setValue(32)
    size.stepBy(-1)
    assert size.value() is None and size.lineEdit().text() == "backbone default"
    size.stepBy(1)
    assert size.value() == 32
    size.stepBy(2)
    assert size.value() == 64  # the knob's step of 16
    window.set_config(Config().with_overrides({"data.dir": window.config.data.dir}))


def test_the_wheel_scrolls_the_panel_unless_the_control_has_focus(qtbot, window):
    window.settings_tabs.setCurrentWidget(window.data_panel.parentWidget().parentWidget())
    box = _box(window, "data.batch_size")
    assert box.focusPolicy() == Qt.FocusPolicy.StrongFocus
    before = box.value()

    def wheel() -> QWheelEvent:
        return QWheelEvent(QPointF(5, 5), QPointF(box.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, -120),
                           Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                           False)

    event = wheel()
    QApplication.sendEvent(box, event)
    assert box.value() == before and not event.isAccepted()
    combo = _bindings(window)["data.class_weight"].widget
    index = combo.currentIndex()
    QApplication.sendEvent(combo, wheel())
    assert combo.currentIndex() == index

    window.activateWindow()
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=2000)
    QApplication.sendEvent(box, wheel())
    assert box.value() == before - 1
    box.setValue(before)

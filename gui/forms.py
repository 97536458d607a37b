"""Two-way binding between form widgets and dotted config keys, built from the knob table.

Every settings panel is a ``ConfigForm``: it registers each control against one dotted
key of ``training.config.Config`` (``"optimizer.learning_rate"``). The control, its label,
limits, special values ("off", "auto") and tooltip come from that key's ``Knob``
(``training.config.knob_of``), so the window never keeps a second copy of a range.
``load(config)`` puts the config's values into the widgets; ``values()`` reads them back
as a dict of dotted keys, which the window turns into a validated config with
``Config.with_overrides``. A value the config accepts is shown and returned exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QValidator, QWheelEvent
from PySide6.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGraphicsView,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollBar,
    QVBoxLayout,
    QWidget,
)

from training.api import Config
from training.config import Knob, knob_of, knob_table
from training.config.knobs import number_text

# Controls that are not config keys.
UI_TOOLTIPS: dict[str, str] = {
    "ui.runs_dir": "Where each run's folder (model, metrics, log) is created. Not part of the "
                   "training config.",
    "ui.fine_tune_all": "Unfreeze every backbone layer for fine-tuning.",
    "ui.show_earlier_runs": "Keep the curves of earlier runs since the app opened, drawn faintly, "
                            "for comparison.",
}


def tooltip(key: str) -> str:
    """The tooltip of a config key (its Knob's help and advice) or of a UI-only control."""
    leaf = knob_table().get(key)
    return leaf.knob.tooltip() if leaf is not None else UI_TOOLTIPS.get(key, "")


@dataclass
class Binding:
    key: str
    widget: QWidget
    get: Callable[[], Any]
    set: Callable[[Any], None]
    caption: QWidget | None = None  # the QLabel or QCheckBox that shows the knob's label


def config_value(config: Config, key: str) -> Any:
    """The value at a dotted key, e.g. ``config_value(c, "model.head.dropout")``."""
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


class ChoiceBox(QComboBox):
    """A combo box that leaves the mouse wheel to the scroll area unless it has focus."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # The box may be narrower than its longest choice (the list still shows it whole).
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt override)
        if not self.hasFocus():
            event.ignore()
            return
        super().wheelEvent(event)


_NO_MOVE = object()  # what a step returns when the arrows cannot move


class NumberBox(QAbstractSpinBox):
    """A spin box that holds any number its ``Knob`` allows, exactly.

    The value is the Python ``float`` or ``int`` itself, never rounded to a number of
    decimals, and it is shown as the shortest text that reads back as the same number
    (``5e-09``, ``0.9995``, ``4294967295``). Open range ends are honoured (a learning rate in
    (0, 10] takes 5e-324 and refuses 0); ``null`` is a state of its own, shown as the knob's
    ``none_text``, so no legal number stands for it; 0 shows as the ``zero_text``. The
    arrows add the knob's step, or for a "log" knob multiply by 2; stepping below the range
    reaches ``null`` where the key allows it. The wheel only turns it while it has focus,
    so scrolling the panel never changes a value.
    """

    valueChanged = Signal(object)  # noqa: N815 (Qt's naming); float, int or None

    def __init__(self, row: Knob, *, integer: bool = False, optional: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row, self.integer, self.optional = row, integer, optional
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._value: float | int | None = None if optional else self._first_step_up()
        self.editingFinished.connect(self._on_self_editing_finished)
        self._show()

    # -- value ----------------------------------------------------------------------------
    def value(self) -> float | int | None:
        return self._value

    def setValue(self, value: float | int | None) -> None:  # noqa: N802 (Qt naming)
        """Sets the value; one outside the range is moved to its nearest end, as QSpinBox does."""
        value = self._within_range(value)
        changed = (value is None) != (self._value is None) or value != self._value
        self._value = value
        self._show()
        if changed:
            self.valueChanged.emit(value)

    def text_for(self, value: float | int | None) -> str:
        if value is None:
            return self.row.none_text
        if value == 0 and self.row.zero_text:
            return self.row.zero_text
        return number_text(value)

    def value_from_text(self, text: str) -> Any:
        """The value ``text`` names, or ``_NO_MOVE`` when it names none."""
        text = text.strip()
        if self.optional and text == self.row.none_text:
            return None
        if self.row.zero_text and text == self.row.zero_text:
            return 0 if self.integer else 0.0
        try:
            number = float(text)
        except ValueError:
            return _NO_MOVE
        if not math.isfinite(number) or (self.integer and not number.is_integer()):
            return _NO_MOVE
        if not self.integer:
            return number
        return int(text) if text.lstrip("+-").isdigit() else int(number)  # "4294967295" or "1e3"

    def valueFromText(self, text: str) -> Any:  # noqa: N802 (QSpinBox's name, for callers)
        value = self.value_from_text(text)
        return self._value if value is _NO_MOVE else value

    def _legal(self, value: Any) -> bool:
        if value is None:
            return self.optional
        return value is not _NO_MOVE and self.row.allows(value)

    def _within_range(self, value: float | int | None) -> float | int | None:
        if value is None:
            if not self.optional:
                raise ValueError(f"This control needs a number. Received: {value!r}")
            return None
        value = int(value) if self.integer else float(value)
        if self.row.allows(value):
            return value
        low, high = self.row.minimum, self.row.maximum
        if low is not None and value <= low:
            return self._number(low) if not self.row.minimum_open else self._inside(low, +1)
        return self._number(high) if not self.row.maximum_open else self._inside(high, -1)

    def _inside(self, end: float, direction: int) -> float | int:
        if self.integer:
            return int(end) + direction
        return math.nextafter(end, direction * math.inf)

    # -- typing -----------------------------------------------------------------------------
    def validate(self, text: str, pos: int) -> object:
        # A half-typed number ("1e-", "") stays editable; only a legal value is acceptable.
        legal = self._legal(self.value_from_text(text))
        state = QValidator.State.Acceptable if legal else QValidator.State.Intermediate
        return state, text, pos

    def _on_self_editing_finished(self) -> None:
        value = self.value_from_text(self.lineEdit().text())
        if self._legal(value):
            self.setValue(value)
        else:
            self._show()  # back to the value it holds

    def _show(self) -> None:
        text = self.text_for(self._value)
        if self.lineEdit().text() != text:
            self.lineEdit().setText(text)
        self.update()  # the arrows follow stepEnabled()

    # -- arrows and wheel ---------------------------------------------------------------------
    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt override)
        value = self._stepped(steps)
        if value is not _NO_MOVE:
            self.setValue(value)

    def stepEnabled(self) -> QAbstractSpinBox.StepEnabledFlag:  # noqa: N802 (Qt override)
        flags = QAbstractSpinBox.StepEnabledFlag.StepNone
        if self.isReadOnly():
            return flags
        if self._stepped(1) is not _NO_MOVE:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        if self._stepped(-1) is not _NO_MOVE:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        return flags

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt override)
        if not self.hasFocus():
            event.ignore()  # the scroll area around it scrolls instead
            return
        super().wheelEvent(event)

    def _first_step_up(self) -> float | int:
        """Where the arrows go up from null (or from 0 on a "log" knob)."""
        row = self.row
        step = row.step or 1
        candidates = (step, row.minimum) if row.widget == "log" else (row.minimum, (row.minimum or 0) + step)
        for value in candidates:
            if value is not None and row.allows(value):
                return self._number(value)
        return self._within_range(row.minimum or 0)

    def _stepped(self, steps: int) -> Any:
        """The value ``steps`` arrow presses lead to, or ``_NO_MOVE``."""
        value, row = self._value, self.row
        if value is None:
            return self._first_step_up() if steps > 0 else _NO_MOVE
        step = row.step or 1
        if row.widget == "log":
            if value <= 0:
                return self._first_step_up() if steps > 0 else self._below_range(value)
            moved = value * 2.0 ** steps
            if steps < 0 and moved < step and (row.minimum == 0 or self.optional):
                return self._below_range(value)
        elif self.integer:
            moved = int(value) + steps * int(step)
        else:
            moved = round(value + steps * step, min(17, max(_decimals(value), _decimals(step))))
        if self._legal(moved):
            return moved
        if steps < 0:
            return self._below_range(value)
        if row.maximum is not None and not row.maximum_open and value != row.maximum:
            return self._number(row.maximum)
        return _NO_MOVE

    def _below_range(self, value: float | int) -> Any:
        row = self.row
        if row.minimum is not None and not row.minimum_open and value != row.minimum:
            return self._number(row.minimum)
        return None if self.optional else _NO_MOVE

    def _number(self, value: float) -> float | int:
        return int(value) if self.integer else float(value)


def _decimals(value: float) -> int:
    """Digits after the point in the shortest text of ``value`` (0.05 -> 2, 5e-09 -> 9)."""
    mantissa, _, exponent = repr(abs(float(value))).partition("e")
    digits = len(mantissa.partition(".")[2].rstrip("0"))
    return max(0, digits - int(exponent or 0))


# Controls whose value (or view) the wheel changes: inside a scrolling panel they only take
# the wheel once the user has focused them. Scroll bars are the panel's own.
WHEEL_CONTROLS = (QAbstractSpinBox, QComboBox, QAbstractSlider, QGraphicsView)


class WheelGuard(QObject):
    """An event filter that passes a wheel event over an unfocused control on to the
    scroll area around it, so scrolling the panel never changes a value."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget):
            return False
        # A plot takes the wheel on its viewport; the plot itself holds the focus.
        view = watched.parentWidget()
        owner = view if isinstance(view, QGraphicsView) and view.viewport() is watched else watched
        if owner.hasFocus():
            return False
        event.ignore()  # ignored, the event goes on to the parent widgets
        return True


def guard_wheel(root: QWidget, guard: WheelGuard) -> list[QWidget]:
    """Puts every wheel-driven control under ``root`` behind ``guard``; a control that
    would take focus from the wheel itself (``Qt.WheelFocus``, QComboBox's default) takes
    it from a click or Tab only. Returns the guarded controls (idempotent)."""
    guarded = []
    for widget in root.findChildren(QWidget):
        if not isinstance(widget, WHEEL_CONTROLS) or isinstance(widget, QScrollBar):
            continue
        if widget.focusPolicy() == Qt.FocusPolicy.WheelFocus:
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        widget.installEventFilter(guard)  # installing twice keeps one filter
        if isinstance(widget, QGraphicsView):
            widget.viewport().installEventFilter(guard)
        guarded.append(widget)
    return guarded


class ConfigForm(QWidget):
    """Base class of a settings panel: rows of controls bound to config keys."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bindings: dict[str, Binding] = {}
        self._loading = False
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(6, 6, 6, 6)
        self._wheel_guard = WheelGuard(self)

    # -- building ---------------------------------------------------------------------
    def group(self, title: str, name: str) -> QFormLayout:
        box = QGroupBox(title, self)
        box.setObjectName(name)
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        # A narrow sidebar (a 1024 px screen) puts a long row's control under its label
        # instead of cutting it off.
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self._layout.addWidget(box)
        return form

    def finish(self) -> None:
        self._layout.addStretch(1)
        self.guard_wheel()

    def guard_wheel(self) -> list[QWidget]:
        """Keeps the wheel from changing any control of the panel that has no focus
        (also the ones a panel builds itself); call again after adding controls."""
        return guard_wheel(self, self._wheel_guard)

    def bind(self, key: str, widget: QWidget, get: Callable[[], Any] | None = None,
             set_: Callable[[Any], None] | None = None, signal: Any = None,
             caption: QWidget | None = None) -> QWidget:
        """Registers ``widget`` for ``key``; plain widget types need no get/set."""
        widget.setObjectName(key.replace(".", "_"))
        if not widget.toolTip():
            widget.setToolTip(tooltip(key))
        get = get or _default_getter(widget)
        set_ = set_ or _default_setter(widget)
        self.bindings[key] = Binding(key, widget, get, set_, caption)
        (signal or _default_signal(widget)).connect(self._on_field_changed)
        return widget

    def row(self, form: QFormLayout, key: str, widget: QWidget | None = None, *,
            field: QWidget | None = None, **bind_kwargs: Any) -> QWidget:
        """A labelled row for ``key``: the knob's label, and its control (made from the knob
        unless ``widget`` is given; ``field`` is what the row shows when it holds more)."""
        widget = widget if widget is not None else control(key)
        caption = QLabel(f"{knob_of(key).caption}:")
        self.bind(key, widget, caption=caption, **bind_kwargs)
        caption.setToolTip(widget.toolTip())
        caption.setBuddy(widget)
        form.addRow(caption, field or widget)
        return widget

    def switch_row(self, form: QFormLayout, key: str) -> QCheckBox:
        """A switch whose box carries the knob's label itself (a row without a caption)."""
        box = QCheckBox(knob_of(key).label)
        self.bind(key, box, caption=box)
        form.addRow(box)
        return box

    # -- config <-> widgets -----------------------------------------------------------
    def load(self, config: Config) -> None:
        self._loading = True
        try:
            for binding in self.bindings.values():
                binding.set(config_value(config, binding.key))
            self.after_load(config)
        finally:
            self._loading = False

    def after_load(self, config: Config) -> None:
        """Hook: refresh derived visibility after values were loaded."""

    def values(self) -> dict[str, Any]:
        return {key: binding.get() for key, binding in self.bindings.items()}

    def _on_field_changed(self, *_: Any) -> None:
        if not self._loading:
            self.on_field_changed()
            self.changed.emit()

    def on_field_changed(self) -> None:
        """Hook: update dependent controls (visibility) when any field changes."""


# -- widget factories ----------------------------------------------------------------
def control(key: str) -> QWidget:
    """The control a key's ``Knob`` asks for (number, log, integer, choice, switch, folder).

    Raises:
        ValueError: a composite kind ("backbone", "strength" ...) that its panel builds.
    """
    leaf = knob_table()[key]
    row = leaf.knob
    if row.widget in ("number", "log", "integer"):
        return NumberBox(row, integer=leaf.integer, optional=leaf.optional)
    if row.widget == "choice":
        return combo(row.choices, dict(row.choice_labels))
    if row.widget == "switch":
        return QCheckBox(row.switch_text)
    if row.widget == "folder":
        edit = QLineEdit()
        if row.none_text:
            edit.setPlaceholderText(f"empty: {row.none_text}")
        return edit
    raise ValueError(f"`{key}` has a {row.widget!r} control, which its panel builds.")


def scientific(minimum: float, maximum: float, special: str = "") -> NumberBox:
    """A number box for values spanning decades (arrows multiply or divide by 2)."""
    floor = 1e-6 if minimum <= 1e-6 <= maximum else minimum
    row = Knob(help="", widget="log", minimum=minimum, maximum=maximum, step=floor, none_text=special)
    return NumberBox(row, optional=bool(special))


def combo(choices: tuple[str, ...] | list[str], labels: dict[str, str] | None = None) -> ChoiceBox:
    box = ChoiceBox()
    for choice in choices:
        box.addItem((labels or {}).get(choice, choice), choice)
    return box


def hbox(*widgets: QWidget) -> QWidget:
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return holder


def parse_int_list(text: str) -> list[int]:
    """"256, 128" -> [256, 128]; raises ValueError with a readable message."""
    items = [item.strip() for item in text.replace(";", ",").split(",") if item.strip()]
    try:
        return [int(item) for item in items]
    except ValueError:
        raise ValueError(f"Hidden units must be whole numbers separated by commas, e.g. 256, 128. "
                         f"Received: {text!r}") from None


def _default_getter(widget: QWidget) -> Callable[[], Any]:
    if isinstance(widget, QCheckBox):
        return widget.isChecked
    if isinstance(widget, NumberBox):
        return widget.value
    if isinstance(widget, QComboBox):
        return widget.currentData
    if isinstance(widget, QLineEdit):
        return widget.text
    raise TypeError(f"No default getter for {type(widget).__name__}; pass get=")


def _default_setter(widget: QWidget) -> Callable[[Any], None]:
    if isinstance(widget, QCheckBox):
        return lambda value: widget.setChecked(bool(value))
    if isinstance(widget, NumberBox):
        return widget.setValue
    if isinstance(widget, QComboBox):
        def set_combo(value: Any) -> None:
            index = widget.findData(value)
            widget.setCurrentIndex(index if index >= 0 else 0)
        return set_combo
    if isinstance(widget, QLineEdit):
        return lambda value: widget.setText("" if value is None else str(value))
    raise TypeError(f"No default setter for {type(widget).__name__}; pass set_=")


def _default_signal(widget: QWidget) -> Any:
    if isinstance(widget, QCheckBox):
        return widget.toggled
    if isinstance(widget, NumberBox):
        return widget.valueChanged
    if isinstance(widget, QComboBox):
        return widget.currentIndexChanged
    if isinstance(widget, QLineEdit):
        return widget.editingFinished
    raise TypeError(f"No default change signal for {type(widget).__name__}; pass signal=")


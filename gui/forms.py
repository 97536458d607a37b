"""Two-way binding between form widgets and dotted config keys.

Every settings panel is a ``ConfigForm``: it registers each control against one dotted
key of ``training.config.Config`` (``"optimizer.learning_rate"``). ``load(config)`` puts
the config's values into the widgets; ``values()`` reads them back as a dict of dotted
keys, which the window turns into a validated config with ``Config.with_overrides``.
So the config the engine receives is built from the widgets by the config's own code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from gui.tooltips import tooltip
from training.api import Config


@dataclass
class Binding:
    key: str
    widget: QWidget
    get: Callable[[], Any]
    set: Callable[[Any], None]


def config_value(config: Config, key: str) -> Any:
    """The value at a dotted key, e.g. ``config_value(c, "model.head.dropout")``."""
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


class ScientificSpinBox(QDoubleSpinBox):
    """A spin box for values spanning decades (learning rates, L2): shows ``1e-05``,
    and the arrows multiply or divide by ~2 instead of adding a fixed step."""

    def __init__(self, minimum: float, maximum: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(12)
        self.setRange(minimum, maximum)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:.4g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> object:
        stripped = text.strip()
        if stripped == self.specialValueText() and stripped:
            return QValidator.State.Acceptable, text, pos
        try:
            value = float(stripped)
        except ValueError:
            # Half-typed numbers such as "1e-" or "" must stay editable.
            return QValidator.State.Intermediate, text, pos
        if self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802
        value = self.value()
        if value <= 0:
            value = max(self.minimum(), 1e-6) if steps > 0 else self.minimum()
        else:
            value *= 2.0 ** steps
            if value < 1e-12:
                value = self.minimum()
        self.setValue(min(max(value, self.minimum()), self.maximum()))


class ConfigForm(QWidget):
    """Base class of a settings panel: rows of controls bound to config keys."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bindings: dict[str, Binding] = {}
        self._loading = False
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(6, 6, 6, 6)

    # -- building ---------------------------------------------------------------------
    def group(self, title: str, name: str) -> QFormLayout:
        box = QGroupBox(title, self)
        box.setObjectName(name)
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._layout.addWidget(box)
        return form

    def finish(self) -> None:
        self._layout.addStretch(1)

    def bind(self, key: str, widget: QWidget, get: Callable[[], Any] | None = None,
             set_: Callable[[Any], None] | None = None, signal: Any = None) -> QWidget:
        """Registers ``widget`` for ``key``; plain widget types need no get/set."""
        widget.setObjectName(key.replace(".", "_"))
        if not widget.toolTip():
            widget.setToolTip(tooltip(key))
        get = get or _default_getter(widget)
        set_ = set_ or _default_setter(widget)
        self.bindings[key] = Binding(key, widget, get, set_)
        (signal or _default_signal(widget)).connect(self._on_field_changed)
        return widget

    def row(self, form: QFormLayout, label: str, key: str, widget: QWidget, **kwargs: Any) -> QWidget:
        self.bind(key, widget, **kwargs)
        caption = QLabel(label)
        caption.setToolTip(widget.toolTip())
        caption.setBuddy(widget)
        form.addRow(caption, widget)
        return widget

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
def spin(minimum: int, maximum: int, special: str = "", step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(minimum, maximum)
    box.setSingleStep(step)
    box.setKeyboardTracking(False)
    if special:
        box.setSpecialValueText(special)
    return box


def double(minimum: float, maximum: float, step: float = 0.05, decimals: int = 3,
           special: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(minimum, maximum)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setKeyboardTracking(False)
    if special:
        box.setSpecialValueText(special)
    return box


def scientific(minimum: float, maximum: float, special: str = "") -> ScientificSpinBox:
    box = ScientificSpinBox(minimum, maximum)
    if special:
        box.setSpecialValueText(special)
    return box


def combo(choices: tuple[str, ...] | list[str], labels: dict[str, str] | None = None) -> QComboBox:
    box = QComboBox()
    for choice in choices:
        box.addItem((labels or {}).get(choice, choice), choice)
    return box


def optional(box: QSpinBox | QDoubleSpinBox) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """get/set for a spin box whose minimum (shown as its special text) means None."""
    def get() -> Any:
        value = box.value()
        return None if value == box.minimum() else value

    def set_(value: Any) -> None:
        box.setValue(box.minimum() if value is None else value)

    return get, set_


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
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        return widget.value
    if isinstance(widget, QComboBox):
        return widget.currentData
    if isinstance(widget, QLineEdit):
        return widget.text
    raise TypeError(f"No default getter for {type(widget).__name__}; pass get=")


def _default_setter(widget: QWidget) -> Callable[[Any], None]:
    if isinstance(widget, QCheckBox):
        return lambda value: widget.setChecked(bool(value))
    if isinstance(widget, QSpinBox):
        return lambda value: widget.setValue(int(value))
    if isinstance(widget, QDoubleSpinBox):
        return lambda value: widget.setValue(float(value) if math.isfinite(value) else 0.0)
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
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        return widget.valueChanged
    if isinstance(widget, QComboBox):
        return widget.currentIndexChanged
    if isinstance(widget, QLineEdit):
        return widget.editingFinished
    raise TypeError(f"No default change signal for {type(widget).__name__}; pass signal=")

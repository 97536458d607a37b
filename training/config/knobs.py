"""One row per setting: what every reader of the config needs to know about a key.

Each leaf field of the config's dataclasses carries a ``Knob`` in its metadata
(``training.config.schema``): its range or choices, what ``null`` and ``0`` mean, the
control the window shows, its label there, its unit, and one line of help. Validation
(``training.config.validate``), the window's controls and tooltips, ``config --default``
and the README's config reference (``training.config.reference``) are all derived from
these rows; adding a setting is one row plus the code that uses it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

# The kinds of control the window builds. "number", "log" (arrows multiply by 2),
# "integer", "choice", "switch" and "folder" come from the generic factory; the others are
# composite controls of one panel: "backbone" (the table), "weights" (choice or file),
# "layers" (a count or "all"), "strength" (a switch with a strength), "int_list" (text such
# as "256, 128"). "none": not shown (schema_version).
WIDGETS = ("number", "log", "integer", "choice", "switch", "folder", "backbone", "weights",
           "layers", "strength", "int_list", "none")


@dataclass(frozen=True)
class Knob:
    """Everything about one config key except its name, type and default.

    Attributes:
        help: one line: what the setting does (README meaning, start of the tooltip).
        label: the control's name in the window, e.g. "Learning rate".
        widget: the kind of control (one of ``WIDGETS``).
        advice: practical guidance the tooltip adds (typical values, when to change it).
        minimum, maximum: the allowed range of a number (inclusive unless ``*_open``);
            for a list of integers, the range of each item.
        choices: the allowed strings of a choice (for "layers": the words besides a count).
        choice_labels: how the window names a choice, where it differs from the choice.
        step: how far one arrow press moves a "number" or "integer" control; for a "log"
            control, the smallest value above 0 the arrows reach (they multiply by 2).
        unit: the unit of a number ("px", "epochs"), shown beside its label.
        none_text: what ``null`` means, shown by the control ("auto (a tenth)"); set
            exactly when the field's type allows ``None``.
        zero_text: what 0 means, shown by the control instead of 0 ("off").
        switch_text: the text beside a switch's box ("use Nesterov momentum").
        typical: the value a "strength" control starts at when it is switched on.
    """

    help: str
    label: str = ""
    widget: str = "number"
    advice: str = ""
    minimum: float | None = None
    maximum: float | None = None
    minimum_open: bool = False
    maximum_open: bool = False
    choices: tuple[str, ...] = ()
    choice_labels: Mapping[str, str] = field(default_factory=dict)
    step: float | None = None
    unit: str = ""
    none_text: str = ""
    zero_text: str = ""
    switch_text: str = ""
    typical: float | None = None

    def __post_init__(self) -> None:
        if self.widget not in WIDGETS:
            raise ValueError(f"`widget` must be one of {', '.join(WIDGETS)}. Received: widget={self.widget!r}")

    @property
    def has_range(self) -> bool:
        return self.minimum is not None and self.maximum is not None

    def allows(self, value: float) -> bool:
        """Whether a number lies in the range, open or closed ends as declared."""
        low, high = self.minimum, self.maximum
        if low is not None and (value <= low if self.minimum_open else value < low):
            return False
        return high is None or (value < high if self.maximum_open else value <= high)

    def range_text(self, *, integer: bool = False, compact: bool = False) -> str:
        """The range as messages say it ("[0.0, 1.0)"), or compact for the README ("[0, 1)")."""
        def number(value: float | None) -> str:
            if compact:
                return compact_number(value)
            return str(int(value)) if integer else str(float(value))
        left = "(" if self.minimum_open else "["
        right = ")" if self.maximum_open else "]"
        return f"{left}{number(self.minimum)}, {number(self.maximum)}{right}"

    @property
    def caption(self) -> str:
        """The control's label with its unit, e.g. "Image size (px)"."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def tooltip(self) -> str:
        """The help as a sentence, then the advice (plain text, no Markdown quotes)."""
        text = f"{self.help[0].upper()}{self.help[1:]}."
        if self.advice:
            text += f" {self.advice}"
        return text.replace("`", "")


def knob(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
         **row: Any) -> Any:
    """A dataclass field carrying its ``Knob``: ``rate: float = knob(1e-3, help=..., ...)``."""
    metadata = {"knob": Knob(**row)}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Leaf:
    """One setting of a config tree: its dotted key, type annotation, value and row."""

    key: str
    annotation: str
    value: Any
    knob: Knob

    @property
    def optional(self) -> bool:
        return "None" in self.annotation

    @property
    def integer(self) -> bool:
        """Whether the number is an integer (an int field, or the count of "int | str")."""
        return self.annotation.startswith(("int", "list[int]"))


def leaves(tree: Any, prefix: str = "") -> list[Leaf]:
    """Every leaf setting of a dataclass instance, in definition order (``leaves(Config())``
    gives the defaults).

    Raises:
        TypeError: a leaf field without a ``Knob`` (every setting must have its row).
    """
    found = []
    for f in dataclasses.fields(tree):
        value = getattr(tree, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            found += leaves(value, key + ".")
            continue
        row = f.metadata.get("knob")
        if row is None:
            raise TypeError(f"The config key `{key}` has no Knob row: declare it with knob(...).")
        found.append(Leaf(key, str(f.type), value, row))
    return found


def compact_number(value: float | None) -> str:
    """A number as a person writes it: 0, 0.9, 1000000, 1e-06, 4294967295."""
    if value is None:
        return "?"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))


def number_text(value: float | int) -> str:
    """The shortest text that reads back as exactly ``value`` (3 for 3.0, 1e-05, 0.0123)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not math.isfinite(value):
        return repr(value)
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text

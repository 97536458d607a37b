"""Engine text in the window's words: the control instead of the config key, the menu item
instead of the command.

The engine and the CLI speak config keys (`model.weights`) and commands (`python main.py
check`), which is right in a terminal and in the logs. The window names the control and the
tab that holds it ("Weights (Model tab)"), a value as its control shows it ("none (train
from scratch)") and the tool a command runs ("Check setup" in the Tools menu). Labels and
value names come from the knob table (``training.config``); which tab holds a key comes from
the panels' own bindings (``Words.from_forms``), so neither is kept twice.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from gui.tools import TOOL_TITLES
from training.config import knob_table
from training.config.knobs import Leaf, number_text

# The CLI's tool commands and the window's tools, which run the same engine code.
CLI_TOOLS = {"check": "check_setup", "overfit": "overfit_tiny_subset", "lr-find": "lr_range_test"}
# Other commands the window does by a button.
CLI_BUTTONS = {"train": "Start (Run menu)"}

# Engine names that reach messages outside backquotes: metrics as Keras logs them, phases.
ENGINE_NAMES = {"val_loss": "validation loss", "val_accuracy": "validation accuracy",
                "fine_tune phase": "fine-tuning phase"}
_ENGINE_NAME = re.compile(r"(?<![\w.`])(" + "|".join(map(re.escape, ENGINE_NAMES)) + r")(?![\w`])")
_COMMAND = re.compile(r"`?python main\.py (?P<command>[\w-]+)(?:[^`\n]*`)?")
_QUOTED = re.compile(r"`([^`\n]*)`")


class Words:
    """Turns engine text into the window's words.

    Args:
        tabs: the settings tab that shows each config key (``{"model.weights": "Model"}``).
    """

    def __init__(self, tabs: Mapping[str, str] | None = None) -> None:
        self.tabs = dict(tabs or {})
        self.table: dict[str, Leaf] = knob_table()
        keys = "|".join(re.escape(key) for key in sorted(self.table, key=len, reverse=True))
        key = rf"`?(?<![\w.])(?P<key>{keys})(?![\w]|\.\w)`?"
        value = r"`?(?P<value>[\w+-]+(?:\.[\w+-]+)*)`?"
        # "Received: data.batch_size=0" -> "Received: 0": the control is named before.
        self._received = re.compile(rf"(?P<lead>Received: ){key}=")
        # `key=value` and `key: value` in one pair of quotes, or key=value bare.
        self._assignment = re.compile(rf"`(?P<key>{keys})\s*[=:]\s*(?P<value>[^`\n]+)`"
                                      rf"|(?<![\w.])(?P<bare>{keys})=(?P<bare_value>[^\s,;)]+)")
        # `key` [to|is] value: the value gets its control's name where it is a choice.
        self._key_value = re.compile(rf"{key}(?P<link>\s+(?:to|is|=)\s+|\s+){value}")
        self._key = re.compile(key)
        self._single_choice = _single_choices(self.table)

    @classmethod
    def from_forms(cls, forms: Iterable[tuple[str, Any]]) -> Words:
        """From (tab title, panel) pairs: each panel's ``bindings`` name the keys it shows."""
        return cls({key: title for title, form in forms for key in getattr(form, "bindings", {})})

    # -- one key, one value ------------------------------------------------------------------
    def tab_of(self, key: str) -> str:
        """The tab that shows ``key``; for a key no panel binds, the tab of its section when
        all of that section's bound keys share one ("" when none does)."""
        if key in self.tabs:
            return self.tabs[key]
        section = key.rpartition(".")[0]
        while section:
            tabs = {tab for bound, tab in self.tabs.items() if bound.startswith(section + ".")}
            if len(tabs) == 1:
                return tabs.pop()
            if tabs:
                return ""
            section = section.rpartition(".")[0]
        return ""

    def label(self, key: str) -> str:
        leaf = self.table.get(key)
        return leaf.knob.label if leaf is not None and leaf.knob.label else key

    def control(self, key: str) -> str:
        """``"Weights (Model tab)"``: the control's label and, when known, its tab."""
        return self.label(key) + self._tab_suffix(key)

    def value(self, key: str, value: Any) -> str:
        """A value as the control of ``key`` shows it (choice names, "off", "auto ...")."""
        leaf = self.table.get(key)
        row = leaf.knob if leaf is not None else None
        if value is None:
            return (row.none_text if row is not None and row.none_text else "none")
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, str):
            return row.choice_labels.get(value, value) if row is not None else value
        if isinstance(value, (list, tuple)):
            return ", ".join(str(item) for item in value) or "none"
        if isinstance(value, (int, float)):
            if value == 0 and row is not None and row.zero_text:
                return row.zero_text
            return number_text(value)
        return str(value)

    def fix(self, fix: Mapping[str, Any]) -> str:
        """A hint's suggested change: ``"Class weights (Data tab) = balanced"``."""
        return ", ".join(f"{self.control(key)} = {self.value(key, value)}" for key, value in fix.items())

    # -- free text ---------------------------------------------------------------------------
    def plain(self, text: str) -> str:
        """``text`` with commands, config keys and their values in the window's words."""
        if not text:
            return text
        text = _COMMAND.sub(self._on_command, text)
        text = self._received.sub(lambda m: m["lead"], text)
        text = self._assignment.sub(self._on_assignment, text)
        text = self._key_value.sub(self._on_key_value, text)
        text = self._key.sub(lambda m: self.control(m["key"]), text)
        text = _QUOTED.sub(self._on_quoted, text)
        starts_with_name = _ENGINE_NAME.match(text) is not None
        text = _ENGINE_NAME.sub(lambda m: ENGINE_NAMES[m[1]], text)
        return text[:1].upper() + text[1:] if starts_with_name else text

    def _tab_suffix(self, key: str) -> str:
        tab = self.tab_of(key)
        return f" ({tab} tab)" if tab else ""

    def _on_command(self, match: re.Match) -> str:
        command = match["command"]
        if command in CLI_TOOLS:
            return f"“{TOOL_TITLES[CLI_TOOLS[command]]}” (Tools menu)"
        return CLI_BUTTONS.get(command, match[0].strip("`"))

    def _on_assignment(self, match: re.Match) -> str:
        key = match["key"] or match["bare"]
        raw = (match["value"] or match["bare_value"]).strip().strip("'\"")
        return f"{self.control(key)} = {self._value_text(key, raw)}"

    def _on_key_value(self, match: re.Match) -> str:
        key, link, raw = match["key"], match["link"], match["value"]
        row = self.table[key].knob
        if raw in row.choices or raw in row.choice_labels:
            return f"{self.label(key)}{link}“{self._value_text(key, raw)}”{self._tab_suffix(key)}"
        # Not a value of this key: name the control; the later passes see the rest as it was.
        return self.control(key) + match[0][match.start("link") - match.start():]

    def _on_quoted(self, match: re.Match) -> str:
        inner = match[1]
        label = self._single_choice.get(inner)
        return f"“{label}”" if label else inner

    def _value_text(self, key: str, raw: str) -> str:
        row = self.table[key].knob
        return row.choice_labels.get(raw, raw)


def _single_choices(table: Mapping[str, Leaf]) -> dict[str, str]:
    """Choice values that belong to one key only and have a label of their own, e.g.
    ``from_scratch`` -> "From scratch: train the whole network"."""
    owners: dict[str, list[str]] = {}
    for key, leaf in table.items():
        for choice in {*leaf.knob.choices, *leaf.knob.choice_labels}:
            owners.setdefault(choice, []).append(key)
    return {choice: table[keys[0]].knob.choice_labels[choice] for choice, keys in owners.items()
            if len(keys) == 1 and choice in table[keys[0]].knob.choice_labels}


PLAIN = Words()  # labels without tabs, for text shown outside the main window

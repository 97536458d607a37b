"""The search space: which config keys a search varies, and over which values (SPACE.json).

A space is read from plain data (``parse_space``), from a file (``load_space``) or made
for a config (``default_space``); every range is checked against the config's own
validation before a trial runs, so an error names the key and says what is allowed.
The format is documented in ``training.search`` and in the README.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from dataclasses import dataclass
from typing import Any

from training.config import Config, ConfigError, all_keys, knob_table, training_mode
from training.config.knobs import number_text
from training.files import FileReadError, parse_json, read_text

# A space file is a few hundred bytes; 1 MB refuses anything else before it is parsed.
MAX_SPACE_BYTES = 1024**2
DEFAULT = "default"
_FIELDS = ("low", "high", "log", "choices")
# Keys that name files or folders, or the format itself: nothing to search over.
_NOT_SEARCHED_WIDGETS = ("folder", "none")

# The default learning-rate range per optimizer: four or five decades around the usual value
# (Adam-like 1e-3, SGD-like 1e-2 to 1e-1, Adadelta 1.0), log-uniform.
LEARNING_RATE_RANGES = {
    "adam": (1e-5, 1e-1), "adamw": (1e-5, 1e-1), "nadam": (1e-5, 1e-1), "rmsprop": (1e-5, 1e-1),
    "sgd": (1e-4, 1.0), "adagrad": (1e-4, 1.0), "adadelta": (1e-3, 10.0),
}
# The rest of the default space: key -> SPACE.json entry.
DEFAULT_RANGES: dict[str, dict[str, Any]] = {
    "optimizer.weight_decay": {"low": 1e-5, "high": 1e-1, "log": True},
    "model.head.dropout": {"low": 0.0, "high": 0.5},
    "regularization.label_smoothing": {"low": 0.0, "high": 0.2},
    "augmentation.zoom": {"low": 0.0, "high": 0.3},
    "augmentation.translation": {"low": 0.0, "high": 0.2},
    "training.fine_tune_layers": {"choices": [10, 20, 40, 80, "all"]},
}
RATE_KEYS = ("optimizer.learning_rate", "training.fine_tune_learning_rate")


class SpaceError(ConfigError):
    """A search space cannot be used; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Dimension:
    """One searched key: a range (``low``..``high``, log-uniform when ``log``) or ``choices``."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple = ()
    integer: bool = False

    @property
    def categorical(self) -> bool:
        return bool(self.choices)

    def to_dict(self) -> dict[str, Any]:
        """The SPACE.json entry of this dimension."""
        if self.categorical:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}

    def contains(self, value: Any) -> bool:
        if self.categorical:
            return value in self.choices
        return self.low <= value <= self.high

    def describe(self) -> str:
        """E.g. "1e-05 .. 0.1 (log)" or "one of 10, 20, \"all\""."""
        if self.categorical:
            return "one of " + ", ".join(json.dumps(choice) for choice in self.choices)
        return f"{number_text(self.low)} .. {number_text(self.high)}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dimensions]

    def __iter__(self):
        return iter(self.dimensions)

    def __len__(self) -> int:
        return len(self.dimensions)

    def get(self, key: str) -> Dimension | None:
        return next((d for d in self.dimensions if d.key == key), None)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The space as SPACE.json holds it (``parse_space`` reads it back)."""
        return {d.key: d.to_dict() for d in self.dimensions}


def searchable_keys() -> list[str]:
    """Every config key a space may name (all but folders and the format's version)."""
    return [leaf.key for leaf in knob_table().values() if leaf.knob.widget not in _NOT_SEARCHED_WIDGETS]


def default_space(config: Config) -> SearchSpace:
    """The space searched when no SPACE.json is given: the learning rate(s) that train (log),
    weight decay (log), dropout, label smoothing, zoom and translation, and the fine-tune
    depth when a pretrained backbone is fine-tuned.

    Raises:
        SpaceError: a default range is not allowed with this config (e.g. a
            ``schedule.min_learning_rate`` above its low end); the message names the key.
    """
    return parse_space({key: DEFAULT for key in default_keys(config)}, config, source="the default space")


def default_keys(config: Config) -> list[str]:
    """The keys of the default space that change what ``config`` trains."""
    mode = training_mode(config)
    own_fine_tune_rate = config.training.fine_tune_learning_rate is not None
    keys = []
    # From scratch, a set fine-tuning rate replaces the base rate (training.engine.recipe).
    if not (mode == "from_scratch" and own_fine_tune_rate):
        keys.append("optimizer.learning_rate")
    if own_fine_tune_rate and mode != "head_only":
        keys.append("training.fine_tune_learning_rate")
    keys += [key for key in DEFAULT_RANGES if key != "training.fine_tune_layers"]
    if mode == "fine_tune" and config.training.fine_tune_epochs > 0:
        keys.append("training.fine_tune_layers")
    return keys


def default_entry(key: str, config: Config) -> dict[str, Any] | None:
    """The default space's SPACE.json entry for ``key``, or None when it has none."""
    if key in RATE_KEYS:
        low, high = LEARNING_RATE_RANGES[config.optimizer.name]
        return {"low": low, "high": high, "log": True}
    return DEFAULT_RANGES.get(key)


def load_space(path: str | os.PathLike, config: Config) -> SearchSpace:
    """Reads and checks a SPACE.json file (see ``parse_space``).

    Raises:
        SpaceError: the file cannot be read or is not JSON, or an entry cannot be used;
            the message names the file and the key.
    """
    source = os.fspath(path)
    try:
        text = read_text(path, max_bytes=MAX_SPACE_BYTES, what="search space file")
    except FileReadError as error:
        raise SpaceError(str(error)) from None
    try:
        data = parse_json(text, what="search space file")
    except FileReadError as error:
        raise SpaceError(f"{source}: {error}") from None
    return parse_space(data, config, source=source)


def parse_space(data: Any, config: Config, *, source: str = "SPACE.json") -> SearchSpace:
    """Checks a space given as plain data: ``{key: entry}`` where each entry is
    ``{"low": ..., "high": ..., "log": bool}``, ``{"choices": [...]}`` or ``"default"``.

    Each end of a range and each choice must make a valid config together with ``config``
    (``Config.with_overrides``), so no trial starts with a setting the config refuses.

    Raises:
        SpaceError: naming ``source``, the key and what is wrong.
    """
    if not isinstance(data, dict) or not data:
        raise SpaceError(f"{source}: a search space must be a JSON object with at least one key, "
                         "e.g. {\"optimizer.learning_rate\": {\"low\": 1e-5, \"high\": 1e-2, \"log\": true}}. "
                         f"Received: {_shown(data)}")
    space = SearchSpace(tuple(_dimension(str(key), entry, config, source) for key, entry in data.items()))
    for dimension in space:
        _check_values(dimension, space, config, source)
    return space


def _dimension(key: str, entry: Any, config: Config, source: str) -> Dimension:
    where = f"{source}: `{key}`"
    leaf = knob_table().get(key)
    if leaf is None:
        close = difflib.get_close_matches(key, all_keys(), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise SpaceError(f"{source}: unknown config key `{key}`.{hint} A space searches the config's own "
                         "keys (see `python main.py config --default`).")
    if leaf.knob.widget in _NOT_SEARCHED_WIDGETS:
        raise SpaceError(f"{where} cannot be searched: it names a folder or the config format. "
                         "Set it in the config or with --set.")
    if entry == DEFAULT:
        entry = default_entry(key, config)
        if entry is None:
            keys = ", ".join(sorted({*RATE_KEYS, *DEFAULT_RANGES}))
            raise SpaceError(f"{where}: \"default\" is only for the keys of the default space ({keys}); "
                             "give a range {\"low\": ..., \"high\": ...} or {\"choices\": [...]}.")
    if not isinstance(entry, dict):
        raise SpaceError(f"{where} must be an object: {{\"low\": ..., \"high\": ..., \"log\": true}}, "
                         f"{{\"choices\": [...]}}, or \"default\". Received: {_shown(entry)}")
    unknown = [name for name in entry if name not in _FIELDS]
    if unknown:
        raise SpaceError(f"{where}: unknown field `{unknown[0]}`. Allowed fields: low, high, log "
                         "(a range) or choices.")
    if "choices" in entry:
        if set(entry) != {"choices"}:
            raise SpaceError(f"{where}: give either \"choices\" or \"low\"/\"high\", not both.")
        return _choices(key, entry["choices"], where)
    return _range(key, entry, leaf, where)


def _choices(key: str, choices: Any, where: str) -> Dimension:
    if not isinstance(choices, list) or not choices:
        raise SpaceError(f"{where}: \"choices\" must be a non-empty list. Received: {_shown(choices)}")
    seen = set()
    for choice in choices:
        text = json.dumps(choice, sort_keys=True)
        if text in seen:
            raise SpaceError(f"{where}: the choice {text} is listed twice.")
        seen.add(text)
    return Dimension(key, choices=tuple(choices))


def _range(key: str, entry: dict, leaf, where: str) -> Dimension:
    annotation = leaf.annotation
    if not annotation.startswith(("int", "float")):
        kind = "true or false" if "bool" in annotation else "text or a list"
        raise SpaceError(f"{where} takes {kind}, not a number: give its values as {{\"choices\": [...]}}.")
    integer = leaf.integer
    missing = [name for name in ("low", "high") if name not in entry]
    if missing:
        raise SpaceError(f"{where}: a range needs \"low\" and \"high\" (missing: {', '.join(missing)}).")
    low, high = (_number(entry[name], name, integer, where) for name in ("low", "high"))
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: \"log\" must be true or false. Received: {_shown(log)}")
    if not low < high:
        raise SpaceError(f"{where}: \"low\" must be below \"high\". Received: low={number_text(low)}, "
                         f"high={number_text(high)} (to fix a value, set it in the config or with --set).")
    if log and low <= 0:
        raise SpaceError(f"{where}: a log range needs \"low\" > 0 (log-uniform sampling never reaches 0). "
                         f"Received: low={number_text(low)}")
    return Dimension(key, low=low, high=high, log=log, integer=integer)


def _number(value: Any, name: str, integer: bool, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpaceError(f"{where}: \"{name}\" must be a finite number. Received: {name}={_shown(value)}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise SpaceError(f"{where} is an integer setting: \"{name}\" must be an integer. "
                             f"Received: {name}={number_text(value)}")
        return int(value)
    return float(value)


def _check_values(dimension: Dimension, space: SearchSpace, config: Config, source: str) -> None:
    """Each end of a range and each choice must make a valid config: with the config's own
    values for the other keys, or with every other searched key at its low end (first
    choice), or at its high end (last choice), so that two searched keys that bound each
    other (a rate and its floor) are judged together."""
    others = [d for d in space if d.key != dimension.key]
    contexts = [{}, {d.key: d.choices[0] if d.categorical else d.low for d in others},
                {d.key: d.choices[-1] if d.categorical else d.high for d in others}]
    if dimension.categorical:
        values = [(f"the choice {json.dumps(choice)}", choice) for choice in dimension.choices]
    else:
        values = [(f"\"{name}\" {number_text(value)}", value)
                  for name, value in (("low", dimension.low), ("high", dimension.high))]
    for what, value in values:
        refusal = None
        for context in contexts[:3 if others else 1]:
            try:
                config.with_overrides({**context, dimension.key: value})
                refusal = None
                break
            except ConfigError as error:
                refusal = refusal or error
        if refusal is not None:
            raise SpaceError(f"{source}: `{dimension.key}`: {what} is not allowed with this config: {refusal}")


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, str, int, float, bool, type(None))) else repr(value)
    return text if len(text) <= 120 else text[:100] + " ..."

"""The root ``Config``: the sections of ``schema`` as one object, in and out of JSON.

``from_dict`` rejects unknown keys and values of the wrong JSON type here, and invalid
values through ``validate``. A config file is read with ``training.files.read_text``:
regular files only (a FIFO or ``/dev/zero`` would block or never end) and at most
``MAX_CONFIG_BYTES``. A config is a few kB, so 1 MB leaves room for any hand-written one
and refuses everything else before it is parsed. Every failure to read, decode or parse
it is a ``ConfigError``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config.errors import ConfigError, short_path, shown, shown_text
from training.config.knobs import Knob, Leaf, knob, leaves
from training.config.schema import (
    SCHEMA_VERSION,
    AugmentationConfig,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    RegularizationConfig,
    ScheduleConfig,
    TrainingConfig,
)
from training.config.validate import validate
from training.files import FileReadError, parse_json, read_text

# A config is a few kB (the complete default config is about 2 kB).
MAX_CONFIG_BYTES = 1024**2


@dataclass
class Config:
    schema_version: int = knob(SCHEMA_VERSION, widget="none", help="version of this config format")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    # -- serialization -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Builds and validates a config; missing keys take their defaults.

        Raises:
            ConfigError: an unknown key, a value of the wrong type, or one out of range.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"A config must be a JSON object. Received: {type(data).__name__}")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"`schema_version` {version!r} is not supported; this version of the app "
                f"reads schema_version {SCHEMA_VERSION}."
            )
        try:
            config = _build(cls, data, "")
            validate(config)
        except RecursionError:  # a value nested thousands deep, built by hand
            raise ConfigError("The config holds a value nested too deeply to be a setting; "
                              "every setting is a number, a string, or a list of numbers.") from None
        return config

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Config:
        """Parses and validates a config's JSON text.

        Raises:
            ConfigError: not JSON, nested too deeply, or an invalid config.
        """
        try:
            data = parse_json(text, what="config")
        except FileReadError as error:
            raise ConfigError(str(error)) from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        """Reads a config file: a regular UTF-8 file of at most ``MAX_CONFIG_BYTES``.

        Raises:
            ConfigError: the file cannot be read (missing, a folder, a FIFO or device, too
                large, not UTF-8), is not JSON, or holds an invalid config; the message
                names the file.
        """
        try:
            text = read_text(path, max_bytes=MAX_CONFIG_BYTES, what="config file")
        except FileReadError as error:
            raise ConfigError(str(error)) from None
        try:
            return cls.from_json(text)
        except ConfigError as error:
            raise ConfigError(f"{short_path(path)}: {error}") from None

    def copy(self) -> Config:
        return copy.deepcopy(self)

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """Returns a validated copy with dotted keys replaced, e.g. {"optimizer.name": "sgd"}."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            node = data
            parts = dotted.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"Unknown config key `{shown_text(dotted)}`. {_known_keys_hint(node)}")
                node = node[part]
            if parts[-1] not in node:
                raise ConfigError(f"Unknown config key `{shown_text(dotted)}`. {_known_keys_hint(node)}")
            node[parts[-1]] = value
        return Config.from_dict(data)


def default_config() -> Config:
    return Config()


@functools.cache
def knob_table() -> dict[str, Leaf]:
    """Every setting's key, type, default and ``Knob``, in definition order."""
    return {leaf.key: leaf for leaf in leaves(Config())}


def knob_of(key: str) -> Knob:
    """The row of a dotted key, e.g. ``knob_of("optimizer.learning_rate").label``.

    Raises:
        KeyError: not a config key.
    """
    return knob_table()[key].knob


def all_keys(config: Config | None = None) -> list[str]:
    """Every dotted config key, in definition order (used by docs and tests)."""
    return [leaf.key for leaf in leaves(config or Config())]


def parse_override(text: str) -> tuple[str, Any]:
    """Parses a CLI ``--set section.key=value``; the value is JSON, or a plain string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"`--set` expects section.key=value. Received: {shown(text)}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    except RecursionError:
        raise ConfigError(f"`--set {shown_text(key.strip())}`: the value is nested too deeply "
                          "to be a setting.") from None
    except ValueError:  # Python reads integers of at most 4300 digits
        raise ConfigError(f"`--set {shown_text(key.strip())}`: the value is a number too long to be "
                          "a setting (over 4300 digits).") from None
    return key.strip(), value


# -- building from plain data -----------------------------------------------------------
def _known_keys_hint(node: dict) -> str:
    return "Known keys here: " + ", ".join(sorted(node)) + "."


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        where = f"in `{prefix[:-1]}`" if prefix else "at the top level"
        raise ConfigError(
            f"Unknown config key `{prefix}{shown_text(str(unknown[0]))}` {where}. "
            f"Allowed keys: {', '.join(fields)}."
        )
    kwargs = {}
    defaults = cls()
    for name, value in data.items():
        default = getattr(defaults, name)
        key = prefix + name
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"`{key}` must be an object with keys {', '.join(f.name for f in dataclasses.fields(default))}. "
                    f"Received: {key}={shown(value)}"
                )
            kwargs[name] = _build(type(default), value, key + ".")
        else:
            kwargs[name] = _coerce(key, value, str(fields[name].type))
    return cls(**kwargs)


def _coerce(key: str, value: Any, annotation: str) -> Any:
    """Checks the JSON type of one leaf value against its field's type annotation."""
    if value is None:
        if "None" in annotation:
            return None
        raise ConfigError(f"`{key}` must not be null. Received: {key}=null")
    if "bool" in annotation:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"`{key}` must be true or false. Received: {key}={shown(value)}")
    if annotation.startswith("list"):
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return list(value)
        raise ConfigError(f"`{key}` must be a list of integers, e.g. [256, 128]. Received: {key}={shown(value)}")
    if "int | str" in annotation:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            return value
        raise ConfigError(f"`{key}` must be an integer or \"all\". Received: {key}={shown(value)}")
    if annotation.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"`{key}` must be an integer. Received: {key}={shown(value)}")
    if annotation.startswith("float"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"`{key}` must be a finite number. Received: {key}={shown(value)}")
            return float(value)
        raise ConfigError(f"`{key}` must be a number. Received: {key}={shown(value)}")
    if annotation.startswith("str"):
        if isinstance(value, str):
            return value
        raise ConfigError(f"`{key}` must be a string. Received: {key}={shown(value)}")
    return value

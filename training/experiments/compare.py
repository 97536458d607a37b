"""Config keys that differ: a run's from the defaults, and several runs' from each other.

Keys are dotted (``optimizer.learning_rate``), as ``--set`` and the README spell them.

A run's config.json records the config as it ran: ``training.mode: "auto"`` decided,
``training.fine_tune_learning_rate: null`` replaced by the rate the recipe chose, and the
phase keys a ``from_scratch`` run rewrites. So a run's changes are counted against the
defaults resolved the same way (``resolved_defaults``); otherwise every run would list
``training.mode`` and ``training.fine_tune_learning_rate`` as changed although the user
changed neither.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from training.config import Config, default_config, resolve_mode
from training.engine.recipe import fine_tune_learning_rate


def flat_config(config: Config | dict[str, Any]) -> dict[str, Any]:
    """Every leaf of a config (or of its dict) by dotted key, in definition order."""
    data = config.to_dict() if isinstance(config, Config) else config
    flat: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[prefix + key] = value
    walk(data, "")
    return flat


@functools.cache
def _flat_resolved_defaults() -> dict[str, Any]:
    return flat_config(resolved_defaults())  # private: never handed out, never changed


def resolved_defaults() -> Config:
    """The default config as a run records it in config.json (see the module docstring):
    the mode decided, the phase keys it rewrites, the fine-tuning rate the recipe chooses."""
    config = default_config()
    config.training = resolve_mode(config).training
    config.training.fine_tune_learning_rate = fine_tune_learning_rate(config)
    return config


def changed_keys(config: Config) -> dict[str, Any]:
    """The keys whose values differ from the (resolved) defaults, with the run's values."""
    defaults = _flat_resolved_defaults()
    return {key: value for key, value in flat_config(config).items()
            if key not in defaults or value != defaults[key]}


def config_diff(configs: list[Config]) -> dict[str, list[Any]]:
    """The keys whose values are not the same in every config, each with one value a config
    (in the order given). A key that one config lacks counts as None there."""
    flats = [flat_config(config) for config in configs]
    keys = list(dict.fromkeys(key for flat in flats for key in flat))
    diff = {}
    for key in keys:
        values = [flat.get(key) for flat in flats]
        if any(value != values[0] for value in values[1:]):
            diff[key] = values
    return diff


def shown_value(value: Any) -> str:
    """A value as ``--set`` takes it: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)

"""The config's error type and how its messages show a received value."""

from __future__ import annotations

import json
import os
import reprlib
from typing import Any


class ConfigError(ValueError):
    """A config value or key is invalid; the message says which and what is allowed."""


def _bounded_repr() -> reprlib.Repr:
    shown = reprlib.Repr()
    shown.maxlevel, shown.maxlist, shown.maxdict, shown.maxtuple = 3, 8, 8, 8
    shown.maxstring, shown.maxother, shown.maxlong = 160, 160, 40
    return shown


_REPR = _bounded_repr()


def shown_text(text: str, limit: int = 160) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit - 50]}...{text[-40:]} ({len(text)} characters)"


def shown(value: Any, *, as_json: bool = False) -> str:
    """A received value as a message shows it, bounded in length and depth.

    A plain ``repr`` of a list nested 100,000 deep raises RecursionError, and a path of a
    megabyte would bury the message; both are shortened. ``as_json`` writes strings with
    double quotes and true/false/null, as in the config file.
    """
    if isinstance(value, str):
        text = shown_text(value)
        return json.dumps(text) if as_json else repr(text)
    if as_json and (value is None or isinstance(value, (bool, float))):
        return json.dumps(value)
    return _REPR.repr(value)


def short_path(path: str | os.PathLike) -> str:
    return shown_text(os.fsdecode(path))


def check(condition: bool, key: str, value: Any, allowed: str) -> None:
    """Raises the Keras-style "`key` must be <allowed>. Received: key=value" unless ``condition``."""
    if not condition:
        raise ConfigError(f"`{key}` must be {allowed}. Received: {key}={shown(value, as_json=True)}")

"""The runs root: the one folder under which every new run (CLI and window) is named.

By default ``<user data dir>/finetune-studio/runs`` (platformdirs: ``~/.local/share`` on
Linux, ``~/Library/Application Support`` on macOS, ``%LOCALAPPDATA%`` on Windows), so runs
are kept wherever the app is started from. ``FINETUNE_STUDIO_RUNS`` moves it (tests point it
at a temporary folder); ``train --root`` / ``runs --root`` choose one for a command.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

RUNS_ENV = "FINETUNE_STUDIO_RUNS"
APP_NAME = "finetune-studio"


def default_runs_root() -> Path:
    """``$FINETUNE_STUDIO_RUNS`` when set, else ``user_data_dir("finetune-studio")/runs``;
    absolute, possibly not created yet (a run creates it)."""
    override = os.environ.get(RUNS_ENV, "").strip()
    if override:
        return _absolute(override)
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "runs"


def runs_root(explicit: str | os.PathLike | None = None) -> Path:
    """The folder a command uses: ``explicit`` (``--root``) when given, else the default."""
    if explicit is not None and os.fspath(explicit).strip():
        return _absolute(explicit)
    return default_runs_root()


def _absolute(path: str | os.PathLike) -> Path:
    try:
        path = Path(path).expanduser()
    except RuntimeError:  # no home folder to expand "~" to: use the path as given
        path = Path(path)
    return path.absolute()

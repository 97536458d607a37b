"""A new run's folder: naming it without collisions, and taking it for the run.

A new run is written only into a new or empty folder, so no file of the user's, and no
earlier run, is ever overwritten.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from training.files import file_kind
from training.rundir.layout import (
    CONFIG_FILE,
    EVENTS_FILE,
    LOCK_FILE,
    RunDirError,
    absolute_run_dir,
    shorten,
)
from training.rundir.lock import RunLock, in_use_error, lock_holder, lock_run_dir


def next_run_dir(runs_dir: str | Path, backbone: str) -> Path:
    """A new run folder's path: ``runs_dir/<YYYYmmdd-HHMMSS>-<backbone>``, with ``~2``, ``~3``
    if that name is taken (a dangling link counts as taken), so the engine, which writes a
    new run only into a new or empty folder, takes it. The CLI and the window both name
    their runs here."""
    return free_name(Path(runs_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{backbone}")


def free_name(path: Path) -> Path:
    """``path``, or with ``~2``, ``~3`` ... appended when that name is taken (a dangling link
    counts as taken)."""
    base, suffix = path.name, 1
    while os.path.lexists(path):
        suffix += 1
        path = path.with_name(f"{base}~{suffix}")
    return path


def prepare_run_dir(run_dir: str | Path) -> RunLock:
    """Creates (or takes an empty) folder for a new run and locks it for this process.

    Only a new or empty folder is a new run's folder, so no file of the user's, and no
    earlier run, is ever overwritten.

    Raises:
        RunDirError: the folder is not empty, in use, not a folder, or cannot be created.
    """
    path = absolute_run_dir(run_dir)
    kind = file_kind(path)
    if kind == "folder":
        pid = lock_holder(path)
        if pid is not None:
            raise in_use_error(path, pid)
        _require_empty(path)
    elif kind == "missing":
        if any(len(os.fsencode(part)) > 255 for part in path.parts):
            raise RunDirError(f"Cannot create the run folder {shorten(path)}: a part of that "
                              "path is longer than 255 bytes. Choose a shorter name (--out).")
    elif kind == "unreadable":
        raise RunDirError(f"Cannot use the run folder {shorten(path)}: it cannot be reached "
                          "(permission denied on it or on a folder above it). Choose a "
                          "folder you can write to (--out).")
    else:
        raise RunDirError(f"The run folder {shorten(path)} is a {kind}, not a folder. Choose a "
                          "new folder for the run (--out).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(
            f"Cannot write the run folder {shorten(path)}: {error.strerror or error}. "
            "Choose a folder you can write to (--out), and check that the disk is not full.") from None
    lock = lock_run_dir(path)
    try:
        _require_empty(path)  # another process may have written it since the first look
    except RunDirError:
        lock.release()
        raise
    return lock



def _require_empty(path: Path) -> None:
    try:
        names = sorted(name for name in os.listdir(path) if name != LOCK_FILE)
    except OSError as error:
        raise RunDirError(f"Cannot read the folder {path}: {error.strerror or error}. Choose a "
                          "new folder for the run (--out).") from None
    if not names:
        return
    held = [name for name in (CONFIG_FILE, EVENTS_FILE) if name in names]
    if held:
        raise RunDirError(
            f"The folder {path} already holds a run ({held[0]} exists), so it is not empty. "
            "Choose a new folder with --out, or continue that run with "
            f"`train --resume {path}`.")
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    raise RunDirError(
        f"The folder {path} is not empty ({len(names)} entries: {shown}); choose a new folder "
        "for the run (--out). A run is written only into a new or empty folder, so that no "
        "file in it is overwritten.")

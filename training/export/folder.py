"""The export folder appears only when its export passed.

Everything is written into a hidden staging folder beside the target and renamed into place
once verification passed; a failed or interrupted export removes its staging folder, so
nothing that looks finished is left, and an earlier export at the target stays as it was
until the new one replaces it. A target that holds anything but an earlier export (or
nothing) is refused: exporting never deletes a user's files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from training.export.options import ExportError
from training.files import file_kind, path_problem

CARD_FILE = "model_card.json"
_STAGING_PREFIX = ".export-"


def check_target(target: Path) -> None:
    """Raises ExportError when ``target`` is neither new, empty, nor an earlier export."""
    kind = file_kind(target)
    if kind == "missing":
        return
    if kind != "folder" or target.is_symlink():
        raise ExportError(f"--out {target} exists and is not a folder (or is a link). Choose a new "
                          "folder with --out.")
    names = set(os.listdir(target))
    if names and CARD_FILE not in names:
        raise ExportError(f"--out {target} holds other files ({', '.join(sorted(names)[:3])}...) and is "
                          "not an earlier export; it is not overwritten. Choose a new or empty folder "
                          "with --out.")


@contextlib.contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """Yields an empty hidden folder beside ``target``; it is removed unless ``publish`` moved it."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = _new_folder(parent, f"{_STAGING_PREFIX}{target.name}-")
    except OSError as error:
        problem = path_problem(parent, want="folder") or (error.strerror or str(error))
        raise ExportError(f"Cannot write the export beside {target}: {problem}. Choose another "
                          "folder with --out.") from None
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, target: Path) -> None:
    """Moves the finished ``staging`` folder to ``target``, replacing an earlier export there."""
    check_target(target)  # again: something may have appeared there meanwhile
    old = None
    if file_kind(target) == "folder":
        old = _new_folder(target.parent, f"{_STAGING_PREFIX}{target.name}-old-")
        os.replace(target, old / target.name)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:  # put the earlier export back
            os.replace(old / target.name, target)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _new_folder(parent: Path, prefix: str) -> Path:
    """A new folder with a random name; unlike ``tempfile.mkdtemp`` (0700) it gets the
    permissions the user's umask gives, which the published export keeps."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue

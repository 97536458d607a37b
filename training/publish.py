"""A folder of results (an export, an evaluation) appears only when it is complete.

Everything is written into a hidden staging folder beside the target and renamed into place
once it is finished (an export: once verification passed); a failed or interrupted job
removes its staging folder, so nothing that looks finished is left, and an earlier result at
the target stays as it was until the new one replaces it. A target that holds anything but
an earlier result of the same kind (or nothing) is refused: a job never deletes a user's
files. Each kind is a ``Publication``: the file that marks its folders, its error type.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from training.files import file_kind, path_problem


@dataclass(frozen=True)
class Publication:
    """A kind of result folder: ``what`` names it in messages ("export"), ``marker`` is the
    file every finished one holds, ``error`` the exception a bad target raises."""
    what: str
    marker: str
    error: type[Exception]

    @property
    def prefix(self) -> str:
        return f".{self.what}-"


def check_target(target: Path, kind: Publication) -> None:
    """Raises ``kind.error`` when ``target`` is neither new, empty, nor an earlier result."""
    found = file_kind(target)
    if found == "missing":
        return
    if found != "folder" or target.is_symlink():
        raise kind.error(f"--out {target} exists and is not a folder (or is a link). Choose a new "
                         "folder with --out.")
    names = set(os.listdir(target))
    if names and kind.marker not in names:
        raise kind.error(f"--out {target} holds other files ({', '.join(sorted(names)[:3])}...) and is "
                         f"not an earlier {kind.what}; it is not overwritten. Choose a new or empty "
                         "folder with --out.")


@contextlib.contextmanager
def staging_folder(target: Path, kind: Publication) -> Iterator[Path]:
    """Yields an empty hidden folder beside ``target``; it is removed unless ``publish`` moved it."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = _new_folder(parent, f"{kind.prefix}{target.name}-")
    except OSError as error:
        problem = path_problem(parent, want="folder") or (error.strerror or str(error))
        raise kind.error(f"Cannot write the {kind.what} beside {target}: {problem}. Choose another "
                         "folder with --out.") from None
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, target: Path, kind: Publication) -> None:
    """Moves the finished ``staging`` folder to ``target``, replacing an earlier result there."""
    check_target(target, kind)  # again: something may have appeared there meanwhile
    old = None
    if file_kind(target) == "folder":
        old = _new_folder(target.parent, f"{kind.prefix}{target.name}-old-")
        os.replace(target, old / target.name)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:  # put the earlier result back
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

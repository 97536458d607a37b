"""Writing a run folder's files safely: never through a link, replaced files atomically.

- Appends open with ``O_NOFOLLOW``, and only a plain file of its own is appended to.
- Replaced files are written to a fresh temporary file beside the target, fsynced, then
  renamed over the name (``atomic_path``): a rename replaces a link, never its target, and a
  crash leaves the old file or the new one. The temporary names are ones only this package
  makes, so ``training.rundir.cleanup`` can remove what a kill leaves behind.
- A full disk is reported once, with what to do (``disk_full_message``).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from training.rundir.layout import (
    BEST_MODEL,
    CHECKPOINT_DIR,
    KERAS_TEMP_DIR,
    TEMP_CHARS,
    RunDirError,
    link_error,
    lstat_kind,
)

_UMASK = os.umask(0)
os.umask(_UMASK)
_TEMP_DIR_LOCK = threading.Lock()


def checkpoint_folder(run_dir: Path) -> Path:
    """``run_dir/checkpoint``, created if missing; refused when it is a link or not a folder."""
    folder = run_dir / CHECKPOINT_DIR
    kind = lstat_kind(folder)
    if kind == "missing":
        folder.mkdir()
    elif kind == "link":
        raise link_error(folder)
    elif kind != "folder":
        raise RunDirError(f"{folder} is not a folder; the run's checkpoints cannot be written.")
    return folder


def open_for_append(path: Path, *, newline: str | None = None) -> TextIO:
    """Opens a run file for appending, never through a link, a FIFO or a second hard link.

    Raises:
        RunDirError: ``path`` is a link or not a plain file of its own.
        OSError: it cannot be created (disk full, permissions).
    """
    flags = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as error:
        if lstat_kind(path) == "link":
            raise link_error(path) from None
        if error.errno in (errno.EISDIR, errno.ENXIO):
            raise RunDirError(f"{path} is not a plain file; the run cannot write it.") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        why = "has other hard links (another file would change too)" if stat.S_ISREG(info.st_mode) \
            else "is not a plain file"
        raise RunDirError(f"{path} {why}; the run cannot write it. Replace it with a copy.")
    return os.fdopen(fd, "a", encoding="utf-8", newline=newline)



# -- atomic replacement ----------------------------------------------------------------------
@contextmanager
def atomic_path(target: Path, suffix: str = "",
                verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yields a temporary path beside ``target``; on success it replaces ``target``.

    The caller writes the file at the yielded path (any writer, e.g. ``model.save``);
    ``verify(path)`` may raise to keep the old file when the new one is not sound. The
    temporary file is new (``mkstemp`` never opens an existing name), and ``os.replace``
    replaces the name ``target``: when it is a symbolic link, the link, not its target.
    """
    target = Path(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix,
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the final file gets normal permissions
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()


def verify_keras_archive(path: Path) -> None:
    """Raises OSError unless ``path`` is a complete .keras zip (every member's CRC checked)."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as error:
        raise OSError(f"the model file just written is damaged ({error}); the previous one is kept") from None
    if broken or not {"config.json", "model.weights.h5"} <= names:
        raise OSError("the model file just written is incomplete; the previous one is kept")


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: Path, data: Any) -> None:
    write_text_atomic(target, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported on every platform (Windows); the rename itself is atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def keras_temp_folder(run_dir: Path) -> Iterator[None]:
    """Makes Keras put the temporary folders of a save inside ``run_dir/.keras-tmp``.

    Keras's ``model.save`` unpacks assets into ``tempfile.mkdtemp()`` folders, which a kill
    leaves behind in the system temp folder under names nobody can tell apart. Inside the
    run folder they carry our name and ``remove_leftovers`` deletes them. ``tempfile.tempdir``
    is process-wide: the lock keeps two saves from interleaving; the engine's other threads
    make no temporary files.
    """
    folder = run_dir / KERAS_TEMP_DIR
    if lstat_kind(folder) == "link":
        raise link_error(folder)
    folder.mkdir(exist_ok=True)
    try:
        with _TEMP_DIR_LOCK:
            previous, tempfile.tempdir = tempfile.tempdir, str(folder)
            try:
                yield
            finally:
                tempfile.tempdir = previous
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- a full disk -------------------------------------------------------------------------------
def is_disk_full(error: BaseException) -> bool:
    """True for "no space left" and "quota exceeded", also as h5py words them."""
    codes = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
    if isinstance(error, OSError) and error.errno in codes:
        return True
    text = str(error)
    return "No space left on device" in text or f"errno = {errno.ENOSPC}," in text


def disk_full_message(error: BaseException, run_dir: Path) -> str:
    name = getattr(error, "filename", None)
    what = f" ({_target_name(Path(os.fsdecode(name)).name)})" if name else ""
    return (f"The disk is full: a file of the run{what} could not be written (No space left on "
            f"device). Free some space on the disk that holds {run_dir}, then continue from the "
            f"last completed epoch with `train --resume {run_dir}`.")


def _target_name(name: str) -> str:
    """The file a temporary file of ``atomic_path`` stands for (".best.keras.x1y2z3w4.keras"
    is best.keras)."""
    match = re.fullmatch(rf"\.(.+?)\.{TEMP_CHARS}(\..+)?", name)
    return match.group(1) if match else name


# -- a copy of the model -----------------------------------------------------------------------
def export_best_model(run_dir: str | Path, target: str | Path) -> Path:
    """Copies the run's best model (``best.keras``) to ``target`` atomically.

    Raises:
        FileNotFoundError: the run folder holds no saved model.
        RunDirError: the model file is a symbolic link.
        OSError: ``target`` cannot be written.
    """
    source = Path(run_dir) / BEST_MODEL
    kind = lstat_kind(source)
    if kind == "link":
        raise link_error(source)
    if kind != "file":
        raise FileNotFoundError(f"No saved model in {run_dir} (looked for {BEST_MODEL}). "
                                "The run may have stopped before its first epoch ended.")
    with atomic_path(Path(target), suffix=".keras") as tmp:
        shutil.copyfile(source, tmp)
    return Path(target)

"""The run folder: its layout, and how it is written, locked, checked and cleaned. No Keras.

    config.json       the resolved config the run used (loadable by `main.py train`)
    labels.json       class names in the model's output order (exact; ``training.rundir.labels``)
    labels.txt        the same, one a line, for people and older tools
    events.jsonl      every event, one JSON object a line
    metrics.csv       one row an epoch
    data_report.json  the images used, skipped and ignored
    best.keras        the best model by the monitored validation metric
    summary.json      best epoch and metrics, why it stopped, time, device, versions
    checkpoint/       state.json and the weights of the last completed epoch (``training.engine.checkpoint``)
    .lock             exists while a process writes the folder (see ``lock_run_dir``)

What keeps the user's files safe:

- A new run is written only into an empty or new folder (``prepare_run_dir``).
- One process writes a run folder at a time: an OS lock on ``.lock``, held for the whole
  session and released by the OS when the process ends, however it ends.
- Nothing is written through a symbolic link: appends open with ``O_NOFOLLOW``; replaced
  files are written to a fresh temporary file and renamed over the name (a rename replaces
  a link, never its target); ``checkpoint/`` must be a real folder. A resume refuses a
  folder whose run files are links at all (``require_run_folder``), so it never reads a
  config or weights file from elsewhere either.
- Replaced files (best.keras, summary.json, ...) are written atomically: a temporary file
  beside the target, fsynced, then ``os.replace``; a crash leaves the old file or the new one.
  The temporary files a crash leaves behind have names only this module makes and are
  removed on the next start of that folder (``remove_leftovers``).
- A resume checks the folder before it writes anything (``inspect_resume``).
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from training.events import Event
from training.files import FileReadError, file_kind, read_json, read_text

METRICS_COLUMNS = ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy",
                   "learning_rate", "seconds", "images_per_second")
CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
DATA_REPORT_FILE = "data_report.json"
BEST_MODEL = "best.keras"
LABEL_FILES = ("labels.json", "labels.txt")
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
LOCK_FILE = ".lock"
KERAS_TEMP_DIR = ".keras-tmp"
PHASES = ("head", "fine_tune")
WEIGHTS_NAME = re.compile(r"epoch-\d{4,}\.weights\.h5")
# Files written in place of an older one, through ``atomic_path``.
REPLACED_FILES = (CONFIG_FILE, SUMMARY_FILE, DATA_REPORT_FILE, METRICS_FILE, BEST_MODEL, *LABEL_FILES)
RUN_FILES = (*REPLACED_FILES, EVENTS_FILE, CHECKPOINT_DIR)
_UMASK = os.umask(0)
os.umask(_UMASK)
_TEMP_CHARS = "[a-z0-9_]{8}"  # tempfile's random part
_TEMP_DIR_LOCK = threading.Lock()


class RunDirError(OSError):
    """The run folder cannot be used: not empty, in use, damaged, a link, not writable."""


# -- where a path may be written -----------------------------------------------------------
def absolute_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` made absolute, with ``~`` and links of the folder itself resolved."""
    try:
        return Path(run_dir).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as error:
        raise RunDirError(f"{os.fsdecode(run_dir)!r} cannot be used as a run folder: {error}") from None


def _lstat_kind(path: Path) -> str:
    """"missing", "link", "folder", "file" or "other", without following a link."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "other"
    if stat.S_ISLNK(mode):
        return "link"
    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def _link_error(path: Path) -> RunDirError:
    return RunDirError(
        f"{path} is a symbolic link. The app never writes or reads a run folder's files "
        "through a link (it could overwrite or use a file elsewhere). Replace the link with a "
        "copy of the file (e.g. copy the run folder with `cp -rL`), then try again.")


def checkpoint_folder(run_dir: Path) -> Path:
    """``run_dir/checkpoint``, created if missing; refused when it is a link or not a folder."""
    folder = run_dir / CHECKPOINT_DIR
    kind = _lstat_kind(folder)
    if kind == "missing":
        folder.mkdir()
    elif kind == "link":
        raise _link_error(folder)
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
        if _lstat_kind(path) == "link":
            raise _link_error(path) from None
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
    import zipfile

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
    if _lstat_kind(folder) == "link":
        raise _link_error(folder)
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
    match = re.fullmatch(rf"\.(.+?)\.{_TEMP_CHARS}(\..+)?", name)
    return match.group(1) if match else name


# -- one process per run folder ----------------------------------------------------------------
class RunLock:
    """The lock of one run folder, held by this process until ``release``; a context manager."""

    def __init__(self, path: Path, fd: int | None):
        self.path = path
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # Removed while still held: a process that opened it just before locks a file
            # that is gone, sees that (``_same_file``) and retries on the new one.
            if _same_file(fd, self.path / LOCK_FILE):
                os.unlink(self.path / LOCK_FILE)
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _in_use_error(path: Path, pid: int) -> RunDirError:
    holder = f"process PID {pid}" if pid else "process PID unknown"
    return RunDirError(
        f"The run folder {path} is in use by another run ({holder}). Wait for that run to end "
        "or stop it: two runs writing one folder would destroy each other's files.")


def _open_lock_file(lock_path: Path, flags: int) -> int:
    try:
        fd = os.open(lock_path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as error:
        if _lstat_kind(lock_path) == "link":
            raise _link_error(lock_path) from None
        raise RunDirError(f"Cannot write the run folder {lock_path.parent}: "
                          f"{error.strerror or error}. Choose a folder you can write to (--out), "
                          "and check that the disk is not full.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunDirError(f"{lock_path} is not a plain file; remove it, then try again.")
    return fd


def _read_pid(fd: int) -> int:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def lock_run_dir(path: Path) -> RunLock:
    """Takes the run folder's lock for this process, or fails at once.

    An advisory ``flock`` on ``.lock``; the OS drops it when the process ends, even by
    SIGKILL, so a stale ``.lock`` file is simply locked again. Without ``fcntl`` (Windows)
    the folder is not locked.

    Raises:
        RunDirError: another process holds it, or ``.lock`` cannot be written.
    """
    try:
        import fcntl
    except ImportError:
        return RunLock(path, None)
    lock_path = path / LOCK_FILE
    for _ in range(10):
        fd = _open_lock_file(lock_path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise _in_use_error(path, pid) from None
        if _same_file(fd, lock_path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            return RunLock(path, fd)
        os.close(fd)  # the previous holder removed it after we opened it: lock the new one
    raise _in_use_error(path, 0)


def lock_holder(path: Path) -> int | None:
    """The PID of the process that holds the run folder's lock (0: unknown), or None.

    Tries a shared lock and releases it at once; creates nothing.
    """
    try:
        import fcntl
    except ImportError:
        return None
    lock_path = path / LOCK_FILE
    if _lstat_kind(lock_path) != "file":
        return None
    try:
        fd = _open_lock_file(lock_path, os.O_RDONLY)
    except RunDirError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_pid(fd)
    finally:
        os.close(fd)  # closing drops the shared lock too
    return None


# -- a new run's folder ----------------------------------------------------------------------
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
            raise _in_use_error(path, pid)
        _require_empty(path)
    elif kind == "missing":
        if any(len(os.fsencode(part)) > 255 for part in path.parts):
            raise RunDirError(f"Cannot create the run folder {_shorten(path)}: a part of that "
                              "path is longer than 255 bytes. Choose a shorter name (--out).")
    elif kind == "unreadable":
        raise RunDirError(f"Cannot use the run folder {_shorten(path)}: it cannot be reached "
                          "(permission denied on it or on a folder above it). Choose a "
                          "folder you can write to (--out).")
    else:
        raise RunDirError(f"The run folder {_shorten(path)} is a {kind}, not a folder. Choose a "
                          "new folder for the run (--out).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(
            f"Cannot write the run folder {_shorten(path)}: {error.strerror or error}. "
            "Choose a folder you can write to (--out), and check that the disk is not full.") from None
    lock = lock_run_dir(path)
    try:
        _require_empty(path)  # another process may have written it since the first look
    except RunDirError:
        lock.release()
        raise
    return lock


def _shorten(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 200 else text[:120] + " ... " + text[-40:]


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


# -- leftovers of a killed run ------------------------------------------------------------
def _temp_pattern(name: str) -> re.Pattern:
    suffix = "".join(Path(name).suffixes[-1:])
    return re.compile(rf"\.{re.escape(name)}\.{_TEMP_CHARS}{re.escape(suffix)}")


_RUN_TEMP_FILES = [_temp_pattern(name) for name in REPLACED_FILES] + [
    re.compile(r"\.write-test"),            # an older version's write probe
    re.compile(rf"tmp{_TEMP_CHARS}"),       # Keras's weights file for a model too big for memory
]
_CHECKPOINT_TEMP_FILES = [
    re.compile(rf"\.epoch-\d{{4,}}\.weights\.h5\.{_TEMP_CHARS}\.weights\.h5"),
    _temp_pattern(STATE_FILE),
]


def remove_leftovers(run_dir: Path, *, weights_in_use: str | None) -> list[str]:
    """Deletes what a killed save left: our temporary files, Keras's temporary folder, and
    checkpoint weights other than ``weights_in_use`` (the file ``state.json`` names; None
    when there is no checkpoint). Only names this app makes are touched.

    Returns:
        The names removed, relative to ``run_dir``.
    """
    removed = list(_remove_matching(run_dir, _RUN_TEMP_FILES))
    keras_temp = run_dir / KERAS_TEMP_DIR
    kind = _lstat_kind(keras_temp)
    if kind == "folder":
        shutil.rmtree(keras_temp, ignore_errors=True)
    elif kind != "missing":
        keras_temp.unlink()
    if kind != "missing":
        removed.append(KERAS_TEMP_DIR)
    folder = run_dir / CHECKPOINT_DIR
    if _lstat_kind(folder) == "folder":
        # Weights whose state.json was never written: a kill between the two writes.
        orphans = [re.compile(rf"(?!{re.escape(weights_in_use)}$){WEIGHTS_NAME.pattern}")
                   if weights_in_use else WEIGHTS_NAME]
        removed += [f"{CHECKPOINT_DIR}/{name}"
                    for name in _remove_matching(folder, _CHECKPOINT_TEMP_FILES + orphans)]
    return removed


def _remove_matching(folder: Path, patterns: list[re.Pattern]) -> Iterator[str]:
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if any(p.fullmatch(name) for p in patterns) and _lstat_kind(folder / name) in ("file", "link"):
            try:
                (folder / name).unlink()
            except OSError:
                continue
            yield name


def clear_unfinished_start(run_dir: Path) -> None:
    """Removes what a run that completed no epoch wrote, so it can start over in its folder:
    its events, metrics, data report, summary and temporary files (config.json, and the
    labels which the new start rewrites, stay)."""
    for name in (EVENTS_FILE, METRICS_FILE, DATA_REPORT_FILE, SUMMARY_FILE):
        (run_dir / name).unlink(missing_ok=True)
    remove_leftovers(run_dir, weights_in_use=None)


# -- reading a run folder for a resume ---------------------------------------------------------
@dataclass
class ResumePlan:
    """What ``inspect_resume`` found: the run's config and checkpoint state, or no
    checkpoint (``state is None``: no epoch completed, the run starts over)."""
    path: Path
    config: Any                 # training.config.Config
    state: dict[str, Any] | None


def require_run_folder(path: Path) -> None:
    """Refuses what is not a run folder, or one whose run files are links. Reads nothing."""
    kind = file_kind(path)
    if kind != "folder":
        from training.files import path_problem

        raise RunDirError(f"Cannot resume: {path_problem(path, want='folder')}.")
    if _lstat_kind(path / CONFIG_FILE) == "missing":
        raise RunDirError(f"{path} is not a run folder (it has no {CONFIG_FILE}): nothing to "
                          "resume. Start a run with `train`.")
    for name in RUN_FILES:
        if _lstat_kind(path / name) == "link":
            raise _link_error(path / name)
    folder = path / CHECKPOINT_DIR
    if _lstat_kind(folder) == "folder":
        for name in _listdir(folder):
            if _lstat_kind(folder / name) == "link":
                raise _link_error(folder / name)


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def inspect_resume(path: Path, *, complete: bool = True) -> ResumePlan:
    """Reads and checks everything a resume needs, writing nothing.

    Args:
        path: the absolute run folder.
        complete: the checkpoint state must hold every key and its weights file must
            exist (the engine); False checks only what is there (the window's quick look).

    Raises:
        RunDirError: not a run folder, damaged files, already finished, or epochs
            completed but no checkpoint.
    """
    require_run_folder(path)
    config = read_run_config(path)
    state = read_checkpoint_state(path, complete=complete)
    summary = read_summary(path)
    if state is None:
        done = _recorded_epochs(path, summary)
        if done:
            raise RunDirError(
                f"{path} has no checkpoint to resume from ({CHECKPOINT_DIR}/{STATE_FILE} is "
                f"missing) although {done}. It cannot be resumed; start a new run.")
        return ResumePlan(path, config, None)
    planned = config.training.head_epochs + config.training.fine_tune_epochs
    finished = (summary or {}).get("stop_reason") in ("completed", "early_stopping")
    if finished or state["epoch"] >= planned:
        raise RunDirError(f"{path} already finished ({state['epoch']} of {planned} epochs); "
                          "there is nothing to resume.")
    if complete or any(_lstat_kind(path / name) != "missing" for name in LABEL_FILES):
        _check_labels(path)
    return ResumePlan(path, config, state)


def _check_labels(path: Path) -> None:
    from training.rundir.labels import LabelsError, read_labels

    try:
        read_labels(path)
    except LabelsError as error:
        raise RunDirError(f"{error} The run cannot be resumed.") from None


def next_run_dir(runs_dir: str | Path, backbone: str) -> Path:
    """A new run folder's path: ``runs_dir/<YYYYmmdd-HHMMSS>-<backbone>``, with ``~2``, ``~3``
    if that name is taken (a dangling link counts as taken), so the engine, which writes a
    new run only into a new or empty folder, takes it. The CLI and the window both name
    their runs here."""
    run_dir = Path(runs_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{backbone}"
    base, suffix = run_dir.name, 1
    while os.path.lexists(run_dir):
        suffix += 1
        run_dir = run_dir.with_name(f"{base}~{suffix}")
    return run_dir


def resume_problem(run_dir: str | Path) -> str:
    """Why ``run_dir`` cannot be resumed now, or "" when it can (for the window's Resume).

    The same checks as the engine's resume on what is there, plus whether another
    process holds the folder; quick, and writes nothing.
    """
    try:
        path = absolute_run_dir(run_dir)
        plan = inspect_resume(path, complete=False)
    except RunDirError as error:
        return str(error)
    if plan.state is None:
        return f"{path} has no checkpoint: no epoch of that run completed."
    pid = lock_holder(path)
    if pid is not None:
        return str(_in_use_error(path, pid))
    return ""


def read_run_config(path: Path):
    """The run's config.json as a validated Config.

    Raises:
        RunDirError: unreadable (not a file, not UTF-8, too large) or not a valid config.
    """
    from training.config import Config, ConfigError
    from training.files import parse_json

    config_file = path / CONFIG_FILE
    try:
        data = parse_json(read_text(config_file, what="run's config.json"), what="run's config.json")
    except FileReadError as error:
        raise RunDirError(f"{error} ({config_file}) The run cannot be resumed.") from None
    try:
        return Config.from_dict(data)
    except (ConfigError, TypeError, ValueError, AttributeError, KeyError) as error:
        raise RunDirError(f"The run's {config_file} is damaged or was edited into an invalid "
                          f"config: {error}") from None


def read_summary(path: Path) -> dict[str, Any] | None:
    summary_file = path / SUMMARY_FILE
    if _lstat_kind(summary_file) == "missing":
        return None
    try:
        summary = read_json(summary_file, what="run summary")
    except FileReadError as error:
        raise RunDirError(f"{error} Delete {summary_file} (the resumed run writes a new one) "
                          "and try again.") from None
    if not isinstance(summary, dict):
        raise RunDirError(f"{summary_file} is damaged: it holds a JSON {_json_type(summary)}, not "
                          "an object. Delete it (the resumed run writes a new one) and try again.")
    return summary


def _recorded_epochs(path: Path, summary: dict[str, Any] | None) -> str:
    """How the folder shows that an epoch completed ("" when nothing does)."""
    completed = (summary or {}).get("epochs_completed")
    if isinstance(completed, int) and not isinstance(completed, bool) and completed > 0:
        return f"{completed} epoch(s) completed"
    if _lstat_kind(path / BEST_MODEL) != "missing":
        return f"it holds a saved model ({BEST_MODEL})"
    metrics = path / METRICS_FILE
    if _lstat_kind(metrics) != "missing":
        try:
            rows = [line for line in read_text(metrics, what="metrics").splitlines() if line.strip()]
        except FileReadError:
            return f"its {METRICS_FILE} cannot be read"
        if len(rows) > 1:
            return f"{METRICS_FILE} records {len(rows) - 1} epoch(s)"
    return ""


# -- the checkpoint's state.json ---------------------------------------------------------------
STATE_KEYS = ("epoch", "phase", "global_step", "weights_file", "best_value", "best_epoch",
              "best_metrics", "history", "seed_states", "callbacks")


def read_checkpoint_state(path: Path, *, complete: bool = True) -> dict[str, Any] | None:
    """``checkpoint/state.json`` checked key by key, or None when there is none.

    Raises:
        RunDirError: unreadable, not an object, a missing (when ``complete``) or unknown
            key, a value of the wrong type or range, or a weights file that is missing or
            named outside ``checkpoint/``.
    """
    folder = path / CHECKPOINT_DIR
    state_file = folder / STATE_FILE
    if _lstat_kind(folder) == "link":
        raise _link_error(folder)
    if _lstat_kind(state_file) == "missing":
        return None
    try:
        state = read_json(state_file, what="checkpoint state")
    except FileReadError as error:
        raise _damaged(state_file, str(error)) from None
    problem = state_problem(state, complete=complete)
    if problem:
        raise _damaged(state_file, problem)
    weights = state.get("weights_file")
    if complete and _lstat_kind(folder / weights) != "file":
        raise _damaged(state_file, f"it names {weights}, which is missing from {folder}")
    return state


def _damaged(state_file: Path, problem: str) -> RunDirError:
    return RunDirError(f"The checkpoint {state_file} is damaged: {problem}. The run cannot be "
                       "resumed from it; start a new run.")


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_STATE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epoch": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "phase": (lambda v: v in PHASES, f"one of {', '.join(PHASES)}"),
    "global_step": (lambda v: _is_int(v) and v >= 0, "a whole number >= 0"),
    "weights_file": (lambda v: isinstance(v, str) and WEIGHTS_NAME.fullmatch(v) is not None,
                     "a file name in checkpoint/ like epoch-0003.weights.h5"),
    "best_value": (lambda v: v is None or _is_number(v), "a number or null"),
    "best_epoch": (lambda v: _is_int(v) and v >= 0, "a whole number >= 0"),
    "best_metrics": (lambda v: isinstance(v, dict), "an object"),
    "history": (lambda v: isinstance(v, list) and all(
        isinstance(row, dict) and _is_int(row.get("epoch")) for row in v),
        "a list of objects, each with a whole-number epoch"),
    "seed_states": (lambda v: isinstance(v, list) and all(
        isinstance(s, list) and all(_is_int(x) for x in s) for s in v),
        "a list of lists of whole numbers"),
    "callbacks": (lambda v: isinstance(v, dict) and all(isinstance(s, dict) for s in v.values()),
                  "an object of objects"),
}


def state_problem(state: Any, *, complete: bool = True) -> str:
    """What is wrong with a checkpoint state, Keras-style, or "" when nothing is."""
    if not isinstance(state, dict):
        return f"it holds a JSON {_json_type(state)}, not an object"
    unknown = sorted(set(state) - set(STATE_KEYS))
    if unknown:
        return f"unknown key `{unknown[0]}` (known: {', '.join(STATE_KEYS)})"
    missing = [key for key in (STATE_KEYS if complete else ("epoch",)) if key not in state]
    if missing:
        return f"the key `{missing[0]}` is missing"
    for key, value in state.items():
        valid, wanted = _STATE_CHECKS[key]
        if not valid(value):
            return f"`{key}` must be {wanted}. Received: {key}={_short_repr(value)}"
    if "best_epoch" in state and state["best_epoch"] > state["epoch"]:
        return (f"`best_epoch` must be <= epoch. Received: best_epoch={state['best_epoch']}, "
                f"epoch={state['epoch']}")
    if any(row["epoch"] > state["epoch"] for row in state.get("history", [])):
        return "`history` holds an epoch after the checkpoint's epoch"
    return ""


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- events.jsonl and metrics.csv ------------------------------------------------------------
class RunRecorder:
    """Writes events.jsonl and metrics.csv as events arrive; thread-safe.

    With ``hold=True`` (a resume) events are kept in memory and nothing is written until
    ``start_writing``: a resume that is refused after its checks leaves the folder as it was.
    A write that fails (a full disk) raises once; the recorder then stays silent, so the
    ``Failed`` event that follows cannot fail again.
    """

    def __init__(self, run_dir: Path, *, hold: bool = False):
        self.run_dir = run_dir
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._events: TextIO | None = None
        self._metrics_file: TextIO | None = None
        self._pending: list[Event] | None = [] if hold else None
        if not hold:
            self._open()

    def _open(self) -> None:
        metrics_path = self.run_dir / METRICS_FILE
        new_csv = _lstat_kind(metrics_path) == "missing"
        self._events = open_for_append(self.run_dir / EVENTS_FILE)
        self._metrics_file = open_for_append(metrics_path, newline="")
        self._metrics = csv.writer(self._metrics_file)
        if new_csv:
            self._metrics.writerow(METRICS_COLUMNS)
            self._metrics_file.flush()

    def start_writing(self, history: list[dict[str, Any]]) -> None:
        """Ends the hold: metrics.csv restarts from ``history``, held events are written."""
        with self._lock:
            pending, self._pending = self._pending or [], None
            write_metrics_csv(self.run_dir, history)
            self._open()
        for event in pending:
            self(event)

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self._pending is not None:
                self._pending.append(event)
                return
            if self._events is None or self._events.closed or self.error is not None:
                return
            try:
                self._write(event)
            except OSError as error:
                self.error = error
                raise

    def _write(self, event: Event) -> None:
        data = event.to_dict()
        self._events.write(json.dumps(data, allow_nan=False) + "\n")
        # Per-batch lines are many and cheap to lose; everything else hits the disk now.
        if event.type != "batch":
            self._events.flush()
        if event.type == "epoch":
            self._metrics.writerow([_csv_value(data.get(column)) for column in METRICS_COLUMNS])
            self._metrics_file.flush()

    def record_quietly(self, event: Event) -> None:
        """Records ``event`` if the disk lets it (used for the last words of a failed run)."""
        try:
            self(event)
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            self._pending = None
            for handle in (self._events, self._metrics_file):
                if handle is None or handle.closed:
                    continue
                try:
                    handle.flush()
                    os.fsync(handle.fileno())
                except OSError:
                    pass  # a full disk: what could be saved was saved
                finally:
                    try:
                        handle.close()
                    except OSError:
                        pass


def write_metrics_csv(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrites metrics.csv from a metric history (a resumed run continues from it)."""
    with atomic_path(Path(run_dir) / METRICS_FILE) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(METRICS_COLUMNS)
            for row in rows:
                writer.writerow([_csv_value(row.get(column)) for column in METRICS_COLUMNS])


def _csv_value(value: Any) -> Any:
    if value is None:
        return "nan"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def fan_out(*listeners: Callable[[Event], None], on_listener_error: Callable[[Exception], None]
            ) -> Callable[[Event], None]:
    """One callback that feeds every listener; a listener's failure never stops a run."""
    def emit(event: Event) -> None:
        for listener in listeners:
            try:
                listener(event)
            except Exception as error:  # noqa: BLE001 - a broken listener must not kill training
                on_listener_error(error)
    return emit


def read_events(run_dir: str | Path) -> list[dict[str, Any]]:
    """The events of a run as dicts (for tools and tests)."""
    lines = (Path(run_dir) / EVENTS_FILE).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]

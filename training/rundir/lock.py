"""One process writes a run folder at a time.

An advisory ``flock`` on the folder's ``.lock``, held for the whole session; the OS drops
it when the process ends, however it ends (even SIGKILL), so a stale ``.lock`` file is
simply locked again.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from training.rundir.layout import LOCK_FILE, RunDirError, link_error, lstat_kind

try:
    import fcntl
except ImportError:  # Windows: run folders are not locked there
    fcntl = None


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


def in_use_error(path: Path, pid: int) -> RunDirError:
    holder = f"process PID {pid}" if pid else "process PID unknown"
    return RunDirError(
        f"The run folder {path} is in use by another run ({holder}). Wait for that run to end "
        "or stop it: two runs writing one folder would destroy each other's files.")


def _open_lock_file(lock_path: Path, flags: int) -> int:
    try:
        fd = os.open(lock_path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as error:
        if lstat_kind(lock_path) == "link":
            raise link_error(lock_path) from None
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
    if fcntl is None:
        return RunLock(path, None)
    lock_path = path / LOCK_FILE
    for _ in range(10):
        fd = _open_lock_file(lock_path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise in_use_error(path, pid) from None
        if _same_file(fd, lock_path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            return RunLock(path, fd)
        os.close(fd)  # the previous holder removed it after we opened it: lock the new one
    raise in_use_error(path, 0)


def lock_holder(path: Path) -> int | None:
    """The PID of the process that holds the run folder's lock (0: unknown), or None.

    Tries a shared lock and releases it at once; creates nothing.
    """
    if fcntl is None:
        return None
    lock_path = path / LOCK_FILE
    if lstat_kind(lock_path) != "file":
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

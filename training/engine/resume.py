"""Resume preflight: everything a resume checks before it writes anything.

The folder (a run folder, no links, not in use), config.json, the checkpoint (its state and
its weights file) and the labels are checked here; the session checks the rest before it
writes (the data folder's classes, ``check_same_classes``, and the model built from
config.json against the checkpoint, ``training.engine.checkpoint.restore_checkpoint``). A
refused resume leaves the folder as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from training.config import Config, ConfigError
from training.data.errors import DataError
from training.engine.checkpoint import ResumeState, check_weights_file
from training.rundir import (
    RunDirError,
    RunLock,
    absolute_run_dir,
    clear_unfinished_start,
    inspect_resume,
    lock_run_dir,
    remove_leftovers,
    require_run_folder,
)
from training.rundir.labels import LabelsError, read_labels


class ResumeRefused(Exception):
    """The folder cannot be resumed; ``error`` says why, ``run_dir`` is the folder as named."""

    def __init__(self, error: Exception, run_dir: str):
        super().__init__(str(error))
        self.error = error
        self.run_dir = run_dir


@dataclass
class ResumeStart:
    """A folder that passed the preflight, locked for this process."""
    lock: RunLock
    config: Config
    checkpoint: ResumeState | None   # None: no epoch completed, the run starts over
    notice: str = ""


def prepare_resume(run_dir: str | Path) -> ResumeStart:
    """Checks and locks ``run_dir`` for a resume and removes what a killed save left there.

    Raises:
        ResumeRefused: the folder cannot be resumed (nothing was written; no lock is held).
    """
    lock = None
    try:
        path = absolute_run_dir(run_dir)
        require_run_folder(path)
        lock = lock_run_dir(path)
        plan = inspect_resume(path)
        checkpoint = None
        if plan.state is not None:
            checkpoint = ResumeState.from_dict(plan.state)
            check_weights_file(path, checkpoint)
    except (ConfigError, RunDirError, LabelsError, OSError, ValueError) as error:
        if lock is not None:
            lock.release()
        raise ResumeRefused(error, str(run_dir if lock is None else lock.path)) from None
    try:
        remove_leftovers(path, weights_in_use=checkpoint.weights_file if checkpoint else None)
        if checkpoint is None:
            clear_unfinished_start(path)
    except OSError as error:
        lock.release()
        raise ResumeRefused(error, str(path)) from None
    notice = "" if checkpoint is not None else (
        f"No epoch of the earlier run in {path} completed, so there is nothing to "
        "resume: the run starts over in the same folder with its config.json.")
    return ResumeStart(lock=lock, config=plan.config, checkpoint=checkpoint, notice=notice)


def check_same_classes(run_dir: Path, classes: list[str], data_dir: str) -> None:
    """A resume needs the classes the checkpoint's outputs were trained on, in order.

    Raises:
        DataError: the data folder's classes changed since the run began.
    """
    trained = read_labels(run_dir)
    if classes == trained:
        return
    added = [c for c in classes if c not in trained]
    removed = [c for c in trained if c not in classes]
    parts = [f"classes added: {', '.join(added)}"] if added else []
    if removed:
        parts.append(f"{'' if added else 'classes '}removed: {', '.join(removed)}")
    change = "; ".join(parts) or "the same classes in another order"
    raise DataError(
        f"The classes in {data_dir} are not the ones this run was trained on "
        f"({change}). Resuming would give the model's outputs the wrong names. Restore the "
        "data folder's classes to resume, or start a new run.")

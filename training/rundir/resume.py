"""Is a run folder resumable? Every check a resume makes, before it writes anything."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import Config
from training.files import FileReadError, file_kind, path_problem, read_text
from training.rundir.labels import LabelsError, read_labels
from training.rundir.layout import (
    BEST_MODEL,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LABEL_FILES,
    METRICS_FILE,
    RUN_FILES,
    STATE_FILE,
    RunDirError,
    absolute_run_dir,
    link_error,
    lstat_kind,
)
from training.rundir.lock import in_use_error, lock_holder
from training.rundir.reading import read_checkpoint_state, read_run_config, read_summary


@dataclass
class ResumePlan:
    """What ``inspect_resume`` found: the run's config and checkpoint state, or no
    checkpoint (``state is None``: no epoch completed, the run starts over)."""
    path: Path
    config: Config
    state: dict[str, Any] | None


@dataclass(frozen=True)
class ResumeCheck:
    """Whether a run folder can be resumed now (``problem`` says why not) and, when it can,
    what the run was: its config and the epochs its checkpoint completed."""
    run_dir: Path
    problem: str = ""
    config: Config | None = None
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def require_run_folder(path: Path) -> None:
    """Refuses what is not a run folder, or one whose run files are links. Reads nothing."""
    if file_kind(path) != "folder":
        raise RunDirError(f"Cannot resume: {path_problem(path, want='folder')}.")
    if lstat_kind(path / CONFIG_FILE) == "missing":
        raise RunDirError(f"{path} is not a run folder (it has no {CONFIG_FILE}): nothing to "
                          "resume. Start a run with `train`.")
    for name in RUN_FILES:
        if lstat_kind(path / name) == "link":
            raise link_error(path / name)
    folder = path / CHECKPOINT_DIR
    if lstat_kind(folder) == "folder":
        for name in _listdir(folder):
            if lstat_kind(folder / name) == "link":
                raise link_error(folder / name)


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
    if complete or any(lstat_kind(path / name) != "missing" for name in LABEL_FILES):
        _check_labels(path)
    return ResumePlan(path, config, state)


def _check_labels(path: Path) -> None:
    try:
        read_labels(path)
    except LabelsError as error:
        raise RunDirError(f"{error} The run cannot be resumed.") from None


def check_resume(run_dir: str | Path) -> ResumeCheck:
    """Whether ``run_dir`` can be resumed now, and from which epoch (for the window's Resume).

    The same checks as the engine's resume on what is there, plus whether another
    process holds the folder; quick, and writes nothing.
    """
    try:
        path = absolute_run_dir(run_dir)
        plan = inspect_resume(path, complete=False)
    except RunDirError as error:
        return ResumeCheck(Path(run_dir), problem=str(error))
    if plan.state is None:
        return ResumeCheck(path, problem=f"{path} has no checkpoint: no epoch of that run completed.")
    pid = lock_holder(path)
    if pid is not None:
        return ResumeCheck(path, problem=str(in_use_error(path, pid)))
    return ResumeCheck(path, config=plan.config, epoch=plan.state["epoch"],
                       history=list(plan.state.get("history") or []))


def resume_problem(run_dir: str | Path) -> str:
    """Why ``run_dir`` cannot be resumed now, or "" when it can (see ``check_resume``)."""
    return check_resume(run_dir).problem


def _recorded_epochs(path: Path, summary: dict[str, Any] | None) -> str:
    """How the folder shows that an epoch completed ("" when nothing does)."""
    completed = (summary or {}).get("epochs_completed")
    if isinstance(completed, int) and not isinstance(completed, bool) and completed > 0:
        return f"{completed} epoch(s) completed"
    if lstat_kind(path / BEST_MODEL) != "missing":
        return f"it holds a saved model ({BEST_MODEL})"
    metrics = path / METRICS_FILE
    if lstat_kind(metrics) != "missing":
        try:
            rows = [line for line in read_text(metrics, what="metrics").splitlines() if line.strip()]
        except FileReadError:
            return f"its {METRICS_FILE} cannot be read"
        if len(rows) > 1:
            return f"{METRICS_FILE} records {len(rows) - 1} epoch(s)"
    return ""

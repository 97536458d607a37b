"""Every run under a runs root, read from its small JSON files (no Keras, no model files).

``list_runs(root)`` looks at the root's folders; a folder that is not a run (a search's
folder, say) is looked into once more, so ``root/search-1/trial-003/`` is listed too.
Folders that hold no run file are skipped quietly. A run folder is one that holds
``events.jsonl``, ``summary.json`` or ``checkpoint/``, or ``config.json`` (unless it also
holds ``trials.csv`` or ``search.json``: a search's folder), or whose lock a process holds.

Each run gets one status, the first that applies:

    running    a process holds the folder's lock (it trains, or resumes, now)
    damaged    config.json or summary.json cannot be read; ``reason`` says which and why
    finished   summary.json says completed or early_stopping
    failed     the loss diverged (resuming would repeat it)
    resumable  ``train --resume`` can continue it now: stopped, killed or crashed after at
               least one epoch, with a usable checkpoint (``training.rundir.check_resume``)
    stopped    stopped by the user, but nothing to continue from (no epoch completed, or the
               checkpoint is unusable; ``reason`` says which)
    failed     it failed (the summary's error), or ended without a summary (killed) before
               any epoch completed

``reason`` says why a run has its status, in words ("" when finished normally).
``started_at`` is summary.json's (the start of the run's last session, in UTC); a run
without a summary yet (running, killed) takes config.json's modification time.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.config import Config
from training.experiments.compare import changed_keys
from training.rundir import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    EVENTS_FILE,
    SUMMARY_FILE,
    RunDirError,
    check_resume,
    lock_holder,
    read_checkpoint_state,
    read_run_config,
    read_summary,
)
from training.rundir.layout import lstat_kind

STATUSES = ("running", "damaged", "finished", "resumable", "stopped", "failed")
SEARCH_MARKERS = ("trials.csv", "search.json")  # a search's folder: a config.json there is not a run's
FINISHED_REASONS = ("completed", "early_stopping")


@dataclass(frozen=True)
class RunRecord:
    """One run as ``runs`` lists it; ``to_dict`` is its JSON line."""
    run_dir: str
    status: str
    started_at: str | None
    backbone: str | None
    image_size: int | None
    best_epoch: int = 0
    best_metrics: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_runs(root: str | os.PathLike) -> list[RunRecord]:
    """Every run under ``root`` (its folders, and their folders when they are not runs),
    newest first. A root that does not exist holds no runs.

    Raises:
        RunDirError: ``root`` exists but is not a folder that can be read.
    """
    root = Path(root)
    if lstat_kind(root) == "missing":
        return []
    try:
        children = _subfolders(root, strict=True)
    except OSError as error:
        raise RunDirError(f"Cannot read the runs folder {root}: {error.strerror or error}.") from None
    records = []
    for child in children:
        record = read_run(child)
        if record is not None:
            records.append(record)
            continue
        records += [r for r in map(read_run, _subfolders(child)) if r is not None]
    records.sort(key=lambda r: (_sort_time(r.started_at), r.run_dir), reverse=True)
    return records


def read_run(run_dir: str | os.PathLike) -> RunRecord | None:
    """The record of one run folder, or None when ``run_dir`` is not a run folder.

    Never raises for a damaged folder: its status says ``damaged`` and ``reason`` why.
    """
    path = Path(run_dir)
    if not is_run_folder(path):
        return None
    problems: list[str] = []
    summary = _summary(path, problems)
    config = _config(path, problems)
    started_at = _text(summary, "started_at") or _modified_at(path / CONFIG_FILE) or _modified_at(path)
    best_epoch, best_metrics = _best(path, summary)
    backbone = _text(summary, "backbone") or (config.model.backbone if config else None)
    size = (summary or {}).get("image_size")
    image_size = size if _is_int(size) and size > 0 else (config.data.image_size if config else None)
    status, reason = _status(path, summary, config, problems)
    return RunRecord(run_dir=str(path), status=status, started_at=started_at, backbone=backbone,
                     image_size=image_size, best_epoch=best_epoch, best_metrics=best_metrics,
                     changed=changed_keys(config) if config else {}, reason=reason)


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a run's folder (see the module docstring); reads no file."""
    if lstat_kind(path) != "folder":
        return False
    if any(lstat_kind(path / name) != "missing" for name in (EVENTS_FILE, SUMMARY_FILE, CHECKPOINT_DIR)):
        return True
    if lstat_kind(path / CONFIG_FILE) != "missing" and all(
            lstat_kind(path / name) == "missing" for name in SEARCH_MARKERS):
        return True
    return lock_holder(path) is not None


# -- status ------------------------------------------------------------------------------
def _status(path: Path, summary: dict[str, Any] | None, config: Config | None,
            problems: list[str]) -> tuple[str, str]:
    pid = lock_holder(path)
    if pid is not None:
        return "running", f"process PID {pid} writes it" if pid else "a process writes it"
    if problems:
        return "damaged", problems[0]
    stop_reason = (summary or {}).get("stop_reason")
    error = _text(summary, "error") or ""
    if stop_reason in FINISHED_REASONS:
        return "finished", "early stopping" if stop_reason == "early_stopping" else ""
    if stop_reason == "diverged":
        return "failed", error or "the loss diverged"
    if stop_reason not in (None, "stopped", "failed"):
        return "damaged", f"{path / SUMMARY_FILE} has an unknown stop_reason: {str(stop_reason)[:60]!r}"
    if config is None:
        # Failed before it wrote config.json (e.g. an image size the backbone refuses).
        return "failed", error or f"it has no {CONFIG_FILE}: it ended before it recorded its config"
    check = check_resume(path)
    if not check.problem:
        planned = config.training.head_epochs + config.training.fine_tune_epochs
        how = {"stopped": "stopped", "failed": "failed"}.get(stop_reason, "ended without a summary (killed?)")
        return "resumable", (f"{how} after epoch {check.epoch} of {planned}"
                             + (f" ({error})" if error and stop_reason == "failed" else "")
                             + f"; continue with `train --resume {path}`")
    if stop_reason == "stopped":
        return "stopped", check.problem
    if stop_reason == "failed":
        return "failed", error or check.problem
    return "failed", f"it ended without a summary (killed or crashed): {check.problem}"


# -- reading, never raising ----------------------------------------------------------------
def _summary(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        return read_summary(path)
    except RunDirError as error:
        problems.append(str(error))
        return None


def _config(path: Path, problems: list[str]) -> Config | None:
    if lstat_kind(path / CONFIG_FILE) == "missing":
        return None
    try:
        return read_run_config(path, consequence="")
    except RunDirError as error:
        problems.append(str(error).strip())
        return None


def _best(path: Path, summary: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
    """The best epoch and its metrics: the summary's, else (running, killed) the checkpoint's."""
    source = summary
    if source is None:
        try:
            source = read_checkpoint_state(path, complete=False)
        except RunDirError:
            source = None
    source = source or {}
    epoch, metrics = source.get("best_epoch"), source.get("best_metrics")
    if not (_is_int(epoch) and epoch >= 0 and isinstance(metrics, dict)):
        return 0, {}
    return epoch, {str(k): _finite(v) for k, v in metrics.items()}


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a metric reads as None."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _text(data: dict[str, Any] | None, key: str) -> str | None:
    value = (data or {}).get(key)
    return value if isinstance(value, str) and value else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _modified_at(path: Path) -> str | None:
    try:
        seconds = os.lstat(path).st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _sort_time(text: str | None) -> float:
    try:
        moment = datetime.fromisoformat(text or "")
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _subfolders(folder: Path, *, strict: bool = False) -> list[Path]:
    """The folders in ``folder`` (not links, not hidden), by name; [] when it cannot be read
    unless ``strict``."""
    try:
        with os.scandir(folder) as entries:
            names = sorted(entry.name for entry in entries
                           if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False))
    except OSError:
        if strict:
            raise
        return []
    return [folder / name for name in names]

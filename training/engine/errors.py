"""How a run's failure reads to the person who started it (Keras-free)."""

from __future__ import annotations

from pathlib import Path

from training.config import ConfigError
from training.data.errors import DataError
from training.rundir import RunDirError, disk_full_message, is_disk_full
from training.rundir.labels import LabelsError


class StopRequested(Exception):
    """The stop flag was set before training began (e.g. during a download)."""


def user_message(error: Exception, run_dir: Path) -> str:
    """What went wrong and what to do, in one message: the error's own words for the
    failures the engine explains itself, its kind and words for anything else."""
    if is_disk_full(error):
        return disk_full_message(error, run_dir)
    known = (ConfigError, RunDirError, DataError, LabelsError, ValueError, FileNotFoundError,
             PermissionError)
    if isinstance(error, known) or type(error).__name__ == "WeightsUnavailableError":
        return str(error)
    if isinstance(error, OSError):
        return (f"{error.strerror or error} ({getattr(error, 'filename', '') or ''}). "
                "Check that the disk is not full and the run folder is writable.")
    return f"Training failed: {type(error).__name__}: {error}"

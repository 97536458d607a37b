"""Did a run reproduce another? ``python main.py train RUN_DIR/config.json`` (and the window's
"Run again") trains with a run's config; afterwards ``reproduction_report`` compares the two
folders: the exact files of each split and their content (data_files.json), the library
versions and device (summary.json), and every epoch's metrics (metrics.csv).

On the same machine, with the same files, config and seed, a CPU run repeats every epoch's
loss and accuracy (tests/test_reproduce.py); a GPU's kernels are not bitwise deterministic,
so there the figures agree only closely.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from training.files import display_path
from training.rundir import RunDirError, read_metrics, read_summary
from training.rundir.data_files import data_differences, read_data_files

_COMPARED = ("loss", "accuracy", "val_loss", "val_accuracy")


def _metrics(run_dir: str | Path) -> list[dict[str, float]]:
    try:
        return read_metrics(run_dir)
    except RunDirError:
        return []


def reproduction_report(source: str | Path, new: str | Path) -> list[str]:
    """Lines that say how run ``new`` compares with the run ``source`` whose config it used.

    Empty when ``source`` recorded no file list (a run from before data_files.json)."""
    old_files, new_files = read_data_files(source), read_data_files(new)
    if old_files is None or new_files is None:
        return []
    name = display_path(source)
    lines = []
    differences = data_differences(old_files, new_files)
    if differences:
        lines.append(f"The data differs from {name}'s ({'; '.join(differences)}): the figures will differ.")
    else:
        lines.append(f"Same files with the same content as {name} in every split.")
    old_summary, new_summary = _summary(source), _summary(new)
    for key, what in (("versions", "library versions"), ("device", "device")):
        if old_summary.get(key) != new_summary.get(key):
            lines.append(f"Other {what}: {_shown(old_summary.get(key))} then, {_shown(new_summary.get(key))} now.")
    old_rows, new_rows = _metrics(source), _metrics(new)
    shared = min(len(old_rows), len(new_rows))
    if shared:
        gap = max(abs(a[key] - b[key]) for a, b in zip(old_rows, new_rows) for key in _COMPARED
                  if math.isfinite(a[key]) and math.isfinite(b[key]))
        if gap == 0:
            lines.append(f"Every epoch's loss and accuracy equal {name}'s ({shared} epochs): reproduced.")
        else:
            lines.append(f"Epoch figures differ from {name}'s by up to {gap:.3g} over {shared} epochs.")
    return lines


def _summary(run_dir: str | Path) -> dict[str, Any]:
    try:
        return read_summary(Path(run_dir)) or {}
    except RunDirError:
        return {}


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {version}" for key, version in value.items())
    return str(value)

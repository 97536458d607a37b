"""Removing what a killed run left behind, so its folder can be resumed or started over.

Only names this package makes are touched (``training.rundir.layout.temp_name_pattern``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from training.rundir.layout import (
    CHECKPOINT_DIR,
    DATA_REPORT_FILE,
    EVENTS_FILE,
    KERAS_TEMP_DIR,
    METRICS_FILE,
    REPLACED_FILES,
    STATE_FILE,
    SUMMARY_FILE,
    TEMP_CHARS,
    WEIGHTS_NAME,
    lstat_kind,
    temp_name_pattern,
)

_RUN_TEMP_FILES = [temp_name_pattern(name) for name in REPLACED_FILES] + [
    re.compile(r"\.write-test"),            # an older version's write probe
    re.compile(rf"tmp{TEMP_CHARS}"),        # Keras's weights file for a model too big for memory
]
_CHECKPOINT_TEMP_FILES = [
    re.compile(rf"\.epoch-\d{{4,}}\.weights\.h5\.{TEMP_CHARS}\.weights\.h5"),
    temp_name_pattern(STATE_FILE),
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
    kind = lstat_kind(keras_temp)
    if kind == "folder":
        shutil.rmtree(keras_temp, ignore_errors=True)
    elif kind != "missing":
        keras_temp.unlink()
    if kind != "missing":
        removed.append(KERAS_TEMP_DIR)
    folder = run_dir / CHECKPOINT_DIR
    if lstat_kind(folder) == "folder":
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
        if any(p.fullmatch(name) for p in patterns) and lstat_kind(folder / name) in ("file", "link"):
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

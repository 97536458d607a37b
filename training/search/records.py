"""The search folder: its name, and the files a search writes beside its trials' run folders.

    trial-NNN/         one normal run folder per trial (``training.rundir``)
    trials.csv         one row a trial: trial, run_dir, status, val_accuracy, val_loss, then
                       one column per searched key; rewritten after each trial
    best_config.json   the best completed trial's config with the configured (full) epochs,
                       ready for ``python main.py train DIR/best_config.json``
    search.json        the stages (trials, epochs, space) and each trial's stage and reason

Every file is replaced atomically, so a search stopped or killed at any moment leaves the
last complete version.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from training.config import Config
from training.config.knobs import number_text
from training.files import file_kind, path_problem
from training.rundir import write_json_atomic, write_text_atomic
from training.rundir.naming import free_name

TRIALS_FILE = "trials.csv"
BEST_CONFIG_FILE = "best_config.json"
SEARCH_FILE = "search.json"
TRIAL_COLUMNS = ("trial", "run_dir", "status", "val_accuracy", "val_loss")
STATUSES = ("completed", "pruned", "stopped", "failed")


class SearchError(ValueError):
    """A search cannot start as asked (its folder, its number of trials); the message says
    what to do."""


@dataclass(frozen=True)
class TrialRecord:
    """One trial as trials.csv and the events report it."""

    trial: int
    stage: str
    run_dir: str
    status: str                       # one of STATUSES
    val_accuracy: float | None = None
    val_loss: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    epochs: int = 0                   # planned, over all phases
    seconds: float = 0.0

    def row(self, keys: Sequence[str]) -> list[str]:
        return [str(self.trial), self.run_dir, self.status, _metric(self.val_accuracy),
                _metric(self.val_loss), *(_value(self.params.get(key)) for key in keys)]

    def to_dict(self) -> dict[str, Any]:
        return {"trial": self.trial, "stage": self.stage, "run_dir": self.run_dir, "status": self.status,
                "val_accuracy": self.val_accuracy, "val_loss": self.val_loss, "params": dict(self.params),
                "reason": self.reason, "epochs": self.epochs, "seconds": round(self.seconds, 1)}


def trial_dir_name(number: int) -> str:
    return f"trial-{number:03d}"


def next_search_dir(root: str | os.PathLike) -> Path:
    """``root/search-<YYYYmmdd-HHMMSS>``, with ``~2``, ``~3`` when that name is taken."""
    return free_name(Path(root) / f"search-{time.strftime('%Y%m%d-%H%M%S')}")


def prepare_search_dir(path: str | os.PathLike) -> Path:
    """Creates the search folder, or takes an empty one; returns it as an absolute path.

    Raises:
        SearchError: it holds other files, or cannot be a folder.
    """
    path = Path(path).expanduser().absolute()
    kind = file_kind(path)
    if kind == "folder":
        try:
            with os.scandir(path) as listing:
                entries = next(listing, None)
        except OSError as error:
            raise SearchError(f"The search folder {path} cannot be read ({error.strerror or error}). "
                              "Choose a new or empty folder (--out).") from None
        if entries is not None:
            raise SearchError(f"The search folder {path} already holds other files (e.g. {entries.name}); "
                              "a search writes only into a new or empty folder. Choose another --out, "
                              "or leave it out for a new folder under the runs root.")
    elif kind != "missing":
        raise SearchError(f"The search folder cannot be used: {path_problem(path, want='folder')}. "
                          "Choose a new or empty folder (--out).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SearchError(f"Cannot create the search folder {path}: {error.strerror or error}. "
                          "Choose a folder you can write to (--out).") from None
    return path


def ranked_records(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The completed trials with a score, best first: highest validation accuracy, then lowest
    validation loss, then the earliest."""
    scored = [r for r in records if r.status == "completed" and _finite(r.val_accuracy)]
    return sorted(scored, key=lambda r: (-r.val_accuracy, r.val_loss if _finite(r.val_loss) else math.inf,
                                         r.trial))


def best_record(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The first of ``ranked_records``, or None when no trial completed with a score."""
    ranked = ranked_records(records)
    return ranked[0] if ranked else None


def write_trials_csv(out_dir: Path, records: Sequence[TrialRecord], keys: Sequence[str]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*TRIAL_COLUMNS, *keys])
    for record in records:
        writer.writerow(record.row(keys))
    path = out_dir / TRIALS_FILE
    write_text_atomic(path, buffer.getvalue())
    return path


def write_best_config(out_dir: Path, base: Config, record: TrialRecord) -> Path:
    """The best trial's settings on the search's config, with its full epochs."""
    path = out_dir / BEST_CONFIG_FILE
    write_text_atomic(path, base.with_overrides(record.params).to_json())
    return path


def write_search_json(out_dir: Path, summary: dict[str, Any]) -> Path:
    path = out_dir / SEARCH_FILE
    write_json_atomic(path, summary)
    return path


def read_trials_csv(out_dir: str | os.PathLike) -> list[dict[str, str]]:
    """trials.csv's rows as dicts of text (for tests and readers of a finished search)."""
    with open(Path(out_dir) / TRIALS_FILE, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _metric(value: float | None) -> str:
    return f"{value:.6g}" if _finite(value) else ""


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return number_text(value)
    if isinstance(value, str):
        return value
    return json.dumps(value)

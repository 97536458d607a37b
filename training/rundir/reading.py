"""Reading a run folder's files: its config, summary, data report, checkpoint state and events.

Every file is read through ``training.files`` (regular files only, bounded size, UTF-8), and
each is checked key by key, so a damaged or hand-edited file is a clear message, not a
traceback.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Callable

from training.config import Config, ConfigError
from training.files import FileReadError, parse_json, read_json, read_text
from training.rundir.layout import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    DATA_REPORT_FILE,
    EVENTS_FILE,
    METRICS_FILE,
    PHASES,
    STATE_FILE,
    SUMMARY_FILE,
    WEIGHTS_NAME,
    RunDirError,
    link_error,
    lstat_kind,
)


def read_run_config(path: Path, *, consequence: str = "The run cannot be resumed.") -> Config:
    """The run's config.json as a validated Config.

    Args:
        consequence: what an unreadable file means for the caller, ending its message.

    Raises:
        RunDirError: unreadable (not a file, not UTF-8, too large) or not a valid config.
    """
    config_file = path / CONFIG_FILE
    try:
        data = parse_json(read_text(config_file, what="run's config.json"), what="run's config.json")
    except FileReadError as error:
        raise RunDirError(f"{error} ({config_file}) {consequence}") from None
    training = data.get("training") if isinstance(data, dict) else None
    if isinstance(training, dict) and "mode" not in training:
        # Recorded before `training.mode` existed: its phases ran exactly as written.
        training["mode"] = "fine_tune"
    try:
        return Config.from_dict(data)
    except (ConfigError, TypeError, ValueError, AttributeError, KeyError) as error:
        raise RunDirError(f"The run's {config_file} is damaged or was edited into an invalid "
                          f"config: {error}") from None


def read_summary(path: Path) -> dict[str, Any] | None:
    """``summary.json`` as a dict, or None when the run has none (yet).

    Raises:
        RunDirError: unreadable, or not a JSON object.
    """
    summary_file = path / SUMMARY_FILE
    if lstat_kind(summary_file) == "missing":
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


def read_data_report(path: Path) -> dict[str, Any] | None:
    """``data_report.json`` as a dict, or None when the run has none (made before it existed).

    Only the keys readers rely on are checked: ``classes`` (a list of names),
    ``train_counts`` / ``validation_counts`` / ``test_counts`` (class name -> whole number of
    images) and ``test_dir`` (a path or null). A report from before test sets has no
    ``test_counts`` or ``test_dir``: it reads as a run without a test set.

    Raises:
        RunDirError: unreadable, not a JSON object, or one of those keys damaged.
    """
    report_file = path / DATA_REPORT_FILE
    if lstat_kind(report_file) == "missing":
        return None
    try:
        report = read_json(report_file, what="data report")
    except FileReadError as error:
        raise RunDirError(f"{error} The run's data report {report_file} cannot be read.") from None
    problem = _data_report_problem(report)
    if problem:
        raise RunDirError(f"The run's data report {report_file} is damaged: {problem}.")
    return report


def _data_report_problem(report: Any) -> str:
    if not isinstance(report, dict):
        return f"it holds a JSON {_json_type(report)}, not an object"
    classes = report.get("classes", [])
    if not (isinstance(classes, list) and all(isinstance(name, str) for name in classes)):
        return "`classes` must be a list of class names"
    for key in ("train_counts", "validation_counts", "test_counts"):
        counts = report.get(key, {})
        if not (isinstance(counts, dict) and all(_is_int(n) and n >= 0 for n in counts.values())):
            return f"`{key}` must map class names to whole numbers of images"
    if not isinstance(report.get("test_dir"), (str, type(None))):
        return "`test_dir` must be the test folder's path or null"
    return ""


# -- the checkpoint's state.json ---------------------------------------------------------------
STATE_KEYS = ("epoch", "phase", "global_step", "weights_file", "best_value", "best_epoch",
              "best_metrics", "history", "seed_states", "callbacks", "policy")
# Keys a checkpoint written before they existed lacks (``policy``: float32 then).
OPTIONAL_STATE_KEYS = ("policy",)


def read_checkpoint_state(path: Path, *, complete: bool = True) -> dict[str, Any] | None:
    """``checkpoint/state.json`` checked key by key, or None when there is none.

    Raises:
        RunDirError: unreadable, not an object, a missing (when ``complete``) or unknown
            key, a value of the wrong type or range, or a weights file that is missing or
            named outside ``checkpoint/``.
    """
    folder = path / CHECKPOINT_DIR
    state_file = folder / STATE_FILE
    if lstat_kind(folder) == "link":
        raise link_error(folder)
    if lstat_kind(state_file) == "missing":
        return None
    try:
        state = read_json(state_file, what="checkpoint state")
    except FileReadError as error:
        raise _damaged(state_file, str(error)) from None
    problem = state_problem(state, complete=complete)
    if problem:
        raise _damaged(state_file, problem)
    weights = state.get("weights_file")
    if complete and lstat_kind(folder / weights) != "file":
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
    "policy": (lambda v: v in ("float32", "mixed_float16"), '"float32" or "mixed_float16"'),
}


def state_problem(state: Any, *, complete: bool = True) -> str:
    """What is wrong with a checkpoint state, Keras-style, or "" when nothing is."""
    if not isinstance(state, dict):
        return f"it holds a JSON {_json_type(state)}, not an object"
    unknown = sorted(set(state) - set(STATE_KEYS))
    if unknown:
        return f"unknown key `{unknown[0]}` (known: {', '.join(STATE_KEYS)})"
    required = [key for key in STATE_KEYS if key not in OPTIONAL_STATE_KEYS] if complete else ["epoch"]
    missing = [key for key in required if key not in state]
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


# -- events.jsonl ----------------------------------------------------------------------------
def read_events(run_dir: str | Path) -> list[dict[str, Any]]:
    """The events of a run as dicts (for tools and tests)."""
    lines = (Path(run_dir) / EVENTS_FILE).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def closed_run_problem(run_dir: Path, when_busy: str) -> str | None:
    """Why ``run_dir`` cannot be read as a run that has ended (None when it can): it is not a
    folder, or a run still writes it (``when_busy`` then says what to do)."""
    from training.files import path_problem
    from training.rundir.lock import lock_holder

    problem = path_problem(run_dir, want="folder")
    if problem:
        return f"The run folder cannot be used: {problem}. Pass a folder written by `python main.py train`."
    holder = lock_holder(run_dir)
    if holder is not None:
        return f"{run_dir} is being written by a run (process {holder or 'unknown'}): {when_busy}"
    return None


# -- metrics.csv ------------------------------------------------------------------------------
def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """A run's metrics.csv, one dict an epoch with its columns (``METRICS_COLUMNS``): ``epoch``
    an int, ``phase`` a string, the others floats (NaN where the run recorded none). [] when
    the run has recorded no epoch yet.

    Raises:
        training.rundir.RunDirError: metrics.csv cannot be read.
    """
    path = Path(run_dir) / METRICS_FILE
    if lstat_kind(path) == "missing":
        return []
    try:
        text = read_text(path, what="run's metrics.csv")
    except FileReadError as error:
        raise RunDirError(str(error)) from None
    rows = []
    for row in csv.DictReader(text.splitlines()):
        try:
            epoch = int(row.get("epoch") or "")
        except ValueError:
            continue  # a line cut short by a crash
        values: dict[str, Any] = {"epoch": epoch, "phase": row.get("phase") or ""}
        for key, text_value in row.items():
            if key not in values and key is not None:
                try:
                    values[key] = float(text_value)
                except (TypeError, ValueError):
                    values[key] = math.nan
        rows.append(values)
    return rows

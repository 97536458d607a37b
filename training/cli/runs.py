"""``python main.py runs [--root DIR] [--json]`` and ``python main.py compare RUN_A RUN_B ...``.

``runs`` lists every run under the runs root (``training.experiments``), newest first: a
table, or one JSON object a line (``RunRecord.to_dict``). ``compare`` prints the config keys
that differ (``key: a -> b``, one line each) and the best metrics side by side.

Exit codes: 0 listed or compared; 2 a root or run folder that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from training.cli.common import EXIT_OK, UsageError, absolute, shown
from training.files import path_problem

COMMANDS = ("runs", "compare")

# Shown in the table's own columns, so left out of its "changed" column.
_COLUMN_KEYS = ("data.dir", "model.backbone", "data.image_size")
# The metrics compare shows first, in this order; the others follow as the first run has them.
_FIRST_METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")


def add_parsers(sub) -> None:
    runs = sub.add_parser(
        "runs", help="list the runs under the runs root, newest first",
        description="Lists every run under the runs root (and the trials of searches there): status "
                    "(running, damaged, finished, resumable, stopped, failed), start, backbone, image "
                    "size, best epoch and metrics, and the config keys that differ from the defaults.")
    runs.add_argument("--root", help="the runs folder (default: $FINETUNE_STUDIO_RUNS, else the "
                                     "app's folder in the user data directory)")
    runs.add_argument("--json", action="store_true", help="print one JSON object a line")

    compare = sub.add_parser(
        "compare", help="the config keys that differ between runs, and their best metrics side by side")
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="two or more run folders")
    compare.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    return list_command(args) if args.command == "runs" else compare_command(args)


# -- runs ----------------------------------------------------------------------------------
def list_command(args: argparse.Namespace) -> int:
    from training.experiments import list_runs, runs_root
    from training.rundir import RunDirError

    root = runs_root(args.root)
    if args.root is not None:
        problem = path_problem(absolute(args.root), want="folder")
        if problem:
            raise UsageError(f"--root cannot be listed: {problem}. Pass the folder that holds the "
                             "run folders.")
    try:
        records = list_runs(root)
    except RunDirError as error:
        raise UsageError(str(error)) from None
    if args.json:
        for record in records:
            print(json.dumps(record.to_dict(), ensure_ascii=False))
        return EXIT_OK
    if not records:
        print(f"No runs under {root} yet.", file=sys.stderr)
        return EXIT_OK
    print(f"{len(records)} run(s) under {root}, newest first:")
    rows = [("STARTED", "STATUS", "BACKBONE", "SIZE", "BEST", "VAL_ACC", "VAL_LOSS", "RUN", "CHANGED")]
    for record in records:
        metrics = record.best_metrics
        rows.append((_local_time(record.started_at), record.status, record.backbone or "-",
                     str(record.image_size or "-"), str(record.best_epoch or "-"),
                     _number(metrics.get("val_accuracy")), _number(metrics.get("val_loss")),
                     _relative(record.run_dir, root), _changed_text(record.changed)))
    _print_table(rows)
    return EXIT_OK


def _changed_text(changed: dict[str, Any], limit: int = 80) -> str:
    from training.experiments import shown_value

    text = ", ".join(f"{key}={shown_value(value)}" for key, value in changed.items()
                     if key not in _COLUMN_KEYS)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _local_time(text: str | None) -> str:
    try:
        return datetime.fromisoformat(text or "").astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "-"


def _relative(run_dir: str, root: Path) -> str:
    try:
        return str(Path(run_dir).relative_to(root))
    except ValueError:
        return run_dir


# -- compare -------------------------------------------------------------------------------
def compare_command(args: argparse.Namespace) -> int:
    from training.experiments import config_diff, shown_value

    if len(args.run_dirs) < 2:
        raise UsageError("compare needs two or more run folders. Received: 1 "
                         f"({shown(args.run_dirs[0])}). List the runs with `python main.py runs`.")
    runs = [_compared_run(Path(text)) for text in args.run_dirs]
    diff = config_diff([config for _, config in runs])
    if args.json:
        print(json.dumps({
            "runs": [{"run_dir": r.run_dir, "status": r.status, "best_epoch": r.best_epoch,
                      "best_metrics": r.best_metrics} for r, _ in runs],
            "config_diff": diff}, ensure_ascii=False))
        return EXIT_OK
    for key, values in diff.items():
        print(f"{key}: {' -> '.join(shown_value(value) for value in values)}")
    if not diff:
        print("(the configs are the same)")
    print()
    records = [record for record, _ in runs]
    rows = [("", *_headers(records)), ("status", *(r.status for r in records)),
            ("best_epoch", *(str(r.best_epoch or "-") for r in records))]
    for metric in _metric_names(records):
        rows.append((metric, *(_number(r.best_metrics.get(metric)) for r in records)))
    _print_table(rows)
    return EXIT_OK


def _compared_run(path: Path):
    """The run's record and config; a folder that is not a readable run is a usage error."""
    from training.experiments import read_run
    from training.rundir import RunDirError, read_run_config

    run_dir = absolute(path)
    problem = path_problem(run_dir, want="folder")
    if problem:
        raise UsageError(f"Cannot compare {shown(str(path))}: {problem}. Pass run folders written by "
                         "`train` (list them with `python main.py runs`).")
    record = read_run(run_dir)
    if record is None:
        raise UsageError(f"Cannot compare {shown(str(path))}: it is not a run folder (no config.json, "
                         "summary.json or events.jsonl). List the runs with `python main.py runs`.")
    if record.status == "damaged":
        raise UsageError(f"Cannot compare {shown(str(path))}: {record.reason}")
    try:
        config = read_run_config(run_dir, consequence="It cannot be compared.")
    except RunDirError as error:
        raise UsageError(str(error)) from None
    return record, config


def _headers(records) -> list[str]:
    names = [Path(r.run_dir).name for r in records]
    if len(set(names)) == len(names):
        return names
    return [str(Path(*Path(r.run_dir).parts[-2:])) for r in records]


def _metric_names(records) -> list[str]:
    seen = [key for r in records for key in r.best_metrics if key != "epoch"]
    present = [key for key in _FIRST_METRICS if key in seen]
    return present + [key for key in dict.fromkeys(seen) if key not in present]


# -- printing ------------------------------------------------------------------------------
def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


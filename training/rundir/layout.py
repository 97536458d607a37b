"""What a run folder holds, under which names; the one place those names are spelled.

    config.json       the resolved config the run used (loadable by `main.py train`)
    labels.json       class names in the model's output order (exact; ``training.rundir.labels``)
    labels.txt        the same, one a line, for people and older tools
    events.jsonl      every event, one JSON object a line
    metrics.csv       one row an epoch
    data_report.json  the images used, skipped and ignored
    data_files.json   every training, validation and test file with its class and content hash
    best.keras        the best model by the monitored validation metric
    summary.json      best epoch and metrics, why it stopped, time, device, versions
    checkpoint/       state.json and the weights of the last completed epoch (``training.engine.checkpoint``)
    evaluation/       the best model scored on the validation images (``training.evaluation``);
                      evaluation-test/ on the held-out test images, evaluation-*/ other evaluations
    snapshots/        with ``schedule.save_snapshots``: the model at the end of each cosine-restarts cycle
    tensorboard/      TensorBoard logs (``training.engine.tensorboard``)
    .lock             exists while a process writes the folder (``training.rundir.lock``)
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

METRICS_COLUMNS = ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy",
                   "learning_rate", "seconds", "images_per_second")
CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
DATA_REPORT_FILE = "data_report.json"
DATA_FILES_FILE = "data_files.json"
BEST_MODEL = "best.keras"
LABELS_JSON = "labels.json"
LABELS_TXT = "labels.txt"
LABEL_FILES = (LABELS_JSON, LABELS_TXT)
CHECKPOINT_DIR = "checkpoint"
EVALUATION_DIR = "evaluation"
SNAPSHOT_DIR = "snapshots"
STATE_FILE = "state.json"
LOCK_FILE = ".lock"
KERAS_TEMP_DIR = ".keras-tmp"
PHASES = ("head", "fine_tune")
WEIGHTS_NAME = re.compile(r"epoch-\d{4,}\.weights\.h5")
# Files written in place of an older one, through ``training.rundir.writing.atomic_path``.
REPLACED_FILES = (CONFIG_FILE, SUMMARY_FILE, DATA_REPORT_FILE, METRICS_FILE, BEST_MODEL, *LABEL_FILES)
RUN_FILES = (*REPLACED_FILES, EVENTS_FILE, CHECKPOINT_DIR)
TEMP_CHARS = "[a-z0-9_]{8}"  # the random part of a name from ``tempfile``


class RunDirError(OSError):
    """The run folder cannot be used: not empty, in use, damaged, a link, not writable."""


def absolute_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` made absolute, with ``~`` and links of the folder itself resolved."""
    try:
        return Path(run_dir).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as error:
        raise RunDirError(f"{os.fsdecode(run_dir)!r} cannot be used as a run folder: {error}") from None


def lstat_kind(path: Path) -> str:
    """"missing", "link", "folder", "file" or "other", without following a link."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "other"
    if stat.S_ISLNK(mode):
        return "link"
    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def link_error(path: Path) -> RunDirError:
    return RunDirError(
        f"{path} is a symbolic link. The app never writes or reads a run folder's files "
        "through a link (it could overwrite or use a file elsewhere). Replace the link with a "
        "copy of the file (e.g. copy the run folder with `cp -rL`), then try again.")


def temp_name_pattern(name: str) -> re.Pattern:
    """The names ``atomic_path`` gives the temporary files that stand for ``name``."""
    suffix = "".join(Path(name).suffixes[-1:])
    return re.compile(rf"\.{re.escape(name)}\.{TEMP_CHARS}{re.escape(suffix)}")


def shorten(path: Path) -> str:
    """A path short enough for a message (a path can be thousands of characters long)."""
    text = str(path)
    return text if len(text) <= 200 else text[:120] + " ... " + text[-40:]

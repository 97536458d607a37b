"""What every command shares: exit codes, usage errors, argument types, path checks."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Callable

from training.config import BUILTIN_SAMPLE, Config, parse_override
from training.files import file_kind, path_problem

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEBUG_ENV = "FINETUNE_STUDIO_DEBUG"

# Failures caused by what the user gave (a folder, a file, a setting), by exception name
# so that the engine's RunResult.error_type and exceptions from any layer map alike.
USAGE_ERRORS = frozenset({"DataError", "RunDirError", "ConfigError", "FileReadError", "LabelsError",
                          "PredictError", "UsageError"})


class UsageError(ValueError):
    """An argument cannot be used; the message says which and what to do (exit 2)."""


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``, else a usage error that says so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}. Received: {shown(text)}")
        return value
    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0. Received: {shown(text)}")
    return value


def print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def shown(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit - 60]} ... {text[-40:]}"


def expanded(path: str | os.PathLike) -> Path:
    try:
        return Path(path).expanduser()
    except RuntimeError:  # no home folder to expand "~" to: use the path as given
        return Path(path)


def absolute(path: str | os.PathLike) -> Path:
    try:
        return expanded(path).absolute()
    except OSError as error:  # the current folder was deleted or cannot be reached
        raise UsageError(f"Cannot use the path {shown(os.fsdecode(path))}: the current folder cannot "
                         f"be reached ({error.strerror or error}). Change to an existing folder, or "
                         "give an absolute path.") from None


def load_train_config(args: argparse.Namespace) -> Config:
    config = Config.load(args.config) if args.config else Config()
    overrides = dict(parse_override(item) for item in args.overrides)
    if args.data:
        overrides["data.dir"] = args.data
    return config.with_overrides(overrides) if overrides else config


def check_config_paths(config: Config) -> None:
    """The folders and files the config names exist and can be used, before anything loads.

    Raises:
        UsageError: naming the setting and what is wrong with its path.
    """
    if config.data.dir != BUILTIN_SAMPLE:
        problem = path_problem(expanded(config.data.dir), want="folder")
        if problem:
            raise UsageError(f"The data folder cannot be used: {problem}. Pass a folder with one "
                             "subfolder per class (--data DIR or data.dir in the config).")
    for key, folder, what in (("data.validation_dir", config.data.validation_dir, "validation"),
                              ("data.test_dir", config.data.test_dir, "test")):
        if folder and folder.strip() and folder != BUILTIN_SAMPLE:
            problem = path_problem(expanded(folder), want="folder")
            if problem:
                raise UsageError(f"The {what} folder ({key}) cannot be used: {problem}.")
    weights = config.model.weights
    if weights not in ("imagenet", "none"):
        problem = path_problem(expanded(weights), want="file")
        if problem:
            raise UsageError(f"The weights file (model.weights) cannot be used: {problem}.")


def check_new_folder(path: Path, *, explicit: bool, what: str = "run") -> None:
    """Raises ``UsageError`` when ``path`` cannot become a new ``what`` ("run", "search") folder,
    saying what to do: ``explicit`` when the user named it with --out, else it was made under
    the runs root."""
    problem = out_problem(path)
    if problem and not explicit:
        raise UsageError(f"The runs root cannot hold a new {what} folder ({path}): {problem}. Choose "
                         f"another folder with --root (or FINETUNE_STUDIO_RUNS), or a {what} folder with --out.")
    if problem:
        raise UsageError(f"--out cannot be used as a {what} folder: {problem}. Choose a new or empty "
                         "folder with --out.")


def out_problem(path: Path) -> str:
    """Why ``path`` cannot become a run folder, or "" (the engine checks what is inside)."""
    kind = file_kind(path)
    if kind == "folder":
        return ""
    if kind != "missing":
        return path_problem(path, want="folder")
    if any(len(os.fsencode(part)) > 255 for part in path.parts):
        return path_problem(path, want="folder")
    for parent in path.parents:
        parent_kind = file_kind(parent)
        if parent_kind == "folder":
            return ""
        if parent_kind != "missing":
            return f"it cannot be created: {path_problem(parent, want='folder')}"
    return ""

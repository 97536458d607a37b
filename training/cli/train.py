"""``python main.py train``: a new run, or ``--resume`` of a stopped one."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from training.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    USAGE_ERRORS,
    UsageError,
    absolute,
    check_config_paths,
    check_new_folder,
    load_train_config,
    print_error,
    shown,
)
from training.cli.native_logs import quiet_start
from training.cli.progress import ProgressPrinter
from training.cli.signals import StopOnSignals
from training.config import Config
from training.files import file_kind, is_regular_file, path_problem
from training.rundir import CONFIG_FILE, DATA_FILES_FILE


def default_run_dir(config: Config, root: str | None = None) -> Path:
    """A new folder under the runs root (``--root``, else ``training.experiments.runs_root``)."""
    from training.experiments import runs_root
    from training.rundir import next_run_dir

    return next_run_dir(runs_root(root), config.model.backbone)


def run(args: argparse.Namespace) -> int:
    if args.resume:
        if args.config or args.data or args.out or args.root or args.overrides or args.distributed:
            print_error("--resume continues a run with its own config.json (training.distributed "
                        "included); it takes no CONFIG, --data, --out, --root, --set or --distributed.")
            return EXIT_USAGE
        run_dir = absolute(args.resume)
        problem = path_problem(run_dir, want="folder")
        if problem:
            raise UsageError(f"Cannot resume: {problem}. Pass a run folder written by `train`.")
        from training.engine.run import resume_training

        return _run_with_progress(lambda stop, printer: resume_training(
            run_dir, on_event=printer, stop=stop), args.quiet, run_dir)
    if args.out and args.root:
        raise UsageError("--out names the run folder itself and --root the folder a new run folder is "
                         "named in; give one of them.")
    try:
        config = load_train_config(args)
        if args.distributed:
            config = config.with_overrides({"training.distributed": args.distributed.replace("-", "_")})
        check_config_paths(config)
        run_dir = absolute(args.out if args.out else default_run_dir(config, args.root))
    except OSError as error:
        raise UsageError(f"Cannot use the arguments: {error.strerror or error} "
                         f"({shown(os.fsdecode(error.filename or ''))}).") from None
    check_new_folder(run_dir, explicit=bool(args.out))

    from training.api import run_training

    # A run's own config.json: say afterwards whether the new run reproduced that run.
    source = Path(args.config).parent if args.config and is_regular_file(
        Path(args.config).parent / DATA_FILES_FILE) else None
    return _run_with_progress(lambda stop, printer: run_training(
        config, run_dir=run_dir, on_event=printer, stop=stop), args.quiet, run_dir, reproducing=source)


def _run_with_progress(start, quiet: bool, run_dir: Path, reproducing: Path | None = None) -> int:
    quiet_start()  # TensorFlow without its start-up notices on the terminal
    printer = ProgressPrinter(sys.stderr, quiet=quiet)
    with StopOnSignals(printer.note) as signals:
        try:
            result = start(signals.stop, printer)
        except KeyboardInterrupt:
            printer.note(aborted_message(run_dir))
            return signals.exit_code
    if result.stop_reason == "failed":
        # Unusable input only when nothing was trained; a failure mid-run is a failed run.
        unusable = result.error_type in USAGE_ERRORS and not result.history
        return EXIT_USAGE if unusable else EXIT_FAILED
    if result.stop_reason == "stopped":
        print(result.run_dir)
        return signals.exit_code
    if not _saved_model(result):
        printer.note(_no_model_message(result))
        return EXIT_FAILED
    if reproducing is not None:
        from training.experiments.reproduce import reproduction_report

        for line in reproduction_report(reproducing, result.run_dir):
            printer.note(line)
    print(result.run_dir)
    return EXIT_OK


def _saved_model(result) -> bool:
    from training.rundir import BEST_MODEL

    return result.best_epoch > 0 and is_regular_file(Path(result.run_dir) / BEST_MODEL)


def _no_model_message(result) -> str:
    if result.stop_reason == "diverged":
        why = ("the loss diverged before the first epoch ended. Lower the learning rate "
               "(see the hint above, or find one with `python main.py lr-find`) and train again")
    else:
        why = "no epoch produced a usable model (see the messages above)"
    return f"error: no model was saved in {result.run_dir}: {why}."


def aborted_message(run_dir: Path) -> str:
    if is_regular_file(run_dir / CONFIG_FILE):
        return (f"Aborted. The best model so far, if any, is in {run_dir}; "
                f"continue with: python main.py train --resume {run_dir}")
    if file_kind(run_dir) == "folder":
        return (f"Aborted before the run saved anything to resume in {run_dir}. Train again with "
                "a new --out folder (or delete that one first).")
    return "Aborted; nothing was saved."

"""Command line: ``python main.py train | config | predict | check | overfit | lr-find | export | evaluate
| runs | compare | search`` (``gui`` is dispatched by main.py).

Exit codes (README, "Command line"):

- 0: done.
- 1: the run or check failed, including a run that ended without saving a model
  (every epoch unusable, or the loss diverged at once).
- 2: unusable input: bad arguments, config, data folder, run folder or model file; the
  message says what to fix. Nothing was trained.
- 130 / 143: stopped by Ctrl+C (SIGINT) / by SIGTERM: 128 + the signal number, as a shell
  reports a process that signal ended. The first signal stops the run after the current
  batch (summary written, resumable); a second one aborts at once.
- 141: the reader of the output went away (``... | head -1``), as for a process ended by
  SIGPIPE (main.py).

Never a traceback: an unexpected error prints its type and message and the file the full
traceback was written to; ``FINETUNE_STUDIO_DEBUG=1`` lets it through instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback

from training.cli import evaluate as evaluate_command
from training.cli import export as export_command
from training.cli import predict as predict_command
from training.cli import runs as runs_command
from training.cli import search as search_command
from training.cli import tools as tool_commands
from training.cli import train as train_command
from training.cli.common import (
    DEBUG_ENV,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    USAGE_ERRORS,
    int_at_least,
    print_error,
    shown,
)
from training.cli.signals import StopOnSignals
from training.cli.train import aborted_message
from training.config import Config

__all__ = ["main", "build_parser", "DEBUG_ENV", "StopOnSignals", "aborted_message"]

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="Fine-tune a pretrained Keras image classifier on a folder of images "
                    "(one subfolder per class).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="train from a JSON config and record the run")
    train.add_argument("config", nargs="?", help="config JSON (default: the built-in defaults)")
    train.add_argument("--data", help="image folder, one subfolder per class (sets data.dir)")
    train.add_argument("--out", help="run folder to create (default: a new folder under the runs root)")
    train.add_argument("--root", help="the runs root: the new run's folder is named <time>-<backbone> in it "
                                      "(default: $FINETUNE_STUDIO_RUNS, else the app's folder in the user "
                                      "data directory; see `runs`)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set optimizer.learning_rate=1e-4 "
                            "(value as JSON; repeatable)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue a stopped or killed run from its last completed epoch")
    train.add_argument("--distributed", choices=("off", "mirrored", "multi-worker"),
                       help="train on all GPUs of this machine (mirrored) or on several machines set up "
                            "by TF_CONFIG (multi-worker; run the same command on each); sets "
                            "training.distributed")
    train.add_argument("--quiet", action="store_true", help="print only the final result")

    config = sub.add_parser("config", help="print or check a config")
    group = config.add_mutually_exclusive_group(required=True)
    group.add_argument("--default", action="store_true", help="print the complete default config")
    group.add_argument("--check", metavar="CONFIG", help="validate a config file and print it resolved")

    predict = sub.add_parser("predict", help="classify images with a trained run")
    predict.add_argument("run_dir", help="a run folder written by `train` (holds best.keras)")
    predict.add_argument("images", nargs="+", help="image files or folders")
    predict.add_argument("--top", type=int_at_least(1), default=3,
                         help="how many classes to show (default 3)")
    predict.add_argument("--tta", action="store_true",
                         help="test-time augmentation: average over flips and crops (12 views)")
    predict.add_argument("--json", action="store_true", help="print one JSON object a line")

    tool_commands.add_parsers(sub)
    export_command.add_parsers(sub)
    evaluate_command.add_parsers(sub)
    runs_command.add_parsers(sub)
    search_command.add_parser(sub)
    sub.add_parser("gui", help="start the desktop app (default when no command is given)")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"train": train_command.run, "config": _config, "predict": predict_command.run,
                "export": export_command.run, "evaluate": evaluate_command.run,
                "runs": runs_command.run, "compare": runs_command.run, "search": search_command.run}
    command = commands.get(args.command) or (tool_commands.run if args.command in tool_commands.COMMANDS else None)
    if command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return command(args)
    except KeyboardInterrupt:  # outside a run (a run handles its own): e.g. while reading inputs
        print_error("Interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise  # main.py ends quietly: whoever read the output has gone
    except Exception as error:
        if type(error).__name__ in USAGE_ERRORS:
            print_error(str(error))
            return EXIT_USAGE
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        return _unexpected(error)


def _unexpected(error: Exception) -> int:
    """Reports a failure no check foresaw: its type and message here, the traceback in a file."""
    details = traceback.format_exc()
    print_error(f"{type(error).__name__}: {shown(str(error), 500)}")
    try:
        fd, name = tempfile.mkstemp(prefix="finetune-studio-error-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(f"python main.py {' '.join(sys.argv[1:])}\n\n{details}")
        where = f"The full traceback is in {name}"
    except OSError as save_error:
        where = f"The traceback could not be saved ({save_error.strerror or save_error})"
    print(f"This is an unexpected error. {where}; please include it when you report it "
          f"(or run again with {DEBUG_ENV}=1 to see it here).", file=sys.stderr)
    return EXIT_FAILED


def _config(args: argparse.Namespace) -> int:
    config = Config() if args.default else Config.load(args.check)
    sys.stdout.write(config.to_json())
    return EXIT_OK

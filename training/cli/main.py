"""Command line: ``python main.py train | config | predict | check | overfit | lr-find``
(``gui`` is dispatched by main.py).

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
import json
import math
import os
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Callable

from training.cli.progress import ProgressPrinter
from training.config import BUILTIN_SAMPLE, Config, parse_override
from training.files import file_kind, is_regular_file, path_problem

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEBUG_ENV = "FINETUNE_STUDIO_DEBUG"

# Failures caused by what the user gave (a folder, a file, a setting), by exception name
# so that the engine's RunResult.error_type and exceptions from any layer map alike.
USAGE_ERRORS = frozenset({"DataError", "RunDirError", "ConfigError", "FileReadError", "LabelsError",
                          "PredictError", "UsageError"})
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class UsageError(ValueError):
    """An argument cannot be used; the message says which and what to do (exit 2)."""


# -- arguments -----------------------------------------------------------------------------
def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``, else a usage error that says so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}. Received: {_shown(text)}")
        return value
    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0. Received: {_shown(text)}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="Fine-tune a pretrained Keras image classifier on a folder of images "
                    "(one subfolder per class).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="train from a JSON config and record the run")
    train.add_argument("config", nargs="?", help="config JSON (default: the built-in defaults)")
    train.add_argument("--data", help="image folder, one subfolder per class (sets data.dir)")
    train.add_argument("--out", help="run folder to create (default: runs/<time>-<backbone>)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set optimizer.learning_rate=1e-4 "
                            "(value as JSON; repeatable)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue a stopped or killed run from its last completed epoch")
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
    predict.add_argument("--json", action="store_true", help="print one JSON object a line")

    _add_sanity_parsers(sub)
    sub.add_parser("gui", help="start the desktop app (default when no command is given)")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"train": _train, "config": _config, "predict": _predict}
    command = commands.get(args.command) or (_sanity if args.command in SANITY_COMMANDS else None)
    if command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return command(args)
    except KeyboardInterrupt:  # outside a run (a run handles its own): e.g. while reading inputs
        _error("Interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise  # main.py ends quietly: whoever read the output has gone
    except Exception as error:
        if type(error).__name__ in USAGE_ERRORS:
            _error(str(error))
            return EXIT_USAGE
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        return _unexpected(error)


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _shown(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit - 60]} ... {text[-40:]}"


def _unexpected(error: Exception) -> int:
    """Reports a failure no check foresaw: its type and message here, the traceback in a file."""
    details = traceback.format_exc()
    _error(f"{type(error).__name__}: {_shown(str(error), 500)}")
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


def _expanded(path: str | os.PathLike) -> Path:
    try:
        return Path(path).expanduser()
    except RuntimeError:  # no home folder to expand "~" to: use the path as given
        return Path(path)


def _absolute(path: str | os.PathLike) -> Path:
    try:
        return _expanded(path).absolute()
    except OSError as error:  # the current folder was deleted or cannot be reached
        raise UsageError(f"Cannot use the path {_shown(os.fsdecode(path))}: the current folder cannot "
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
        problem = path_problem(_expanded(config.data.dir), want="folder")
        if problem:
            raise UsageError(f"The data folder cannot be used: {problem}. Pass a folder with one "
                             "subfolder per class (--data DIR or data.dir in the config).")
    validation_dir = config.data.validation_dir
    if validation_dir and validation_dir != BUILTIN_SAMPLE:
        problem = path_problem(_expanded(validation_dir), want="folder")
        if problem:
            raise UsageError(f"The validation folder (data.validation_dir) cannot be used: {problem}.")
    weights = config.model.weights
    if weights not in ("imagenet", "none"):
        problem = path_problem(_expanded(weights), want="file")
        if problem:
            raise UsageError(f"The weights file (model.weights) cannot be used: {problem}.")


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


def default_run_dir(config: Config) -> Path:
    from training.rundir import next_run_dir

    return next_run_dir("runs", config.model.backbone)


def _train(args: argparse.Namespace) -> int:
    if args.resume:
        if args.config or args.data or args.out or args.overrides:
            _error("--resume continues a run with its own config.json; it takes no CONFIG, "
                   "--data, --out or --set.")
            return EXIT_USAGE
        run_dir = _absolute(args.resume)
        problem = path_problem(run_dir, want="folder")
        if problem:
            raise UsageError(f"Cannot resume: {problem}. Pass a run folder written by `train`.")
        from training.engine.run import resume_training

        return _run_with_progress(lambda stop, printer: resume_training(
            run_dir, on_event=printer, stop=stop), args.quiet, run_dir)
    try:
        config = load_train_config(args)
        check_config_paths(config)
        run_dir = _absolute(args.out if args.out else default_run_dir(config))
    except OSError as error:
        raise UsageError(f"Cannot use the arguments: {error.strerror or error} "
                         f"({_shown(os.fsdecode(error.filename or ''))}).") from None
    problem = out_problem(run_dir)
    if problem:
        raise UsageError(f"--out cannot be used as a run folder: {problem}. Choose a new or empty "
                         "folder with --out.")

    from training.api import run_training

    return _run_with_progress(lambda stop, printer: run_training(
        config, run_dir=run_dir, on_event=printer, stop=stop), args.quiet, run_dir)


# -- signals ------------------------------------------------------------------------------------
class StopOnSignals:
    """While a run goes on, Ctrl+C (SIGINT) and SIGTERM ask it to stop after the current batch
    (it then writes its summary and stays resumable); a second signal of either kind aborts
    at once by raising KeyboardInterrupt in the main thread.

    ``announce`` is called from the signal handler, so it must not block.
    """

    def __init__(self, announce: Callable[[str], None]):
        self.stop = threading.Event()
        self.signal_number = 0
        self._announce = announce
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignals:
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def __exit__(self, *exc_info) -> bool:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        return False

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal_number or signal.SIGINT)

    def _on_signal(self, number: int, frame) -> None:
        self.signal_number = number
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        how = "Ctrl+C" if number == signal.SIGINT else "another SIGTERM or Ctrl+C"
        received = "" if number == signal.SIGINT else "SIGTERM received. "
        try:
            self._announce(f"{received}Stopping after this batch ({how} to abort at once) ...")
        except (RuntimeError, OSError):
            pass  # the stream was busy writing (a reentrant call) or is gone: the stop still holds


def _run_with_progress(start, quiet: bool, run_dir: Path) -> int:
    printer = ProgressPrinter(sys.stderr, quiet=quiet)
    with StopOnSignals(printer.note) as signals:
        try:
            result = start(signals.stop, printer)
        except KeyboardInterrupt:
            printer.note(_aborted_message(run_dir))
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


def _aborted_message(run_dir: Path) -> str:
    if is_regular_file(run_dir / "config.json"):
        return (f"Aborted. The best model so far, if any, is in {run_dir}; "
                f"continue with: python main.py train --resume {run_dir}")
    if file_kind(run_dir) == "folder":
        return (f"Aborted before the run saved anything to resume in {run_dir}. Train again with "
                "a new --out folder (or delete that one first).")
    return "Aborted; nothing was saved."


def _config(args: argparse.Namespace) -> int:
    config = Config() if args.default else Config.load(args.check)
    sys.stdout.write(config.to_json())
    return EXIT_OK


def _check_predict_inputs(args: argparse.Namespace) -> None:
    problem = path_problem(_expanded(args.run_dir), want="folder")
    if problem:
        raise UsageError(f"The run folder cannot be used: {problem}. Pass a folder written by "
                         "`python main.py train`.")
    for item in args.images:
        if file_kind(_expanded(item)) in ("missing", "unreadable"):
            raise UsageError(f"{path_problem(_expanded(item))}. Pass image files or folders of images.")


def _predict(args: argparse.Namespace) -> int:
    _check_predict_inputs(args)
    from training.inference.predict import PredictError, predict

    try:
        results = predict(args.run_dir, args.images, top_k=args.top)
    except PredictError as error:
        _error(str(error))
        return EXIT_USAGE
    if not results:
        _error("no image files were found in " + ", ".join(_shown(str(item), 80) for item in args.images)
               + ". Pass image files, or folders that hold some (.jpg, .png, ...).")
        return EXIT_USAGE
    failed = 0
    for item in results:
        if args.json:
            print(json.dumps(item))
            continue
        if item.get("error"):
            failed += 1
            print(f"{item['path']}: skipped ({item['error']})")
            continue
        ranked = ", ".join(f"{p['class']} {p['probability']:.1%}" for p in item["top"])
        print(f"{item['path']}: {ranked}")
    return EXIT_FAILED if failed and failed == len(results) else EXIT_OK


# -- sanity tools: check, overfit, lr-find ------------------------------------------------------
SANITY_COMMANDS = ("check", "overfit", "lr-find")


def _add_sanity_parsers(sub) -> None:
    helps = {
        "check": "check the data and the untrained model before training (loss at init, L2)",
        "overfit": "train on ~20 images until memorized: proves the model and pipeline can learn",
        "lr-find": "learning-rate range test on a throwaway model; suggests a learning rate",
    }
    for name in SANITY_COMMANDS:
        command = sub.add_parser(name, help=helps[name])
        command.add_argument("config", nargs="?", help="config JSON (default: the built-in defaults)")
        command.add_argument("--data", help="image folder, one subfolder per class (sets data.dir)")
        command.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                             help="override a config key (value as JSON; repeatable)")
        command.add_argument("--quiet", action="store_true", help="print only the result")
        command.add_argument("--json", action="store_true", help="print the result as one JSON object")
        if name == "overfit":
            command.add_argument("--images", type=int_at_least(1), default=20,
                                 help="images to memorize (default 20)")
            command.add_argument("--max-epochs", type=int_at_least(1), default=150,
                                 help="give up after (default 150)")
        if name == "lr-find":
            # Fewer than 10 steps cannot show where the loss falls fastest.
            command.add_argument("--steps", type=int_at_least(10), default=150,
                                 help="batches, at least 10 (default 150)")
            command.add_argument("--min-lr", type=positive_number, default=1e-7,
                                 help="first rate (default 1e-7)")
            command.add_argument("--max-lr", type=positive_number, default=10.0,
                                 help="last rate, above --min-lr (default 10)")


def _sanity(args: argparse.Namespace) -> int:
    if args.command == "lr-find" and args.min_lr >= args.max_lr:
        raise UsageError(f"--min-lr must be lower than --max-lr. Received: --min-lr={args.min_lr:g} "
                         f"--max-lr={args.max_lr:g}")
    try:
        config = load_train_config(args)
        check_config_paths(config)
    except OSError as error:
        raise UsageError(f"Cannot use the arguments: {error.strerror or error}.") from None

    import dataclasses

    from models.weights import WeightsUnavailableError
    from training import api
    from training.events import Log

    def on_event(event) -> None:
        if isinstance(event, Log) and not args.quiet and not args.json:
            print(event.message, file=sys.stderr)

    def announce(text: str) -> None:
        print(text, file=sys.stderr)

    with StopOnSignals(announce) as signals:
        stop = signals.stop
        try:
            if args.command == "check":
                result = api.check_setup(config, on_event=on_event, stop=stop)
            elif args.command == "overfit":
                result = api.overfit_tiny_subset(config, images=args.images, max_epochs=args.max_epochs,
                                                 on_event=on_event, stop=stop)
            else:
                result = api.lr_range_test(config, steps=args.steps, min_lr=args.min_lr,
                                           max_lr=args.max_lr, on_event=on_event, stop=stop)
        except KeyboardInterrupt:
            print("Aborted.", file=sys.stderr)
            return signals.exit_code
        except BrokenPipeError:
            raise
        except (ValueError, OSError, WeightsUnavailableError) as error:  # DataError is a ValueError
            _error(str(error))
            return EXIT_USAGE if type(error).__name__ in USAGE_ERRORS else EXIT_FAILED
    if args.json:
        data = {k: v for k, v in dataclasses.asdict(result).items() if k != "hints"}
        data["hints"] = [h.to_dict() for h in result.hints]
        print(json.dumps(_finite_json(data), default=str))
    else:
        print(_describe(args.command, result))
        for hint in result.hints:
            print(_hint_line(hint))
    if getattr(result, "stopped", False):
        return signals.exit_code
    failed = any(h.severity == "error" for h in result.hints) or (
        args.command == "overfit" and not result.reached)
    return EXIT_FAILED if failed else EXIT_OK


def _finite_json(value):
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not (value == value and abs(value) != float("inf")):
        return None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


def _hint_line(hint) -> str:
    fixes = "; ".join(", ".join(f"--set {k}={json.dumps(v)}" for k, v in fix.items()) for fix in hint.fixes)
    return f"{hint.severity}: {hint.title}. {hint.message}" + (f"\n  fix: {fixes}" if fixes else "")


def _describe(command: str, result) -> str:
    from training.engine.sanity import STRONG_L2

    if command == "check":
        return (f"Untrained loss {result.initial_loss:.3f} (first batch {result.first_batch_loss:.3f}); "
                f"guessing evenly among {result.num_classes} classes scores ln({result.num_classes}) = "
                f"{result.expected_loss:.3f}.\nWith L2 = {STRONG_L2} on the head: {result.regularized_loss:.3f} "
                f"(+{result.regularized_loss - result.initial_loss:.3f}; the weights predict "
                f"+{result.expected_penalty:.3f}).\n" + ("Setup looks right." if result.ok else
                                                          "Look at the hints below."))
    if command == "overfit":
        verdict = "memorized" if result.reached else "NOT memorized"
        first = result.losses[0] if result.losses else float("nan")
        return (f"{result.images} images {verdict} after {result.epochs} epochs: training accuracy "
                f"{result.final_accuracy:.1%}, loss {first:.3f} -> {result.final_loss:.3f} "
                f"(learning rate {result.learning_rate:.3g}).")
    lines = ["learning rate   smoothed loss"]
    count = len(result.learning_rates)
    for index in sorted({round(i * (count - 1) / 14) for i in range(15)} if count else ()):
        lines.append(f"{result.learning_rates[index]:13.2e}   {result.losses[index]:.4f}")
    if result.suggested_learning_rate:
        lines.append(f"Suggested learning rate: {result.suggested_learning_rate:.2g} (fastest fall at "
                     f"{result.steepest_learning_rate or float('nan'):.2g}, lowest loss at "
                     f"{result.min_loss_learning_rate:.2g}; the smaller of the first and a tenth of "
                     "the second).")
    if result.diverged:
        lines.append("The loss diverged before the end of the range (the test stopped there).")
    return "\n".join(lines)

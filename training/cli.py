"""Command line: ``python main.py train | config | predict | check | overfit | lr-find``
(``gui`` is dispatched by main.py).

A bad config or folder exits non-zero with a message saying what to fix, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path

from training.config import Config, ConfigError, parse_override
from training.progress import ProgressPrinter

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
    predict.add_argument("--top", type=int, default=3, help="how many classes to show (default 3)")
    predict.add_argument("--json", action="store_true", help="print one JSON object a line")

    _add_sanity_parsers(sub)
    sub.add_parser("gui", help="start the desktop app (default when no command is given)")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "config":
            return _config(args)
        if args.command == "predict":
            return _predict(args)
        if args.command in SANITY_COMMANDS:
            return _sanity(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    parser.print_help()
    return EXIT_USAGE


def load_train_config(args: argparse.Namespace) -> Config:
    config = Config.load(args.config) if args.config else Config()
    overrides = dict(parse_override(item) for item in args.overrides)
    if args.data:
        overrides["data.dir"] = args.data
    return config.with_overrides(overrides) if overrides else config


def default_run_dir(config: Config) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{config.model.backbone}"


def _train(args: argparse.Namespace) -> int:
    if args.resume:
        if args.config or args.data or args.out or args.overrides:
            print("error: --resume continues a run with its own config.json; it takes no CONFIG, "
                  "--data, --out or --set.", file=sys.stderr)
            return EXIT_USAGE
        from training.engine import resume_training

        return _run_with_progress(lambda stop, printer: resume_training(
            args.resume, on_event=printer, stop=stop), args.quiet, args.resume)
    config = load_train_config(args)
    run_dir = Path(args.out) if args.out else default_run_dir(config)
    if config.data.dir != "builtin:shapes" and not Path(config.data.dir).expanduser().is_dir():
        print(f"error: the data folder {config.data.dir} does not exist. Pass a folder with one "
              "subfolder per class (--data DIR or data.dir in the config).", file=sys.stderr)
        return EXIT_USAGE

    from training.api import run_training

    return _run_with_progress(lambda stop, printer: run_training(
        config, run_dir=run_dir, on_event=printer, stop=stop), args.quiet, run_dir)


def _run_with_progress(start, quiet: bool, run_dir) -> int:
    stop = threading.Event()
    printer = ProgressPrinter(sys.stderr, quiet=quiet)
    previous = signal.signal(signal.SIGINT, lambda *_: _interrupt(stop, printer))
    try:
        result = start(stop, printer)
    except KeyboardInterrupt:
        printer.note(f"Aborted. The best model so far, if any, is in {run_dir}; "
                     f"continue with: python main.py train --resume {run_dir}")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
    if result.stop_reason == "failed":
        return EXIT_FAILED
    print(result.run_dir)
    return EXIT_INTERRUPTED if result.stop_reason == "stopped" else EXIT_OK


def _interrupt(stop: threading.Event, printer: ProgressPrinter) -> None:
    if stop.is_set():
        raise KeyboardInterrupt
    stop.set()
    printer.note("Stopping after this batch (Ctrl+C again to abort at once) ...")


def _config(args: argparse.Namespace) -> int:
    config = Config() if args.default else Config.load(args.check)
    sys.stdout.write(config.to_json())
    return EXIT_OK


def _predict(args: argparse.Namespace) -> int:
    from training.predict import PredictError, predict

    try:
        results = predict(args.run_dir, args.images, top_k=args.top)
    except PredictError as error:
        print(f"error: {error}", file=sys.stderr)
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
            command.add_argument("--images", type=int, default=20, help="images to memorize (default 20)")
            command.add_argument("--max-epochs", type=int, default=150, help="give up after (default 150)")
        if name == "lr-find":
            command.add_argument("--steps", type=int, default=150, help="batches (default 150)")
            command.add_argument("--min-lr", type=float, default=1e-7, help="first rate (default 1e-7)")
            command.add_argument("--max-lr", type=float, default=10.0, help="last rate (default 10)")


def _sanity(args: argparse.Namespace) -> int:
    import dataclasses

    from models.weights import WeightsUnavailableError
    from training import api
    from training.events import Log

    config = load_train_config(args)
    stop = threading.Event()

    def on_event(event) -> None:
        if isinstance(event, Log) and not args.quiet and not args.json:
            print(event.message, file=sys.stderr)

    def interrupt(*_) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("Stopping ... (Ctrl+C again to abort at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, interrupt)
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
        return EXIT_INTERRUPTED
    except (ValueError, OSError, WeightsUnavailableError) as error:  # DataError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGINT, previous)
    if args.json:
        data = {k: v for k, v in dataclasses.asdict(result).items() if k != "hints"}
        data["hints"] = [h.to_dict() for h in result.hints]
        print(json.dumps(_finite_json(data), default=str))
    else:
        print(_describe(args.command, result))
        for hint in result.hints:
            print(_hint_line(hint))
    if getattr(result, "stopped", False):
        return EXIT_INTERRUPTED
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
    from training.sanity import STRONG_L2

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

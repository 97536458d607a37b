"""``python main.py check | overfit | lr-find``: the sanity tools on a config."""

from __future__ import annotations

import argparse
import json
import sys

from training.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    USAGE_ERRORS,
    UsageError,
    check_config_paths,
    int_at_least,
    load_train_config,
    positive_number,
    print_error,
)
from training.cli.native_logs import quiet_start
from training.cli.signals import StopOnSignals

COMMANDS = ("check", "overfit", "lr-find")


def add_parsers(sub) -> None:
    helps = {
        "check": "check the data and the untrained model before training (loss at init, L2)",
        "overfit": "train on ~20 images until memorized: proves the model and pipeline can learn",
        "lr-find": "learning-rate range test on a throwaway model; suggests a learning rate",
    }
    for name in COMMANDS:
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


def run(args: argparse.Namespace) -> int:
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

    quiet_start()
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
            print_error(str(error))
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

"""``python main.py search``: a hyperparameter search, each trial a run folder (``training.search``).

Prints a line per trial as it ends (and, unless --quiet, each trial's epochs) on stderr, and
the search folder on stdout. Ctrl+C stops the current trial after its batch and ends the
search, keeping trials.csv and best_config.json as far as they got.
"""

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
    int_at_least,
    load_train_config,
    print_error,
    shown,
)
from training.cli.native_logs import quiet_start
from training.cli.progress import ProgressPrinter
from training.cli.signals import StopOnSignals
from training.config.knobs import number_text
from training.events import BatchEnd, EpochEnd, Event, Failed, Log
from training.search import (
    SearchError,
    SearchFinished,
    SearchOptions,
    SearchStarted,
    SpaceError,
    StageStarted,
    TrialFinished,
    TrialStarted,
    load_space,
    next_search_dir,
    run_search,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "search", help="search hyperparameters: random, log-uniform, coarse to fine",
        description="Random search over a space of config keys: coarse short trials, then fine trials "
                    "around the best; trials whose loss diverges are stopped early. Each trial is a run "
                    "folder DIR/trial-NNN; DIR/trials.csv lists them and DIR/best_config.json is the best "
                    "one's config (train it with `python main.py train DIR/best_config.json`).")
    parser.add_argument("config", nargs="?", help="config JSON the trials start from (default: the built-in defaults)")
    parser.add_argument("--trials", type=int_at_least(1), required=True, help="how many runs to train")
    parser.add_argument("--space", metavar="SPACE.json",
                        help="keys and ranges to search (default: learning rate, weight decay, dropout, "
                             "label smoothing, zoom, translation, fine-tune depth); see the README")
    parser.add_argument("--out", help="search folder to create (default: search-<time> under the runs root)")
    parser.add_argument("--root", help="the runs root: the search folder is named search-<time> in it "
                                       "(default: as for `train`; see `runs`)")
    parser.add_argument("--data", help="image folder, one subfolder per class (sets data.dir)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key for every trial (value as JSON; repeatable)")
    parser.add_argument("--no-median-pruning", action="store_true",
                        help="prune only diverging trials, not those below the median of their stage")
    parser.add_argument("--quiet", action="store_true", help="print only a line per trial")
    return parser


def run(args: argparse.Namespace) -> int:
    from training.experiments import runs_root

    if args.out and args.root:
        raise UsageError("--out names the search folder itself and --root the folder a new search folder "
                         "is named in; give one of them.")
    try:
        config = load_train_config(args)
        check_config_paths(config)
        space = load_space(args.space, config) if args.space else None
        out_dir = absolute(args.out if args.out else next_search_dir(runs_root(args.root)))
    except SpaceError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"Cannot use the arguments: {error.strerror or error} "
                         f"({shown(os.fsdecode(error.filename or ''))}).") from None
    check_new_folder(out_dir, explicit=bool(args.out), what="search")
    quiet_start()
    printer = SearchPrinter(sys.stderr, quiet=args.quiet)
    options = SearchOptions(median_pruning=not args.no_median_pruning)
    with StopOnSignals(printer.note) as signals:
        try:
            result = run_search(config, out_dir=out_dir, trials=args.trials, space=space,
                                on_event=printer, stop=signals.stop, options=options)
        except (SearchError, SpaceError) as error:
            raise UsageError(str(error)) from None
        except KeyboardInterrupt:
            printer.note(f"Aborted. The trials so far are listed in {out_dir / 'trials.csv'}.")
            return signals.exit_code
    print(result.out_dir)
    if result.stop_reason == "failed":
        print_error(f"the search ended: {result.error}")
        return EXIT_USAGE if result.error_type in USAGE_ERRORS else EXIT_FAILED
    if result.stop_reason == "stopped":
        return signals.exit_code
    return EXIT_OK if result.best is not None else EXIT_FAILED


class SearchPrinter:
    """The search's listener on a terminal: a line per stage and trial, each trial's epochs
    (and its progress bar on a TTY) unless quiet."""

    def __init__(self, stream, *, quiet: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.runs = ProgressPrinter(stream, quiet=quiet)
        self.total = 0

    def note(self, text: str) -> None:
        self.runs.note(text)

    def __call__(self, event: Event) -> None:
        if isinstance(event, SearchStarted):
            self.total = event.trials
            stages = ", ".join(f"{s['trials']} {s['stage']} ({s['epochs']} epoch{'' if s['epochs'] == 1 else 's'} "
                               "each)" for s in event.stages)
            self.note(f"Search folder: {event.out_dir}\nTrials: {stages}")
        elif isinstance(event, StageStarted):
            ranges = "; ".join(f"{key} {_range_text(entry)}" for key, entry in event.space.items())
            self.note(f"== {event.stage} stage: {ranges}")
        elif isinstance(event, TrialStarted):
            if not self.quiet:
                self.note(f"-- trial {event.trial}/{self.total} ({event.stage}): {_params_text(event.params)}")
        elif isinstance(event, TrialFinished):
            self.note(_trial_line(event, self.total))
        elif isinstance(event, SearchFinished):
            self._finished(event)
        elif isinstance(event, Failed):
            self.note(f"  error: {event.message}")
        elif isinstance(event, Log) and event.level != "info" and not self.quiet:
            self.note(f"  {event.level}: {event.message}")
        elif isinstance(event, (BatchEnd, EpochEnd)):
            self.runs(event)

    def _finished(self, event: SearchFinished) -> None:
        if event.best_trial:
            metrics = event.best_metrics
            self.note(f"Search {event.stop_reason}. Best: trial {event.best_trial}, val_accuracy "
                      f"{metrics.get('val_accuracy', 0):.3f}. Its config: {event.best_config}\n"
                      f"Train it for the full epochs with: python main.py train {event.best_config}")
        else:
            self.note(f"Search {event.stop_reason}: no trial completed, so there is no best config. "
                      f"See {event.trials_csv}.")


def _trial_line(event: TrialFinished, total: int) -> str:
    if event.val_accuracy is not None:
        score = f"val_accuracy {event.val_accuracy:.3f} val_loss {event.val_loss:.4f}"
    else:
        score = "no epoch completed"
    why = f" ({event.reason})" if event.status != "completed" and event.reason else ""
    return (f"trial {event.trial}/{total} [{event.stage}] {event.status}{why}: {score} | "
            f"{_params_text(event.params)} | {Path(event.run_dir).name}, {event.seconds:.0f}s")


def _params_text(params: dict) -> str:
    return ", ".join(f"{key}={_value_text(value)}" for key, value in params.items())


def _value_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return number_text(value) if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _range_text(entry: dict) -> str:
    if "choices" in entry:
        return "{" + ", ".join(str(choice) for choice in entry["choices"]) + "}"
    log = " log" if entry.get("log") else ""
    return f"[{_value_text(entry['low'])}, {_value_text(entry['high'])}]{log}"

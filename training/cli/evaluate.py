"""``python main.py evaluate RUN_DIR... [--data DIR] [--split validation|test] [--out DIR] [--tta]
[--top-k K] [--ensemble] [--snapshots]``.

Exit codes: 0 evaluated; 2 unusable input (not a run folder, images that cannot be found, an
--out that holds other files).
"""

from __future__ import annotations

import argparse
import json
import sys

from training.cli.common import EXIT_OK, EXIT_USAGE, print_error

COMMANDS = ("evaluate",)


def add_parsers(sub) -> None:
    command = sub.add_parser(
        "evaluate", help="score a run's best model: confusion matrix, per-class figures, top losses",
        description="Scores the run's best model on its validation images (default), its held-out test "
                    "images (--split test) or any folder with the same class subfolders (--data), and "
                    "writes evaluation.json, predictions.csv, confusion_matrix.png and report.md. "
                    "Several runs with --ensemble are averaged; --snapshots averages a run's snapshots.")
    command.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="a run folder written by `train`")
    command.add_argument("--data", help="a folder of class subfolders to score instead of the run's own images")
    command.add_argument("--split", choices=["validation", "test"], default="validation",
                         help="the run's validation images (they chose the best epoch; default) or its "
                              "held-out test images (data.test_split or data.test_dir)")
    command.add_argument("--out", help="where to write (default RUN_DIR/evaluation, evaluation-test or "
                                       "evaluation-FOLDER); new, empty, or an earlier evaluation")
    command.add_argument("--tta", action="store_true",
                         help="test-time augmentation: average over flips and crops (12 views); the report "
                              "shows the accuracy with and without")
    command.add_argument("--top-k", type=int, default=None, metavar="K",
                         help="report top-K accuracy (default 5, or the number of classes)")
    command.add_argument("--ensemble", action="store_true",
                         help="average the predictions of all RUN_DIRs (same classes) and report the gain "
                              "over the best single run")
    command.add_argument("--snapshots", action="store_true",
                         help="average the run's snapshots (snapshots/*.keras, saved at the end of each "
                              "cosine_restarts cycle)")
    command.add_argument("--json", action="store_true", help="print evaluation.json's content")


def run(args: argparse.Namespace) -> int:
    from training.cli.native_logs import quiet_start

    quiet_start()
    from training.evaluation import EvaluationError, evaluate

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"\rScoring {done}/{total} images ...", end="" if done < total else "\n", file=sys.stderr)

    try:
        document = evaluate(args.run_dirs, data_dir=args.data, split=args.split, out=args.out, tta=args.tta,
                            top_k=args.top_k, ensemble=args.ensemble, snapshots=args.snapshots,
                            on_progress=progress)
    except EvaluationError as error:
        print_error(str(error))
        return EXIT_USAGE
    if args.json:
        print(json.dumps(document))
        return EXIT_OK
    print(describe(document), file=sys.stderr)
    print(document["folder"])
    return EXIT_OK


def describe(document: dict) -> str:
    top_k = document["top_k_accuracy"]
    text = (f"{document['images']} {document['split']} images: accuracy {document['accuracy']:.1%}, "
            f"top-{top_k['k']} {top_k['value']:.1%}, loss {document['loss']:.4f}, macro F1 "
            f"{document['macro_avg']['f1']:.3f}.")
    if document.get("tta"):
        text += f" Without test-time augmentation: {document['accuracy_without_tta']:.1%}."
    ensemble = document.get("ensemble")
    if ensemble:
        text += (f" Best single model: {ensemble['best_member_accuracy']:.1%} "
                 f"({ensemble['gain']:+.1%} for the average).")
    if document.get("skipped"):
        text += f" {len(document['skipped'])} image(s) could not be read."
    return text

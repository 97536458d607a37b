"""``python main.py predict RUN_DIR IMAGE_OR_FOLDER...``."""

from __future__ import annotations

import argparse
import json

from training.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, expanded, print_error, shown
from training.cli.native_logs import quiet_start
from training.files import file_kind, path_problem


def _check_predict_inputs(args: argparse.Namespace) -> None:
    problem = path_problem(expanded(args.run_dir), want="folder")
    if problem:
        raise UsageError(f"The run folder cannot be used: {problem}. Pass a folder written by "
                         "`python main.py train`.")
    for item in args.images:
        if file_kind(expanded(item)) in ("missing", "unreadable"):
            raise UsageError(f"{path_problem(expanded(item))}. Pass image files or folders of images.")


def run(args: argparse.Namespace) -> int:
    _check_predict_inputs(args)
    quiet_start()
    from training.inference.predict import PredictError, predict

    try:
        results = predict(args.run_dir, args.images, top_k=args.top, tta=args.tta)
    except PredictError as error:
        print_error(str(error))
        return EXIT_USAGE
    if not results:
        print_error("no image files were found in " + ", ".join(shown(str(item), 80) for item in args.images)
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

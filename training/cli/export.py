"""``python main.py export RUN_DIR --format FORMAT [--quantize ...] [--out DIR]``.

Exit codes: 0 exported and verified; 1 the conversion or its verification failed (nothing is
left at the export folder); 2 unusable input (not a run folder, a format that does not take
that quantization, an --out that holds other files, images that cannot be found).
"""

from __future__ import annotations

import argparse
import json
import sys

from training.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, print_error
from training.cli.native_logs import quiet_start
from training.export.options import FORMATS, QUANTIZATIONS, TOLERANCES, ExportError

COMMANDS = ("export",)


def add_parsers(sub) -> None:
    command = sub.add_parser(
        "export", help="export a run's model (keras, saved_model, tflite, onnx), verified by its runtime",
        description="Writes the run's best model in one format into a self-contained folder (model, "
                    "labels, model card, predict.py), reloads it with that format's own runtime and "
                    "compares its answers on the run's validation images with the Keras model's. A float "
                    "export that differs by more than its tolerance fails and leaves nothing behind.")
    command.add_argument("run_dir", help="a run folder written by `train` (holds best.keras)")
    command.add_argument("--format", required=True, choices=list(FORMATS), dest="fmt", metavar="FORMAT",
                         help=f"one of {', '.join(FORMATS)}")
    command.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                         help="tflite only: float16 (half the size) or int8 (a quarter, calibrated on "
                              "training images); default none")
    command.add_argument("--out", help="export folder (default RUN_DIR/export/FORMAT[-QUANTIZE]); new, "
                                       "empty, or an earlier export, which is replaced")
    command.add_argument("--data", help="the run's image folder, if it moved since training")
    command.add_argument("--quiet", action="store_true", help="print only the export folder")
    command.add_argument("--json", action="store_true", help="print the result as one JSON object")


def run(args: argparse.Namespace) -> int:
    quiet_start()
    from training.export import export_run

    def progress(message: str) -> None:
        if not args.quiet and not args.json:
            print(f"{message} ...", file=sys.stderr)

    try:
        result = export_run(args.run_dir, args.fmt, quantize=args.quantize, out=args.out,
                            data_dir=args.data, on_progress=progress)
    except ExportError as error:
        print_error(str(error))
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"folder": result.folder, "format": result.format, "quantize": result.quantize,
                          "passed": result.passed, "message": result.message,
                          "verification": result.verification}, default=str))
    if not result.passed:
        if result.verification and not args.json:
            print(describe(result.format, result.quantize, result.verification), file=sys.stderr)
        print_error(result.message)
        return EXIT_FAILED
    if not args.json:
        if not args.quiet:
            print(describe(result.format, result.quantize, result.verification), file=sys.stderr)
        print(result.folder)
    return EXIT_OK


def describe(fmt: str, quantize: str, figures: dict) -> str:
    """The verification figures in two lines."""
    limit = TOLERANCES[quantize].max_probability_difference
    tolerance = "reported, not enforced" if limit is None else f"tolerance {limit:g}"
    name = fmt if quantize == "none" else f"{fmt} {quantize}"
    size = figures.get("file_bytes", 0)
    return (f"{name}: {size / 1e6:.2f} MB; on {figures['images']} validation images: top-1 agreement "
            f"{figures['agreement']:.1%}, largest probability difference "
            f"{figures['max_probability_difference']:.2g} ({tolerance}), accuracy {figures['accuracy']:.1%} "
            f"(Keras {figures['keras_accuracy']:.1%}), {figures.get('ms_per_image', float('nan')):.2f} "
            f"ms/image (Keras {figures.get('keras_ms_per_image', float('nan')):.2f}).")

"""Exporting a trained run for deployment, each export verified by its own runtime.

    options.py   the formats, quantizations and tolerances; the errors (no Keras)
    source.py    the run's model, classes, config and metrics, and its own images again
    formats.py   writing each format with Keras's exporters and the TFLite converter
    runtimes.py  reloading each format with its runtime and scoring images with it
    verify.py    the figures against the Keras model, and pass or fail
    card.py      model_card.json and model_card.md
    script.py    predict.py, from ``templates/``
    folder.py    the staging folder, renamed into place only when the export passed
    run.py       ``export_run``: all of the above for one format

Importing this package is cheap: TensorFlow loads when an export starts.
"""

from training.export.options import (
    FORMATS,
    QUANTIZATIONS,
    TOLERANCES,
    ExportError,
    ExportFailed,
    FormatSpec,
    default_out,
)

__all__ = ["FORMATS", "QUANTIZATIONS", "TOLERANCES", "ExportError", "ExportFailed", "FormatSpec",
           "default_out", "export_run", "ExportResult"]


def __getattr__(name: str):
    # run.py imports numpy and the data pipeline; the CLI's argument parser needs only options.
    if name in ("export_run", "ExportResult"):
        from training.export import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

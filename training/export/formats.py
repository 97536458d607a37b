"""Writing a Keras model in each export format, with Keras's own exporters.

    keras        ``model.save``: the model as Keras itself stores it (``model.keras``), with
                 ``models.saving.save_model`` so that older Keras versions open it too
    saved_model  ``model.export(format="tf_saved_model")``: a ``serving_default`` signature
    tflite       ``model.export(format="litert")``, which runs the TFLite converter; float16
                 and int8 pass the converter's quantization options through it, int8
                 calibrated on a representative set of the run's training images
    onnx         ``model.export(format="onnx")`` (tf2onnx)

The TFLite model is limited to TFLite's built-in operators: Keras's exporter also allows
"select" TensorFlow operators, which the standalone LiteRT interpreter cannot run, so a
model needing one would convert and then fail on every phone. Converting with built-ins
only makes that a conversion error instead.

The converters print to the process's stdout and stderr from C++ (not through Python), so
their output is captured at the file descriptors and shown only when a conversion fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from models.saving import save_model
from training.export.options import ExportFailed, FormatSpec


def write_model(model: Any, folder: Path, spec: FormatSpec, quantize: str,
                calibration: np.ndarray | None = None) -> Path:
    """Writes ``model`` as ``spec`` says into ``folder``; returns the model file (or folder).

    Args:
        calibration: uint8 training images (N, size, size, 3); needed for int8 only.

    Raises:
        ExportFailed: the converter failed; the message carries its last lines of output.
    """
    target = folder / spec.model_file
    error: Exception | None = None
    with _captured_output() as output:
        try:
            _write(model, target, spec, quantize, calibration)
        except Exception as caught:  # noqa: BLE001 - converters raise anything; the user gets the reason
            error = caught
    if isinstance(error, ImportError):
        raise ExportFailed(f"The {spec.name} export needs a package that is not installed ({error}). "
                           "Install the app's pinned dependencies again: scripts/bootstrap.sh, or "
                           "`pip install -e .`.") from None
    if error is not None:
        raise ExportFailed(f"Converting the model to {spec.name} failed: {type(error).__name__}: "
                           f"{_first_line(error)}{_tail(output)}") from error
    return target


def _write(model: Any, target: Path, spec: FormatSpec, quantize: str,
           calibration: np.ndarray | None) -> None:
    if spec.name == "keras":
        save_model(model, target)
    elif spec.name == "saved_model":
        model.export(str(target), format="tf_saved_model", verbose=False)
    elif spec.name == "tflite":
        model.export(str(target), format="litert", verbose=False, **_litert_options(quantize, calibration))
    elif spec.name == "onnx":
        if not getattr(model, "_called", True):
            # Keras's ONNX exporter refuses a model that was never called ("has never called").
            model(np.zeros((1, *model.input_shape[1:]), dtype=np.float32), training=False)
        logging.getLogger("tf2onnx").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            # Keras's tf2onnx shim probes `np.object`, which numpy 2 warns about.
            warnings.simplefilter("ignore", FutureWarning)
            model.export(str(target), format="onnx", verbose=False)
    else:  # the options table and this function disagree: a programming error
        raise AssertionError(f"no writer for format {spec.name!r}")


def _litert_options(quantize: str, calibration: np.ndarray | None) -> dict[str, Any]:
    import tensorflow as tf

    options: dict[str, Any] = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    if quantize == "float16":
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
        options["target_spec"]["supported_types"] = [tf.float16]
    elif quantize == "int8":
        if calibration is None or not len(calibration):
            raise ValueError("int8 quantization needs calibration images")
        images = calibration.astype(np.float32)

        def representative_dataset():
            for image in images:
                yield [image[np.newaxis]]

        # Weights and activations in int8; input and output stay float32, so the file takes
        # the same 0-255 images and gives the same probabilities as the float exports.
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
        options["representative_dataset"] = representative_dataset
    return options


@contextlib.contextmanager
def _captured_output() -> Iterator[list[str]]:
    """Sends file descriptors 1 and 2 to a temporary file; yields a list that holds its text
    once the block ends (also when it raises)."""
    collected: list[str] = []
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = (os.dup(1), os.dup(2))
    except (OSError, ValueError, AttributeError):  # no real descriptors (a test's capture)
        yield collected
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 1)
        os.dup2(captured.fileno(), 2)
        try:
            yield collected
        finally:
            with contextlib.suppress(ValueError, OSError):
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            captured.seek(0)
            collected.append(captured.read().decode("utf-8", "backslashreplace"))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 400 else line[:400] + " ..."


def _tail(output: list[str], lines: int = 15) -> str:
    """The converter's last lines, for a failure message."""
    text = "".join(output).strip()
    if not text:
        return ""
    return "\nLast converter output:\n" + "\n".join(text.splitlines()[-lines:])

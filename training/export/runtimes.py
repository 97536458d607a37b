"""Reloading an export with the runtime it is meant for, and scoring images with it.

    saved_model  ``tf.saved_model.load`` and its ``serving_default`` signature
    tflite       the standalone LiteRT interpreter (``ai_edge_litert``), not TensorFlow's copy
    onnx         ``onnxruntime.InferenceSession``
    keras        plain Keras in a separate Python (``-I``, from an empty folder) where this
                 app's packages cannot be imported, as on a machine that never installed it

Each image is scored on its own (batch 1): that is how ``predict.py`` and most deployments
call a model, and it gives the milliseconds per image the model card reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from training.export.options import ExportFailed, FormatSpec

# Warm-up calls before timing: the first calls allocate buffers and trace functions.
WARM_UP_CALLS = 2
KERAS_CHECK_TIMEOUT_S = 1800
# Top-level names of this app's code: the Keras check makes them unimportable.
APP_PACKAGES = ("training", "models", "gui", "main")


@dataclass
class Scores:
    """What a runtime gave for each image."""

    probabilities: np.ndarray  # (N, classes) float32
    milliseconds: list[float]  # one per image, after the warm-up

    @property
    def ms_per_image(self) -> float:
        return float(np.median(self.milliseconds)) if self.milliseconds else float("nan")


def score_export(folder: Path, spec: FormatSpec, images: np.ndarray) -> Scores:
    """Loads the export in ``folder`` with its own runtime and scores ``images`` (uint8 NHWC).

    Raises:
        ExportFailed: the runtime cannot load or run the file; the message says why.
    """
    if spec.name == "keras":
        return _score_in_plain_keras(folder / spec.model_file, images)
    loaders = {"saved_model": _saved_model, "tflite": _tflite, "onnx": _onnx}
    try:
        predict_one = loaders[spec.name](folder / spec.model_file)
    except ImportError as error:
        raise ExportFailed(f"The {spec.runtime} runtime is not installed ({error}), so the export "
                           "cannot be verified. Install the app's pinned dependencies again.") from None
    except Exception as error:
        raise ExportFailed(f"{spec.runtime} cannot load the exported {spec.model_file}: "
                           f"{type(error).__name__}: {_first_line(error)}") from error
    try:
        return score_one_by_one(predict_one, images)
    except Exception as error:
        raise ExportFailed(f"{spec.runtime} loaded {spec.model_file} but cannot run it: "
                           f"{type(error).__name__}: {_first_line(error)}") from error


def score_one_by_one(predict_one: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> Scores:
    """Calls ``predict_one`` on each image as float32 (1, size, size, 3), timing each call."""
    batches = [image[np.newaxis].astype(np.float32) for image in images]
    for batch in batches[:1] * WARM_UP_CALLS:
        predict_one(batch)
    rows, times = [], []
    for batch in batches:
        start = time.perf_counter()
        row = predict_one(batch)
        times.append((time.perf_counter() - start) * 1000.0)
        rows.append(np.asarray(row, dtype=np.float32).reshape(-1))
    return Scores(np.stack(rows), times)


# -- the in-process runtimes ------------------------------------------------------------------
def _saved_model(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1]  # keyword-only, named after the input

    def predict_one(batch: np.ndarray) -> np.ndarray:
        (output,) = signature(**{input_name: tf.constant(batch)}).values()
        return output.numpy()

    return predict_one


def _tflite(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (source,) = interpreter.get_input_details()
    (target,) = interpreter.get_output_details()

    def predict_one(batch: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"]).copy()

    return predict_one


def _onnx(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (source,) = session.get_inputs()

    def predict_one(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {source.name: batch})[0]

    return predict_one


# -- plain Keras, in a separate process -------------------------------------------------------
def keras_check_script() -> str:
    """The script the Keras check runs (``templates/keras_check.py``)."""
    return resources.files("training.export.templates").joinpath("keras_check.py").read_text("utf-8")


def _score_in_plain_keras(model_file: Path, images: np.ndarray) -> Scores:
    """Loads ``model_file`` with plain Keras in a separate Python and scores ``images`` there.

    ``python -I`` ignores the environment's PYTHONPATH and the current folder, and the script
    blocks this app's top-level packages (an editable install would put them on any path).
    """
    with tempfile.TemporaryDirectory(prefix="finetune-studio-keras-check-") as scratch:
        scratch_dir = Path(scratch)
        np.save(scratch_dir / "images.npy", images)
        command = [sys.executable, "-I", "-c", keras_check_script(), str(model_file.resolve()),
                   "images.npy", "scores.npz", ",".join(APP_PACKAGES), str(WARM_UP_CALLS)]
        try:
            result = subprocess.run(command, cwd=scratch_dir, capture_output=True, text=True,
                                    errors="backslashreplace", timeout=KERAS_CHECK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ExportFailed(f"Plain Keras did not finish scoring {model_file.name} within "
                               f"{KERAS_CHECK_TIMEOUT_S} s.") from None
        status = _last_json_line(result.stdout)
        if result.returncode != 0 or not status.get("ok"):
            reason = status.get("error") or _last_lines(result.stderr) or f"exit code {result.returncode}"
            hint = (" The model holds a layer that is not one of Keras's own (saved by an earlier "
                    "version of this app?), so it needs this app to load. Train it again with this "
                    "version, or export another format." if "Could not locate class" in reason else "")
            raise ExportFailed(f"Plain Keras (no code of this app) cannot use the exported "
                               f"{model_file.name}: {reason}.{hint}")
        with np.load(scratch_dir / "scores.npz") as scores:
            return Scores(scores["probabilities"].astype(np.float32),
                          [float(ms) for ms in scores["milliseconds"]])


def _last_json_line(text: str) -> dict:
    for line in reversed(text.splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def _last_lines(text: str, lines: int = 5) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 400 else line[:400] + " ..."

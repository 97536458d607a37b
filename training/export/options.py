"""What can be exported, and how close each export must stay to the Keras model. No Keras.

The CLI builds its choices from these tables and the GUI will too, so they are spelled once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

QUANTIZATIONS = ("none", "float16", "int8")
EXPORT_DIR = "export"


@dataclass(frozen=True)
class FormatSpec:
    """One export format.

    Attributes:
        name: the ``--format`` value.
        model_file: the model's file (or folder) inside the export folder.
        runtime: what loads it on the target, as a reader would say it.
        requirements: the pip packages ``predict.py`` needs on the target.
        quantizations: the ``--quantize`` values this format takes.
    """

    name: str
    model_file: str
    runtime: str
    requirements: tuple[str, ...]
    quantizations: tuple[str, ...] = ("none",)


FORMATS: dict[str, FormatSpec] = {spec.name: spec for spec in (
    # models.saving.save_model leaves out the keys Keras 3.13 and 3.14 would refuse
    # (docs/facts.md#keras-file-versions).
    FormatSpec("keras", "model.keras", "Keras 3 (any backend; keras >= 3.13.2)",
               ("keras>=3.13.2", "tensorflow", "numpy", "pillow")),
    FormatSpec("saved_model", "saved_model", "TensorFlow (tf.saved_model.load, TF Serving)",
               ("tensorflow", "numpy", "pillow")),
    FormatSpec("tflite", "model.tflite", "LiteRT / TensorFlow Lite interpreter (ai-edge-litert)",
               ("ai-edge-litert", "numpy", "pillow"), QUANTIZATIONS),
    FormatSpec("onnx", "model.onnx", "ONNX Runtime",
               ("onnxruntime", "numpy", "pillow")),
)}


@dataclass(frozen=True)
class Tolerance:
    """How far a float export's probabilities may be from the Keras model's.

    A float export fails when any class probability of any validation image differs by more
    than ``max_probability_difference``, or when it picks another top class on an image whose
    top two Keras probabilities are further apart than that (closer ones are ties at this
    precision: counted, not failed). ``None``: nothing fails, the figures are reported
    (int8, where the accuracy drop is the figure that matters).
    """

    max_probability_difference: float | None


TOLERANCES = {"none": Tolerance(1e-4), "float16": Tolerance(1e-2), "int8": Tolerance(None)}


class ExportError(ValueError):
    """The export cannot start: a bad argument or run folder. The message says what to do."""


class ExportFailed(RuntimeError):
    """The export was written but failed its verification, or could not be written."""


def check_choice(fmt: str, quantize: str) -> FormatSpec:
    """The spec of ``fmt``, once ``quantize`` is known to suit it.

    Raises:
        ExportError: an unknown format or quantization, or one the format does not take.
    """
    spec = FORMATS.get(fmt)
    if spec is None:
        raise ExportError(f"`format` must be one of {', '.join(FORMATS)}. Received: format={fmt!r}")
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"`quantize` must be one of {', '.join(QUANTIZATIONS)}. "
                          f"Received: quantize={quantize!r}")
    if quantize not in spec.quantizations:
        takes = [name for name, other in FORMATS.items() if quantize in other.quantizations]
        raise ExportError(f"`quantize` {quantize!r} is available for format {', '.join(takes)} only; "
                          f"{fmt} exports are float32. Received: format={fmt!r}, quantize={quantize!r}")
    return spec


def folder_name(fmt: str, quantize: str) -> str:
    """``tflite``, ``tflite-int8``: the default folder of an export under ``RUN_DIR/export/``."""
    return fmt if quantize == "none" else f"{fmt}-{quantize}"


def default_out(run_dir: str | Path, fmt: str, quantize: str) -> Path:
    return Path(run_dir) / EXPORT_DIR / folder_name(fmt, quantize)

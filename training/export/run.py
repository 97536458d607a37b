"""One export: open the run, write the format, reload it with its runtime, compare, publish."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from training.export.card import build_card, card_markdown
from training.export.formats import write_model
from training.export.options import (
    TOLERANCES,
    ExportError,
    ExportFailed,
    FormatSpec,
    check_choice,
    default_out,
)
from training.export.runtimes import score_one_by_one
from training.export.source import RunSource, load_calibration_images, load_validation_images, open_run
from training.export.verify import compare
from training.publish import Publication, check_target, publish, staging_folder
from training.rundir.labels import write_labels

CARD_FILE = "model_card.json"
EXPORT = Publication(what="export", marker=CARD_FILE, error=ExportError)
VERIFICATION_FILE = "verification.json"
CARD_MARKDOWN = "model_card.md"
PREDICT_SCRIPT = "predict.py"
_REFERENCE_BATCH = 32  # as `python main.py predict` batches
_REFERENCE_TIMED_IMAGES = 50

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportResult:
    """The outcome of one export.

    Attributes:
        folder: the export folder (it exists only when ``passed``).
        passed: written and verified; False: nothing was left at ``folder``.
        verification: the figures (``training.export.verify.compare``), with ``ms_per_image``,
            ``keras_ms_per_image`` and ``file_bytes``; empty when the export could not be
            written or loaded.
        message: why it failed ("" when it passed).
    """

    folder: str
    format: str
    quantize: str
    passed: bool
    verification: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def export_run(run_dir: str | Path, fmt: str, *, quantize: str = "none", out: str | Path | None = None,
               data_dir: str | Path | None = None, on_progress: Progress | None = None) -> ExportResult:
    """Exports a run's best model as ``fmt`` and verifies it with the format's own runtime.

    Args:
        run_dir: a run folder written by ``train``.
        fmt: one of ``training.export.options.FORMATS``.
        quantize: ``none``, or ``float16`` / ``int8`` for tflite.
        out: the export folder (default ``RUN_DIR/export/<format>[-<quantize>]``). It must be
            new, empty or an earlier export, which a passing export replaces.
        data_dir: where the run's images are now, if they moved since training.
        on_progress: called with a short sentence as each step begins.

    Returns:
        The result; a failed conversion or verification is ``passed=False`` with a message.

    Raises:
        ExportError: unusable input (format, folder, run, images); nothing was written.
    """
    progress = on_progress or (lambda _message: None)
    spec = check_choice(fmt, quantize)
    target = _absolute(Path(out) if out is not None else default_out(run_dir, fmt, quantize))
    check_target(target, EXPORT)
    progress(f"Opening {run_dir}")
    source = open_run(run_dir, data_dir=data_dir)
    images, labels, undecodable = load_validation_images(source)
    progress(f"Scoring {len(images)} validation images with the Keras model")
    reference = _predict_in_batches(source.model, images)
    keras_timing = score_one_by_one(lambda batch: source.model.predict_on_batch(batch),
                                    images[:_REFERENCE_TIMED_IMAGES])
    calibration = None
    if quantize == "int8":
        progress("Decoding training images for int8 calibration")
        calibration = load_calibration_images(source)
    result = ExportResult(str(target), fmt, quantize, passed=False)
    with staging_folder(target, EXPORT) as staging:
        try:
            progress(f"Writing {spec.model_file}")
            model_path = write_model(source.model, staging, spec, quantize, calibration)
            progress(f"Reloading {spec.model_file} with {spec.runtime} and scoring the validation images")
            from training.export.runtimes import score_export

            scores = score_export(staging, spec, images)
        except ExportFailed as error:
            return _failed(result, str(error))
        figures = compare(reference, scores.probabilities, labels, TOLERANCES[quantize])
        figures.update(ms_per_image=scores.ms_per_image, keras_ms_per_image=keras_timing.ms_per_image,
                       file_bytes=_size(model_path), undecodable_images=len(undecodable))
        if not figures["passed"]:
            return _failed(result, f"The {_name(spec, quantize)} export does not match the Keras model: "
                                   f"{figures['problem']}. Nothing was kept.", figures)
        progress("Writing the model card and predict.py")
        _write_companions(staging, source, spec, quantize, figures,
                          0 if calibration is None else len(calibration))
        publish(staging, target, EXPORT)
    return ExportResult(str(target), fmt, quantize, passed=True, verification=figures)


def _predict_in_batches(model: Any, images: np.ndarray) -> np.ndarray:
    rows = [np.asarray(model.predict_on_batch(images[start:start + _REFERENCE_BATCH].astype(np.float32)))
            for start in range(0, len(images), _REFERENCE_BATCH)]
    return np.concatenate(rows).astype(np.float32)


def _write_companions(folder: Path, source: RunSource, spec: FormatSpec, quantize: str,
                      figures: dict[str, Any], calibration_images: int) -> None:
    from training.export.script import predict_script

    write_labels(folder, source.classes)
    (folder / PREDICT_SCRIPT).write_text(predict_script(spec.name, source.image_size), encoding="utf-8")
    verification = {"format": spec.name, "quantization": quantize, "runtime": spec.runtime,
                    "validation_images": "the run's own validation images (same split and seed)",
                    **figures}
    _write_json(folder / VERIFICATION_FILE, verification)
    card = build_card(spec=spec, quantize=quantize, source=source, verification=verification,
                      calibration_images=calibration_images, model_file_bytes=figures["file_bytes"])
    _write_json(folder / CARD_FILE, card)
    (folder / CARD_MARKDOWN).write_text(card_markdown(card), encoding="utf-8")


def _failed(result: ExportResult, message: str, figures: dict[str, Any] | None = None) -> ExportResult:
    return ExportResult(result.folder, result.format, result.quantize, passed=False,
                        verification=figures or {}, message=message)


def _name(spec: FormatSpec, quantize: str) -> str:
    return spec.name if quantize == "none" else f"{spec.name} {quantize}"


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return path.stat().st_size


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n", encoding="utf-8")


def _absolute(path: Path) -> Path:
    try:
        return path.expanduser().absolute()
    except (OSError, RuntimeError) as error:
        raise ExportError(f"Cannot use the export folder {path}: {error}") from None

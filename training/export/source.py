"""What an export starts from: a run's model, classes, config, metrics and its own images.

The model is opened by the project's loader (``training.inference.predict.load_run``: a
checked archive, safe mode), exactly as ``predict`` opens it. Verification scores the run's
validation images and int8 calibration uses its training images, so both are found again
the way the run found them (``training.inference.run_images``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.config import Config
from training.data.images import ImageLoadError, load_image
from training.export.options import ExportError
from training.inference.run_images import RunImagesError, find_run_images
from training.rundir import RunDirError, read_run_config, read_summary
from training.rundir.reading import closed_run_problem, read_data_report

# TensorFlow's post-training quantization guide asks for ~100-500 representative samples.
CALIBRATION_IMAGES = 200


@dataclass
class RunSource:
    """A trained run, opened for export.

    Attributes:
        model: the Keras model of ``best.keras`` (0-255 RGB in, probabilities out).
        classes: class names in the model's output order.
        image_size: the model's input height and width.
        config: the run's config, as it trained (``data.dir`` as given, or ``--data``).
        summary: ``summary.json`` (None for a run that never wrote one).
        validation_files, validation_labels: the run's validation images and classes.
        train_files: the run's training images (int8 calibration draws from them).
    """

    run_dir: Path
    model: Any
    classes: list[str]
    image_size: int
    config: Config
    summary: dict[str, Any] | None
    validation_files: list[str] = field(default_factory=list)
    validation_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    train_files: list[str] = field(default_factory=list)


def open_run(run_dir: str | Path, *, data_dir: str | Path | None = None) -> RunSource:
    """Opens a finished (or stopped) run for export.

    Args:
        data_dir: the run's data folder when it has moved since training (default: the
            config's ``data.dir``).

    Raises:
        ExportError: not a run folder, a damaged one, one still being written, or its
            images cannot be found as they were.
    """
    from training.inference.predict import PredictError, load_run

    run_dir = Path(run_dir)
    problem = closed_run_problem(run_dir, "its best model may still change. Export it once the run "
                                          "has finished.")
    if problem:
        raise ExportError(problem)
    try:
        model, classes, image_size = load_run(run_dir)
        config = read_run_config(run_dir, consequence="The run cannot be exported.")
        summary = read_summary(run_dir)
        report = read_data_report(run_dir)
    except (PredictError, RunDirError) as error:
        raise ExportError(str(error)) from None
    if data_dir is not None:
        config = config.with_overrides({"data.dir": str(Path(data_dir).expanduser().absolute())})
    source = RunSource(run_dir, model, classes, image_size, config, summary)
    _find_images(source, report)
    return source


def _find_images(source: RunSource, report: dict[str, Any] | None) -> None:
    moved = ("If the images moved, pass their folder with --data; the export is verified on the "
             "run's own validation images.")
    try:
        found = find_run_images(source.config.data, source.classes, report)
    except RunImagesError as error:
        raise ExportError(f"{error} {moved}") from None
    source.validation_files, source.validation_labels = found.validation_files, found.validation_labels
    source.train_files = found.train_files


def load_validation_images(source: RunSource) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The validation images as uint8 (N, size, size, 3), decoded as training decoded them.

    Returns:
        images, their class indices, and the files that failed to decode (the run dropped
        them too).

    Raises:
        ExportError: not one validation image could be decoded.
    """
    images, kept, failed = [], [], []
    for path, label in zip(source.validation_files, source.validation_labels):
        try:
            images.append(load_image(path, source.image_size))
            kept.append(int(label))
        except ImageLoadError:
            failed.append(path)
    if not images:
        raise ExportError(f"None of the run's {len(source.validation_files)} validation images can be "
                          "decoded, so the export cannot be verified.")
    return np.stack(images), np.asarray(kept, dtype=np.int64), failed


def load_calibration_images(source: RunSource, count: int = CALIBRATION_IMAGES,
                            seed: int = 0) -> np.ndarray:
    """Up to ``count`` training images, a seeded sample, for int8 calibration.

    Raises:
        ExportError: not one training image could be decoded.
    """
    order = np.random.default_rng(seed).permutation(len(source.train_files))
    images = []
    for index in order:
        if len(images) == count:
            break
        try:
            images.append(load_image(source.train_files[index], source.image_size))
        except ImageLoadError:
            continue
    if not images:
        raise ExportError("None of the run's training images can be decoded, so int8 cannot be "
                          "calibrated.")
    return np.stack(images)

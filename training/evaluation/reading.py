"""Reading an evaluation folder back: evaluation.json and predictions.csv, checked.

The engine writes the folder (``training.evaluation.writing``); the window's Results tab
reads it here. Keras-free and Qt-free: importing this module loads neither TensorFlow nor
a GUI toolkit. A damaged file is an ``EvaluationFileError`` whose message says what is
wrong and what to do; a missing evaluation.json is its subclass ``EvaluationMissing``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.evaluation.evaluate import SPLITS, default_folder
from training.evaluation.writing import EVALUATION_FILE, PREDICTIONS_FILE
from training.files import FileReadError, display_path, file_kind, read_json, read_text

PREDICTION_COLUMNS = ("path", "true", "predicted", "confidence", "loss")
MAX_PREDICTIONS_BYTES = 256 * 1024**2
AGAIN = "Evaluate the run again to write it anew."


class EvaluationFileError(ValueError):
    """An evaluation folder's file is missing or damaged; the message says what to do."""


class EvaluationMissing(EvaluationFileError):
    """The run has no evaluation of this split yet."""


@dataclass(frozen=True)
class Prediction:
    """One row of predictions.csv."""

    path: str
    true: str
    predicted: str
    confidence: float
    loss: float


@dataclass
class Evaluation:
    """One evaluation folder as read: the report, and the predictions when readable."""

    folder: Path
    report: dict[str, Any]
    classes: list[str]
    matrix: list[list[int]]
    predictions: list[Prediction] = field(default_factory=list)
    predictions_problem: str = ""

    def cell(self, true: int, predicted: int) -> list[Prediction]:
        """The images whose true class is ``classes[true]`` and answer ``classes[predicted]``."""
        wanted = (self.classes[true], self.classes[predicted])
        return [row for row in self.predictions if (row.true, row.predicted) == wanted]


def evaluation_folders(run_dir: str | Path) -> dict[str, Path]:
    """The evaluation folders a run has, by split (validation first)."""
    folders = {split: default_folder(Path(run_dir), split) for split in SPLITS}
    return {split: folder for split, folder in folders.items() if file_kind(folder) == "folder"}


def read_evaluation(folder: str | Path) -> Evaluation:
    """Reads ``evaluation.json`` and ``predictions.csv`` of one evaluation folder.

    A damaged predictions.csv leaves the figures readable: ``predictions_problem`` says why
    the images cannot be listed.

    Raises:
        EvaluationMissing: there is no evaluation.json.
        EvaluationFileError: evaluation.json cannot be read or does not hold an evaluation.
    """
    folder = Path(folder)
    path = folder / EVALUATION_FILE
    if file_kind(path) == "missing":
        raise EvaluationMissing(f"{display_path(folder)} holds no {EVALUATION_FILE}.")
    try:
        report = read_json(path, what="evaluation")
    except FileReadError as error:
        raise EvaluationFileError(f"{error} {AGAIN}") from None
    try:
        classes, matrix = _checked_report(report)
    except ValueError as error:
        raise EvaluationFileError(f"{display_path(path)} is damaged: {error}. {AGAIN}") from None
    evaluation = Evaluation(folder, report, classes, matrix)
    try:
        evaluation.predictions = read_predictions(folder / PREDICTIONS_FILE, classes, report.get("data"))
    except EvaluationFileError as error:
        evaluation.predictions_problem = str(error)
    return evaluation


def _checked_report(report: Any) -> tuple[list[str], list[list[int]]]:
    if not isinstance(report, dict):
        raise ValueError("it holds no JSON object")
    classes = report.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ValueError("`classes` is not a list of class names")
    matrix = report.get("confusion_matrix")
    size = len(classes)
    if not isinstance(matrix, list) or len(matrix) != size or not all(
            isinstance(row, list) and len(row) == size
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in row)
            for row in matrix):
        raise ValueError(f"`confusion_matrix` is not {size} rows of {size} counts")
    for key in ("accuracy", "loss"):
        if not is_number(report.get(key)):
            raise ValueError(f"`{key}` is not a number")
    return list(classes), [list(row) for row in matrix]


def read_predictions(path: Path, classes: list[str], data_dir: Any = None) -> list[Prediction]:
    """The rows of predictions.csv; relative paths are taken from the evaluated folder.

    Raises:
        EvaluationFileError: missing, unreadable, or a row that is not an image's prediction.
    """
    if file_kind(path) == "missing":
        raise EvaluationFileError(f"{display_path(path)} is missing, so the images cannot be listed. "
                                  "Evaluate the run again to write it.")
    try:
        text = read_text(path, max_bytes=MAX_PREDICTIONS_BYTES, what="predictions file")
    except FileReadError as error:
        raise EvaluationFileError(str(error)) from None
    reader = csv.DictReader(text.splitlines())
    missing = [name for name in PREDICTION_COLUMNS if name not in (reader.fieldnames or [])]
    if missing:
        raise EvaluationFileError(f"{display_path(path)} is damaged: it has no column {', '.join(missing)}. "
                                  f"{AGAIN}")
    known = set(classes)
    base = Path(data_dir) if isinstance(data_dir, str) and data_dir else None
    rows = []
    try:
        for row in reader:
            if row["true"] not in known or row["predicted"] not in known:
                raise ValueError(f"class {row['true']!r} or {row['predicted']!r} is not one of the "
                                 "run's classes")
            image = Path(row["path"])
            if base is not None and not image.is_absolute():
                image = base / image
            rows.append(Prediction(str(image), row["true"], row["predicted"],
                                   float(row["confidence"]), float(row["loss"])))
    except (ValueError, TypeError, csv.Error) as error:
        raise EvaluationFileError(f"{display_path(path)} is damaged at line {reader.line_num}: {error}. "
                                  f"{AGAIN}") from None
    return rows


def is_number(value: Any) -> bool:
    """A finite JSON number (not a bool, not NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

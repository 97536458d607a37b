"""A finished run's own images, found again as the run found them.

Export verification, int8 calibration and evaluation score a run's training, validation or
test images after the run has ended, so they are found again the way the run found them:
the config's data folder is scanned and split with the run's seed
(``training.data.pipeline.plan_data``), and the counts per class must equal the counts in
the run's data report - otherwise the folder changed since training and the figures would
be measured on other images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.data.errors import DataError
from training.data.pipeline import plan_data, test_images
from training.data.scan import scan_folder
from training.files import display_path


class RunImagesError(ValueError):
    """The run's images cannot be found as they were; the message says what changed."""


@dataclass
class RunImages:
    """File paths (str) and class indices (into the run's classes) of each part of a run's data."""
    train_files: list[str] = field(default_factory=list)
    validation_files: list[str] = field(default_factory=list)
    validation_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    test_files: list[str] = field(default_factory=list)
    test_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def find_run_images(data: Any, classes: list[str], report: dict[str, Any] | None) -> RunImages:
    """The images of a run with data config ``data`` whose model has ``classes``.

    Args:
        report: the run's ``data_report.json`` (None for a run that never wrote one: the
            counts are then not checked).

    Raises:
        RunImagesError: the folder cannot be scanned, its classes are not the model's, or its
            images per class are not the ones the run used.
    """
    try:
        scan = scan_folder(data.dir)
        plan, validation_scan = plan_data(scan, data, seed=data.seed)
        tests = test_images(scan, plan, data)
    except DataError as error:
        raise RunImagesError(f"The run's images cannot be read again: {error}") from None
    if list(scan.classes) != list(classes):
        raise RunImagesError(f"The classes in {display_path(scan.root)} ({', '.join(scan.classes)}) are "
                             f"not the model's ({', '.join(classes)}).")
    if report is not None:
        for key, counts in (("train_counts", plan.train_counts), ("validation_counts", plan.validation_counts),
                            ("test_counts", plan.test_counts)):
            recorded = report.get(key)
            if recorded is not None and dict(recorded) != dict(counts):
                what = key.split("_")[0]
                raise RunImagesError(
                    f"The images in {display_path(scan.root)} are not the ones the run used: {what} "
                    f"images per class are now {dict(counts)}, at training {dict(recorded)}.")
    files = np.asarray(scan.files, dtype=object)
    labels = np.asarray(scan.labels, dtype=np.int64)
    found = RunImages(train_files=[str(f) for f in files[plan.train_index]])
    if validation_scan is not None:
        found.validation_files = [str(f) for f in validation_scan.files]
        found.validation_labels = np.asarray(validation_scan.labels, dtype=np.int64)
    else:
        found.validation_files = [str(f) for f in files[plan.validation_index]]
        found.validation_labels = labels[plan.validation_index]
    found.test_files, found.test_labels = list(tests[0]), np.asarray(tests[1], dtype=np.int64)
    return found

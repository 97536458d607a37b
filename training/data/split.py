"""Splitting the images of a scan into training and validation, stratified by class.

``plan_split`` is the one split planner: the engine's ``prepare_data`` takes its indices
and the window shows its counts, so what the window plans is what a run trains on.
scikit-learn is imported when a split is first made, not with this module: it takes about
0.8 s, and the window, which imports this module, plans its split off the GUI thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True, eq=False)
class SplitPlan:
    """Which images of a scan train and which validate, and how many of each class.

    ``train_index`` and ``validation_index`` index the scan's files; ``validation_index``
    is empty when the validation images are a folder of their own (``data.validation_dir``),
    whose counts are in ``validation_counts`` all the same.
    """
    classes: tuple[str, ...]
    train_index: np.ndarray       # in the seeded order the engine uses
    validation_index: np.ndarray
    train_counts: dict[str, int]
    validation_counts: dict[str, int]
    warnings: tuple[str, ...] = ()

    @property
    def train_count(self) -> int:
        return sum(self.train_counts.values())

    @property
    def validation_count(self) -> int:
        return sum(self.validation_counts.values())

    def steps_per_epoch(self, batch_size: int) -> int:
        """Training batches an epoch, before any file fails to decode."""
        return math.ceil(self.train_count / batch_size)


def plan_split(classes: Sequence[str], labels: Sequence[int], validation_split: float, seed: int, *,
               validation_labels: Sequence[int] | None = None) -> SplitPlan:
    """The training and validation images of a scan, as a run with these settings uses them.

    Args:
        classes: the class names; ``labels`` index them.
        labels: the class of each image of the scan, in the scan's order.
        validation_split: the share of each class held back (``data.validation_split``).
        seed: the split's seed (``data.seed``).
        validation_labels: the classes of the images of a validation folder
            (``data.validation_dir``): then every image of the scan trains.

    Returns:
        A ``SplitPlan``; its counts are the engine's, image for image.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if validation_labels is not None:
        train = np.random.default_rng(seed).permutation(len(labels))
        validation = np.zeros(0, dtype=np.int64)
        held = np.asarray(validation_labels, dtype=np.int64)
        warnings: list[str] = []
    else:
        train, validation = split_stratified(labels, validation_split, seed)
        held = labels[validation]
        warnings = split_warnings(list(classes), labels, held)
    return SplitPlan(classes=tuple(classes), train_index=train, validation_index=validation,
                     train_counts=counts_by_class(list(classes), labels[train]),
                     validation_counts=counts_by_class(list(classes), held), warnings=tuple(warnings))


def split_stratified(labels, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation images, in the same proportions per class.

    Classes with a single image keep it for training. At least one validation image
    per class is asked for (when the split is > 0), and at least one training image
    per class is kept, so small data sets do not crash the split.

    Returns:
        (train_indices, validation_indices), each an int64 array in a seeded random order.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels, dtype=np.int64)
    indices = np.arange(len(labels), dtype=np.int64)
    if validation_split <= 0 or len(labels) == 0:
        return np.random.default_rng(seed).permutation(indices), np.zeros(0, dtype=np.int64)
    counts = np.bincount(labels)
    splittable = counts[labels] >= 2
    singles, pool = indices[~splittable], indices[splittable]
    pool_classes = int(np.count_nonzero(counts >= 2))
    if pool_classes == 0:
        return np.random.default_rng(seed).permutation(indices), np.zeros(0, dtype=np.int64)
    # sklearn needs room for every class on both sides; a count keeps it from refusing.
    n_validation = math.ceil(validation_split * len(pool))
    n_validation = min(max(n_validation, pool_classes), len(pool) - pool_classes)
    train, validation = train_test_split(pool, test_size=n_validation, random_state=seed,
                                         shuffle=True, stratify=labels[pool])
    train = np.concatenate([train, singles])
    return np.random.default_rng(seed).permutation(train), np.asarray(validation, dtype=np.int64)


def split_warnings(classes: list[str], labels: np.ndarray, validation_labels: np.ndarray) -> list[str]:
    warnings = []
    counts = np.bincount(labels, minlength=len(classes))
    in_validation = np.bincount(validation_labels, minlength=len(classes))
    for name, total, held in zip(classes, counts, in_validation):
        if total == 1:
            warnings.append(f"Class '{name}' has a single image: it is used for training only, "
                            "so its validation accuracy is not measured. Add more images.")
        elif held == 0:
            warnings.append(f"Class '{name}' has no validation image ({total} images in all); "
                            "its validation accuracy is not measured. Add more images.")
    return warnings


def counts_by_class(classes: list[str], labels: np.ndarray) -> dict[str, int]:
    tally = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    return {name: int(n) for name, n in zip(classes, tally)}

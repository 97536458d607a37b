"""Splitting the images of a scan into training and validation, stratified by class.

The engine and the window's planned counts use the same functions, so what the window
plans is what a run trains on.
"""

from __future__ import annotations

import math

import numpy as np


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



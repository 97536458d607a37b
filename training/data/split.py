"""Splitting the images of a scan into training, validation and test, stratified by class.

``plan_split`` is the one split planner: the engine's ``prepare_data`` takes its indices
and the window shows its counts, so what the window plans is what a run trains on.
scikit-learn is imported when a split is first made, not with this module: it takes about
0.8 s, and the window, which imports this module, plans its split off the GUI thread.

A test set (``data.test_split``) is carved out first and the validation split is made on
what remains, so that with no test set the split is, index for index, the one made before
test sets existed: a run from then resumes, and its export finds its images again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


def _no_index() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class SplitPlan:
    """Which images of a scan train, validate and test, and how many of each class.

    ``train_index``, ``validation_index`` and ``test_index`` index the scan's files.
    ``validation_index`` is empty when the validation images are a folder of their own
    (``data.validation_dir``), ``test_index`` when there is no test set or it is a folder of
    its own (``data.test_dir``); the counts of such a folder are in ``validation_counts``
    or ``test_counts`` all the same. Test images are never trained on nor used to choose
    the best epoch.
    """
    classes: tuple[str, ...]
    train_index: np.ndarray       # in the seeded order the engine uses
    validation_index: np.ndarray
    train_counts: dict[str, int]
    validation_counts: dict[str, int]
    warnings: tuple[str, ...] = ()
    test_index: np.ndarray = field(default_factory=_no_index)  # in the scan's order
    test_counts: dict[str, int] = field(default_factory=dict)

    @property
    def train_count(self) -> int:
        return sum(self.train_counts.values())

    @property
    def validation_count(self) -> int:
        return sum(self.validation_counts.values())

    @property
    def test_count(self) -> int:
        return sum(self.test_counts.values())

    def steps_per_epoch(self, batch_size: int) -> int:
        """Training batches an epoch, before any file fails to decode."""
        return math.ceil(self.train_count / batch_size)


def plan_split(classes: Sequence[str], labels: Sequence[int], validation_split: float, seed: int, *,
               validation_labels: Sequence[int] | None = None, test_split: float = 0.0,
               test_labels: Sequence[int] | None = None) -> SplitPlan:
    """The training, validation and test images of a scan, as a run with these settings uses them.

    Args:
        classes: the class names; ``labels`` index them.
        labels: the class of each image of the scan, in the scan's order.
        validation_split: the share of each class held back for validation
            (``data.validation_split``), a share of all its images also when a test set is
            carved out first.
        seed: the split's seed (``data.seed``).
        validation_labels: the classes of the images of a validation folder
            (``data.validation_dir``): then no image of the scan validates.
        test_split: the share of each class held out as a test set (``data.test_split``),
            taken before the validation split.
        test_labels: the classes of the images of a test folder (``data.test_dir``): then
            no image of the scan is a test image, whatever ``test_split`` says.

    Returns:
        A ``SplitPlan``; its counts are the engine's, image for image.
    """
    names = list(classes)
    labels = np.asarray(labels, dtype=np.int64)
    rest, test, warnings = np.arange(len(labels), dtype=np.int64), _no_index(), []
    if test_labels is None and test_split > 0:
        # A class keeps an image for training, and one for validation when it is split.
        keep = 1 if validation_labels is not None else 2
        rest, test = split_stratified(labels, test_split, seed, keep=keep)
        rest, test = np.sort(rest), np.sort(test)
        warnings += test_warnings(names, labels, labels[test], keep)
    if validation_labels is not None:
        train = rest[np.random.default_rng(seed).permutation(len(rest))]
        validation = _no_index()
        held = np.asarray(validation_labels, dtype=np.int64)
    else:
        # Both shares are of all the images: of what the test set leaves, validation takes more.
        share = validation_split if len(test) == 0 else validation_split * len(labels) / len(rest)
        train, validation = (rest[part] for part in split_stratified(labels[rest], share, seed))
        held = labels[validation]
        warnings = split_warnings(names, labels[rest], held) + warnings
    tested = labels[test] if test_labels is None else np.asarray(test_labels, dtype=np.int64)
    has_test = test_labels is not None or test_split > 0
    return SplitPlan(classes=tuple(names), train_index=train, validation_index=validation,
                     train_counts=counts_by_class(names, labels[train]),
                     validation_counts=counts_by_class(names, held), warnings=tuple(warnings),
                     test_index=test, test_counts=counts_by_class(names, tested) if has_test else {})


def split_stratified(labels, share: float, seed: int, *, keep: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the kept and the held-out images, in the same proportions per class.

    Classes with ``keep`` images or fewer keep them all. At least one held-out image per
    class is asked for (when the share is > 0), and at least ``keep`` images in all per
    class are kept, so small data sets do not crash the split.

    Returns:
        (kept_indices, held_out_indices), each an int64 array in a seeded random order.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels, dtype=np.int64)
    indices = np.arange(len(labels), dtype=np.int64)
    if share <= 0 or len(labels) == 0:
        return np.random.default_rng(seed).permutation(indices), _no_index()
    counts = np.bincount(labels)
    splittable = counts[labels] > keep
    singles, pool = indices[~splittable], indices[splittable]
    pool_classes = int(np.count_nonzero(counts > keep))
    if pool_classes == 0:
        return np.random.default_rng(seed).permutation(indices), _no_index()
    # sklearn needs room for every class on both sides; a count keeps it from refusing.
    n_held = math.ceil(share * len(pool))
    n_held = min(max(n_held, pool_classes), len(pool) - keep * pool_classes)
    kept, held = train_test_split(pool, test_size=n_held, random_state=seed,
                                  shuffle=True, stratify=labels[pool])
    kept = np.concatenate([kept, singles])
    return np.random.default_rng(seed).permutation(kept), np.asarray(held, dtype=np.int64)


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


def test_warnings(classes: list[str], labels: np.ndarray, test_labels: np.ndarray, keep: int) -> list[str]:
    """The classes a test split leaves without a test image; a class of a single image has
    its own warning already."""
    counts = np.bincount(labels, minlength=len(classes))
    in_test = np.bincount(test_labels, minlength=len(classes))
    needs = "training and validation keep one each" if keep > 1 else "training keeps one"
    warnings = []
    for name, total, held in zip(classes, counts, in_test):
        if held or total <= 1:
            continue
        why = (f"a class needs at least {keep + 1} to give one, so that {needs}" if total <= keep
               else "its share of the test set rounds to none")
        warnings.append(f"Class '{name}' has no test image ({total} images in all; {why}). "
                        "Its test accuracy is not measured. Add more images.")
    return warnings


def counts_by_class(classes: list[str], labels: np.ndarray) -> dict[str, int]:
    tally = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    return {name: int(n) for name, n in zip(classes, tally)}

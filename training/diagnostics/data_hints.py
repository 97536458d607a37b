"""The words and the fixes of the data hints: class imbalance, a validation set too small,
copies of training images in validation. ``Diagnostics.check_data`` asks for them once,
before training; docs/hints.md describes each."""

from __future__ import annotations

import math

from training.config import Config
from training.data import duplicates
from training.diagnostics.thresholds import (
    IMBALANCE_RATIO,
    MAX_LISTED_DUPLICATES,
    VAL_MIN_IMAGES,
    VAL_MIN_PER_CLASS,
)
from training.diagnostics.wording import config_or_default, percent
from training.events import Hint


def class_imbalance(train_counts: dict[str, int], balanced: bool) -> Hint | None:
    counts = {k: int(v) for k, v in train_counts.items() if int(v) > 0}
    if len(counts) < 2:
        return None
    largest, smallest = max(counts, key=counts.get), min(counts, key=counts.get)
    ratio = counts[largest] / counts[smallest]
    if ratio < IMBALANCE_RATIO:
        return None
    evidence = {"train_counts": counts, "ratio": round(ratio, 2), "largest": largest,
                "smallest": smallest}
    share = counts[largest] / sum(counts.values())
    base = (f"'{largest}' has {counts[largest]} training images, '{smallest}' only "
            f"{counts[smallest]} ({ratio:.1f} times fewer). Predicting '{largest}' for "
            f"everything already scores {percent(share)} accuracy, so accuracy hides how the "
            "small classes do: look at per-class results.")
    if balanced:
        return Hint(id="class_imbalance", severity="info", title="Classes are imbalanced",
                    message=base + " Class weights are already balanced, which compensates in "
                                   "the loss; more images of the small classes would help most.",
                    evidence=evidence)
    return Hint(id="class_imbalance", severity="warning", title="Classes are imbalanced",
                message=base + " Balanced class weights make each class count equally in the "
                               "loss; more images of the small classes help most.",
                evidence=evidence, fixes=[{"data.class_weight": "balanced"}])


def val_too_small(train_counts: dict[str, int], validation_counts: dict[str, int],
                  config: Config | None) -> Hint | None:
    total = sum(int(v) for v in validation_counts.values())
    if not validation_counts:
        return None
    smallest = min(validation_counts, key=validation_counts.get)
    per_class = int(validation_counts[smallest])
    if total >= VAL_MIN_IMAGES and per_class >= VAL_MIN_PER_CLASS:
        return None
    step = 100.0 / total if total else math.inf
    evidence = {"validation_images": total, "validation_counts": dict(validation_counts),
                "points_per_image": round(step, 2), "smallest_class": smallest,
                "smallest_class_images": per_class}
    message = (f"Validation has {total} images (the smallest class, '{smallest}', {per_class}): one "
               f"image moves validation accuracy by {step:.1f} percentage points, so the curves "
               "jump and the 'best' epoch is partly luck.")
    fixes = []
    config = config_or_default(config)
    split = _better_split(train_counts, validation_counts, config)
    if split is not None:
        fixes.append({"data.validation_split": split})
        message += (f" Holding out {percent(split)} of the images instead of "
                    f"{percent(config.data.validation_split)} helps;")
    message += (" more images help most (at least 50 for validation, 5 a class)" if split is not None
                else " Add images (at least 50 for validation, 5 a class)")
    if config.data.validation_dir is None:
        message += ", or a separate `data.validation_dir`."
    else:
        message += " to the validation folder."
    return Hint(id="val_too_small", severity="warning", title="Validation set too small",
                message=message, evidence=evidence, fixes=fixes)


def _better_split(train_counts: dict[str, int], validation_counts: dict[str, int],
                  config: Config) -> float | None:
    """A validation split (a round 5 % step, at most 30 %) that reaches 50 images and 5 a
    class, or at least 5 a class; None when none does or a validation folder is used."""
    if config.data.validation_dir is not None:
        return None
    totals = {k: int(train_counts.get(k, 0)) + int(validation_counts.get(k, 0)) for k in validation_counts}
    everything = sum(totals.values())
    if not everything or min(totals.values()) <= 0:
        return None
    per_class = VAL_MIN_PER_CLASS / min(totals.values())
    for needed in (max(per_class, VAL_MIN_IMAGES / everything), per_class):
        split = math.ceil(needed * 20 - 1e-9) / 20
        if config.data.validation_split < split <= 0.3:
            return split
    return None


def data_leakage(train_files: list[str], validation_files: list[str]) -> list[Hint]:
    if not train_files or not validation_files:
        return []
    report = duplicates.find_cross_duplicates(
        list(train_files), list(validation_files),
        seconds_budget=duplicates.NEAR_DUPLICATE_SECONDS_BUDGET)
    found: list[Hint] = []
    if not report.near_checked:
        found.append(Hint(
            id="duplicate_check_skipped", severity="info",
            title="Near-duplicate check skipped",
            message=(f"Comparing thumbnails of {report.files} images would take about "
                     f"{report.projected_seconds:.0f} s, so only byte-identical copies between "
                     "training and validation were looked for."),
            evidence={"files": report.files, "projected_seconds": round(report.projected_seconds, 1),
                      "exact_duplicates": len(report.exact)}))
    affected = report.validation_files_affected
    if affected:
        pairs = [{"train": t, "validation": v, "kind": "exact"} for t, v in report.exact]
        pairs += [{"train": t, "validation": v, "kind": "near", "correlation": round(c, 4)}
                  for t, v, c in report.near]
        share = affected / len(validation_files)
        found.append(Hint(
            id="data_leakage", severity="warning",
            title="Validation images also appear in training",
            message=(f"{affected} of {len(validation_files)} validation images ({percent(share)}) "
                     f"are copies of training images ({len(report.exact)} identical files, "
                     f"{len(report.near)} near-identical: re-saved, resized or recoloured). The "
                     "model is scored on pictures it learned, so validation accuracy overstates "
                     "how it does on new ones. Remove the copies from one side (the evidence "
                     "lists them), or keep validation images in their own `data.validation_dir`."),
            evidence={"exact": len(report.exact), "near": len(report.near),
                      "validation_images_affected": affected,
                      "pairs": pairs[:MAX_LISTED_DUPLICATES], "more_pairs": max(0, len(pairs) - MAX_LISTED_DUPLICATES),
                      "seconds": round(report.seconds, 2)}))
    return found

"""The words and the fixes of each diagnostic hint.

``training.diagnostics.monitor`` decides *whether* a hint fires (from numbers); the builders here
decide what it says and which config changes it offers. A fix is a dict of dotted config
keys, as ``Config.with_overrides`` takes them; a hint's ``fixes`` are alternatives (the
GUI applies one). Fixes are tailored to the run's config when it is known, and
``Diagnostics`` drops any that the config would refuse. (This module imports the
diagnostics' thresholds; ``training.diagnostics.monitor`` imports this one inside its methods.)
See docs/hints.md for every hint.
"""

from __future__ import annotations

import math
from typing import Any

from training.config import Config
from training.data import duplicates
from training.diagnostics.thresholds import (
    IMBALANCE_RATIO,
    MAX_LISTED_DUPLICATES,
    VAL_MIN_IMAGES,
    VAL_MIN_PER_CLASS,
)
from training.events import Hint


def _config(config: Config | None) -> Config:
    return config if config is not None else Config()


def _key(phase: str) -> str:
    return "optimizer.learning_rate" if phase == "head" else "training.fine_tune_learning_rate"


def _percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def rounded_rate(rate: float) -> float:
    """A learning rate to 2 significant digits (1e-05, not 9.999999999999999e-06)."""
    return float(f"{rate:.2g}")


# -- data -----------------------------------------------------------------------------------
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
            f"everything already scores {_percent(share)} accuracy, so accuracy hides how the "
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
    config = _config(config)
    split = _better_split(train_counts, validation_counts, config)
    if split is not None:
        fixes.append({"data.validation_split": split})
        message += (f" Holding out {_percent(split)} of the images instead of "
                    f"{_percent(config.data.validation_split)} helps;")
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
            message=(f"{affected} of {len(validation_files)} validation images ({_percent(share)}) "
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


# -- the start of training --------------------------------------------------------------------
def initial_loss_off(verdict: str, first: float, mean: float, num_classes: int, *, batches: int,
                     config: Config | None) -> Hint:
    expected = math.log(num_classes)
    evidence = {"first_batch_loss": round(first, 4), "mean_loss": round(mean, 4), "batches": batches,
                "expected": round(expected, 4), "num_classes": num_classes}
    if verdict == "high":
        fixes = [] if _config(config).schedule.warmup_epochs > 0 else [{"schedule.warmup_epochs": 1.0}]
        return Hint(
            id="initial_loss_off", severity="warning", title="Initial loss far above ln(C)",
            message=(f"The untrained model's loss was {first:.2f} (mean of the first {batches} "
                     f"batches {mean:.2f}); a fresh head that guesses evenly among {num_classes} "
                     f"classes scores ln({num_classes}) = {expected:.2f}. The head starts "
                     "confidently wrong: the features reaching it are very large. Check that the "
                     "backbone's weights and input scaling match (a weights file for another "
                     "backbone, or images already scaled), and start gently: a warm-up or a "
                     "lower learning rate."),
            evidence=evidence, fixes=fixes)
    return Hint(
        id="initial_loss_off", severity="warning", title="Initial loss far below ln(C)",
        message=(f"The untrained model's loss was {first:.2f} (mean of the first {batches} batches "
                 f"{mean:.2f}), below half of ln({num_classes}) = {expected:.2f}, the loss of even "
                 "guessing. An untrained head cannot know the labels: check that the labels do "
                 "not leak into the images (e.g. a class-coloured border, a watermark per class) "
                 "and that the classes are what you think."),
        evidence=evidence)


# -- curves ---------------------------------------------------------------------------------
def lr_too_low(evidence: dict[str, Any] | None, context: dict[str, Any]) -> Hint | None:
    if evidence is None:
        return None
    phase = evidence["phase"]
    rate = context.get("learning_rate") or evidence.get("learning_rate") or 1e-3
    higher = rounded_rate(min(10.0, rate * 10))
    return Hint(
        id="lr_too_low", severity="warning", title="Learning rate too low: the loss barely moves",
        message=(f"After {evidence['epochs']} epochs of the {phase} phase the training loss is "
                 f"{evidence['loss']:.3f} (it started at {evidence['start_loss']:.3f}) and the best "
                 f"validation loss {evidence['val_loss_best']:.3f} (first epoch "
                 f"{evidence['val_loss_first']:.3f}): neither improved by 5 %, and guessing scores "
                 f"{evidence['chance_loss']:.3f}. At {rate:.2g} the model learns too "
                 f"slowly to get anywhere: try {higher:.2g}, or find a rate with "
                 "`python main.py lr-find`."),
        evidence=evidence, fixes=[{_key(phase): higher}])


def overfitting(evidence: dict[str, Any] | None, config: Config | None) -> Hint | None:
    if evidence is None:
        return None
    if evidence["kind"] == "val_loss_rising":
        what = (f"Validation loss rose from {evidence['best_val_loss']:.3f} (epoch "
                f"{evidence['best_epoch']}) to {evidence['val_loss']:.3f} (epoch {evidence['epoch']}) "
                f"while the training loss kept falling ({evidence['best_epoch_loss']:.3f} -> "
                f"{evidence['loss']:.3f}).")
    else:
        what = (f"Training accuracy is {_percent(evidence['accuracy'])} but validation accuracy "
                f"{_percent(evidence['val_accuracy'])} (epoch {evidence['epoch']}).")
    return Hint(
        id="overfitting", severity="warning", title="Overfitting: the model memorizes the training images",
        message=(what + " The model learns the training images rather than the classes. More "
                 "images help most; augmentation, dropout and L2 make memorizing harder; early "
                 "stopping ends the run at the best epoch (best.keras already holds it)."),
        evidence=evidence, fixes=_overfitting_fixes(_config(config)))


def _overfitting_fixes(config: Config) -> list[dict[str, Any]]:
    fixes: list[dict[str, Any]] = []
    a = config.augmentation
    augmentation = {}
    if a.rotation < 0.05:
        augmentation["augmentation.rotation"] = 0.05
    if a.zoom < 0.1:
        augmentation["augmentation.zoom"] = 0.1
    if a.translation < 0.1:
        augmentation["augmentation.translation"] = 0.1
    if augmentation and not a.horizontal_flip:
        augmentation["augmentation.horizontal_flip"] = True
    if augmentation:
        fixes.append(augmentation)
    regularization = {}
    if config.model.head.dropout < 0.3:
        regularization["model.head.dropout"] = 0.3
    if config.regularization.l2 < 1e-4:
        regularization["regularization.l2"] = 1e-4
    if regularization:
        fixes.append(regularization)
    if config.training.early_stopping.patience == 0:
        fixes.append({"training.early_stopping.patience": 3})
    return fixes


# Regularizers above a moderate level, and the value each is brought back to.
_MODERATE = (
    ("model.head.dropout", lambda c: c.model.head.dropout, 0.3, 0.2),
    ("regularization.l2", lambda c: c.regularization.l2, 1e-3, 1e-4),
    ("regularization.l1", lambda c: c.regularization.l1, 1e-4, 0.0),
    ("regularization.label_smoothing", lambda c: c.regularization.label_smoothing, 0.1, 0.1),
    ("augmentation.mixup", lambda c: c.augmentation.mixup, 0.2, 0.0),
    ("augmentation.cutmix", lambda c: c.augmentation.cutmix, 0.2, 0.0),
    ("augmentation.cutout", lambda c: c.augmentation.cutout, 0.2, 0.1),
    ("augmentation.randaugment", lambda c: c.augmentation.randaugment, 0.3, 0.1),
    ("augmentation.gaussian_noise", lambda c: c.augmentation.gaussian_noise, 0.1, 0.05),
    ("augmentation.rotation", lambda c: c.augmentation.rotation, 0.15, 0.05),
    ("augmentation.zoom", lambda c: c.augmentation.zoom, 0.3, 0.1),
    ("augmentation.translation", lambda c: c.augmentation.translation, 0.2, 0.1),
    ("augmentation.random_crop", lambda c: c.augmentation.random_crop, 0.3, 0.1),
    ("augmentation.brightness", lambda c: c.augmentation.brightness, 0.4, 0.2),
    ("augmentation.contrast", lambda c: c.augmentation.contrast, 0.4, 0.2),
    ("augmentation.saturation", lambda c: c.augmentation.saturation, 0.4, 0.2),
    ("augmentation.hue", lambda c: c.augmentation.hue, 0.2, 0.05),
)


def too_much_regularization(evidence: dict[str, Any] | None, config: Config | None) -> Hint | None:
    if evidence is None:
        return None
    config = _config(config)
    heavy = {key: moderate for key, get, limit, moderate in _MODERATE if get(config) > limit}
    names = ", ".join(f"{k.split('.')[-1]} {_value(config, k)}" for k in heavy) or "dropout and augmentation"
    fixes = [heavy] if heavy else [{"model.head.dropout": min(0.2, config.model.head.dropout)}]
    fixes += [{k: v} for k, v in list(heavy.items())[:3]] if len(heavy) > 1 else []
    return Hint(
        id="too_much_regularization", severity="warning",
        title="Too much regularization: the model underfits",
        message=(f"The training loss ({evidence['loss']:.3f}) stays well above the validation loss "
                 f"({evidence['val_loss_mid_epoch']:.3f}) epoch after epoch: what the model sees in "
                 "training is much harder than the real images, so it learns slowly and "
                 f"underfits. Strongest regularizers now: {names}. Turn them down, then add back "
                 "only what stops overfitting."),
        evidence=evidence, fixes=[f for f in fixes if f])


def _value(config: Config, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def val_stuck_at_chance(evidence: dict[str, Any] | None, config: Config | None) -> Hint | None:
    if evidence is None:
        return None
    config = _config(config)
    momentum = config.model.batch_norm_momentum
    trains_batch_norm = config.model.weights == "none"
    fixes = []
    if trains_batch_norm and momentum is not None and momentum > 0.9:
        fixes.append({"model.batch_norm_momentum": 0.9})
    return Hint(
        id="val_stuck_at_chance", severity="warning", title="Validation stays at chance while training learns",
        message=(f"Training accuracy reached {_percent(evidence['accuracy'])}, but validation accuracy "
                 f"is {_percent(evidence['val_accuracy'])}, what always predicting the largest class "
                 f"scores ({_percent(evidence['chance_accuracy'])}). Usual causes: BatchNormalization "
                 "layers that train (from scratch, or unfrozen) with moving statistics that have "
                 "not caught up, so the model behaves differently at validation (a lower "
                 "`model.batch_norm_momentum`, a larger batch or a larger image size help); or "
                 "validation images unlike the training ones."),
        evidence=evidence, fixes=fixes)


def plateau(evidence: dict[str, Any] | None, config: Config | None) -> Hint | None:
    if evidence is None:
        return None
    config = _config(config)
    if config.training.early_stopping.patience > 0:
        return None  # early stopping will end the phase: nothing to add
    fixes: list[dict[str, Any]] = [{"training.early_stopping.patience": 3}]
    if config.schedule.name == "constant":
        fixes.append({"schedule.name": "reduce_on_plateau"})
    return Hint(
        id="plateau", severity="info", title=f"{evidence['monitor']} has stopped improving",
        message=(f"The best {evidence['monitor']} of the {evidence['phase']} phase "
                 f"({evidence['best_value']:.4g}) is from epoch {evidence['best_epoch']}; "
                 f"{evidence['epochs_without_improvement']} epochs since have not beaten it. More "
                 "epochs at this rate are unlikely to help: early stopping saves the time, a "
                 "lower rate on a plateau may still gain a little."),
        evidence=evidence, fixes=fixes)


# -- gradients --------------------------------------------------------------------------------
def exploding_gradients(evidence: dict[str, Any], phase: str, context: dict[str, Any]) -> Hint:
    config = _config(context.get("config"))
    rate = context.get("learning_rate") or 1e-3
    fixes = []
    if config.optimizer.clipvalue == 0 and config.optimizer.clipnorm == 0:
        fixes.append({"optimizer.clipnorm": 1.0})
    fixes.append({_key(phase): rounded_rate(rate / 10)})
    if evidence["kind"] == "non_finite":
        what = f"The gradient norm is {evidence['total_norm']}"
    else:
        what = (f"The gradient norm grew {evidence['growth']:.0f} times in one epoch "
                f"({evidence['previous_total_norm']:.3g} -> {evidence['total_norm']:.3g})")
    return Hint(
        id="exploding_gradients", severity="warning", title="Exploding gradients",
        message=(f"{what} at epoch {evidence['epoch']}: updates are getting larger, not smaller, "
                 "and the loss usually diverges next. Clip the gradient norm or lower the "
                 "learning rate."),
        evidence=evidence, fixes=fixes)


def vanishing_gradients(evidence: dict[str, Any], config: Config | None) -> Hint:
    config = _config(config)
    fixes = []
    if config.training.fine_tune_layers == "all" and config.model.weights != "none":
        fixes.append({"training.fine_tune_layers": 30})
    return Hint(
        id="vanishing_gradients", severity="warning", title="Vanishing gradients in the lower layers",
        message=(f"At epoch {evidence['epoch']} the {evidence['group'].replace('_', ' ')} layers got "
                 f"gradients {evidence['ratio']:.1e} times as strong (per weight) as the head's: "
                 "they are hardly training. Unfreezing fewer, higher layers trains what can "
                 "learn; from scratch, a backbone with BatchNormalization or pretrained weights "
                 "trains its lower layers far better."),
        evidence=evidence, fixes=fixes)


# -- the batch-to-batch loss, the end of the run ------------------------------------------------
def oscillating(evidence: dict[str, Any], context: dict[str, Any]) -> Hint:
    config = _config(context.get("config"))
    phase = evidence["phase"]
    rate = context.get("learning_rate") or evidence.get("learning_rate") or 1e-3
    fixes: list[dict[str, Any]] = [{_key(phase): rounded_rate(rate / 3)}]
    if config.data.batch_size < 64:
        fixes.append({"data.batch_size": min(4096, config.data.batch_size * 4)})
    return Hint(
        id="oscillating", severity="warning", title="Training loss swings strongly",
        message=(f"Over the last {2 * evidence['block']} batches (epoch {evidence['epoch']}, "
                 f"{phase} phase) the training loss moved by {evidence['swing']:.2f} on average "
                 f"from one batch to the next, {evidence['swing_ln_c']:.2f} times ln(C), at a level "
                 f"around {evidence['recent_loss']:.2f}. Each step overshoots: the updates are too "
                 f"large or too noisy to settle. A lower learning rate ({rounded_rate(rate / 3):.2g} "
                 f"instead of {rate:.2g}) or a larger batch (steadier gradients) calms it."),
        evidence=evidence, fixes=fixes)


def _phase_epochs_key(phase: str) -> str:
    return "training.head_epochs" if phase == "head" else "training.fine_tune_epochs"


def _more_epochs(config: Config, phase: str) -> dict[str, Any]:
    epochs = config.training.head_epochs if phase == "head" else config.training.fine_tune_epochs
    return {_phase_epochs_key(phase): min(10000, max(2 * epochs, epochs + 2))}


def underfitting(evidence: dict[str, Any], context: dict[str, Any]) -> Hint:
    config = _config(context.get("config"))
    phase = evidence["phase"]
    rate = context.get("learning_rate") or evidence.get("learning_rate") or 1e-3
    capacity: list[dict[str, Any]] = []
    layers = config.training.fine_tune_layers
    if phase == "head" and config.training.fine_tune_epochs == 0:
        capacity.append({"training.fine_tune_epochs": max(3, config.training.head_epochs)})
    elif layers != "all":
        capacity.append({"training.fine_tune_layers": "all" if layers >= 100 else max(10, 2 * layers)})
    if not config.model.head.hidden_units:
        capacity.append({"model.head.hidden_units": [256]})
    heavy = {key: moderate for key, get, limit, moderate in _MODERATE if get(config) > limit}
    if config.model.head.dropout > 0.2:
        heavy.setdefault("model.head.dropout", 0.1)
    less_regularization = [heavy] if heavy else []
    longer = [_more_epochs(config, phase)]
    faster = [{_key(phase): rounded_rate(min(10.0, rate * 3))}]
    if evidence.get("still_improving"):
        fixes = longer + capacity + faster + less_regularization
        progress = " The validation loss was still falling, so more epochs come first."
    else:
        fixes = capacity + less_regularization + faster + longer
        progress = ""
    return Hint(
        id="underfitting", severity="warning", title="Underfitting: the model fits neither set well",
        message=(f"At the end of the run (epoch {evidence['epoch']}) the training loss is "
                 f"{evidence['loss']:.3f} and the validation loss {evidence['val_loss']:.3f}, still "
                 f"{_percent(evidence['loss_fraction'])} of what guessing scores "
                 f"(ln C = {evidence['chance_loss']:.3f}), with training accuracy "
                 f"{_percent(evidence['accuracy'])} and no gap to validation: the model cannot even "
                 "fit the training images. Give it more capacity (unfreeze more layers, a hidden "
                 "layer in the head), less regularization, a higher learning rate or more epochs."
                 + progress),
        evidence=evidence, fixes=fixes)


def not_converged(evidence: dict[str, Any], config: Config | None) -> Hint:
    config = _config(config)
    phase = evidence["phase"]
    values = " -> ".join(f"{v:.4g}" for v in evidence["values"])
    return Hint(
        id="not_converged", severity="info", title="Still improving at the last epoch",
        message=(f"{evidence['monitor']} improved in each of the last epochs of the {phase} phase "
                 f"({values}) and its last epoch is the best: the run ended before the model "
                 "converged. More epochs are likely to help; early stopping can end a longer run "
                 "once it stops improving."),
        evidence=evidence, fixes=[_more_epochs(config, phase)])

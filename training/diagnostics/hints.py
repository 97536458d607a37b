"""The words and the fixes of each training hint.

The checks (``training.diagnostics.monitor`` and the modules of evidence functions) decide
*whether* a hint fires, from numbers; the builders here decide what it says and which config
changes it offers. A fix is a dict of dotted config keys, as ``Config.with_overrides`` takes
them; a hint's ``fixes`` are alternatives (the GUI applies one). Fixes are tailored to the
run's config when it is known, and ``Diagnostics`` drops any that the config would refuse.
The data hints are in ``training.diagnostics.data_hints``; docs/hints.md describes every hint.
"""

from __future__ import annotations

import math
from typing import Any

from training.config import Config, training_mode
from training.diagnostics.thresholds import DIVERGENCE_FACTOR
from training.diagnostics.wording import (
    config_or_default,
    learning_rate_key,
    percent,
    random_frozen_head,
    rounded_rate,
)
from training.events import Hint


# -- the loss diverged ------------------------------------------------------------------------
def lr_too_high(phase: str, epoch: int, batch: int, loss: float, learning_rate: float, *,
                reason: str, reference: float | None = None, config: Config | None = None) -> Hint:
    """The loss diverged (non-finite, or far above its starting level): the run stops."""
    evidence = {"loss": str(loss), "epoch": epoch, "batch": batch, "learning_rate": learning_rate,
                "phase": phase}
    if reference is not None:
        evidence.update(reference_loss=round(reference, 4), factor=DIVERGENCE_FACTOR)
    return Hint(
        id="lr_too_high", severity="error", title="Loss diverged: learning rate too high",
        message=(f"At batch {batch} of epoch {epoch} {reason}, so the run was stopped. "
                 + ("The best model so far is kept. " if epoch > 1 else
                    "No epoch had completed, so no model was saved. ")
                 + f"Try a learning rate ten times lower "
                 f"({learning_rate / 10:.2g}), or find one with `python main.py lr-find`."),
        evidence=evidence,
        fixes=[{learning_rate_key(phase, config): float(f"{learning_rate / 10:.2g}")}])


# -- the start of training --------------------------------------------------------------------
def initial_loss_off(verdict: str, first: float, mean: float, num_classes: int, *, batches: int,
                     config: Config | None) -> Hint:
    expected = math.log(num_classes)
    evidence = {"first_batch_loss": round(first, 4), "mean_loss": round(mean, 4), "batches": batches,
                "expected": round(expected, 4), "num_classes": num_classes}
    if verdict == "high":
        fixes = [] if config_or_default(config).schedule.warmup_epochs > 0 else [{"schedule.warmup_epochs": 1.0}]
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


# -- the setup --------------------------------------------------------------------------------
FROM_SCRATCH = {"training.mode": "from_scratch"}


def frozen_random_backbone(config: Config, evidence: dict[str, Any] | None = None) -> Hint:
    """The head trains on a frozen backbone whose weights are random (``model.weights: none``
    with an explicit pretrained mode).

    Without ``evidence``: the warning at the start of a run, from its config. With it (the
    numbers of ``curves.lr_too_low_evidence``: both losses flat at ln C for the head phase):
    the same cause seen in the curves, in place of ``lr_too_low``, since no learning rate
    turns random features into useful ones."""
    backbone = config.model.backbone
    cause = (f"{backbone} has random weights (`model.weights` is none) and the head phase keeps "
             "it frozen, so the features it passes to the head are random and the head learns "
             "next to nothing, whatever the learning rate. ")
    cure = ("Without pretrained weights, train from scratch (`training.mode` from_scratch: every "
            "layer, BatchNorm included, trains from the first epoch at the learning rate you "
            "set), or use ImageNet weights or a weights file.")
    if evidence is None:
        epochs = config.training.head_epochs
        return Hint(
            id="frozen_random_backbone", severity="warning",
            title="The head trains on a frozen backbone with random weights",
            message=(f"{backbone} has random weights (`model.weights` is none) and stays frozen "
                     f"for the {epochs} head epochs, so its features are random and the head "
                     "learns next to nothing, whatever the learning rate. " + cure),
            evidence={"seen_in": "config", "backbone": backbone, "weights": config.model.weights,
                      "head_epochs": epochs, "mode": config.training.mode},
            fixes=[dict(FROM_SCRATCH)])
    seen = (f"After {evidence['epochs']} epochs of the head phase the training loss is "
            f"{evidence['loss']:.3f} and the best validation loss {evidence['val_loss_best']:.3f}, "
            f"what guessing evenly among the classes scores (ln C = {evidence['chance_loss']:.3f}): "
            "the head has learned nothing. ")
    return Hint(
        id="frozen_random_backbone", severity="warning",
        title="Loss stuck at chance: the frozen backbone has random weights",
        message=seen + cause + cure,
        evidence={"seen_in": "curves", **evidence}, fixes=[dict(FROM_SCRATCH)])


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
        evidence=evidence, fixes=[{learning_rate_key(phase, context.get("config")): higher}])


def overfitting(evidence: dict[str, Any] | None, config: Config | None) -> Hint | None:
    if evidence is None:
        return None
    if evidence["kind"] == "val_loss_rising":
        what = (f"Validation loss rose from {evidence['best_val_loss']:.3f} (epoch "
                f"{evidence['best_epoch']}) to {evidence['val_loss']:.3f} (epoch {evidence['epoch']}) "
                f"while the training loss kept falling ({evidence['best_epoch_loss']:.3f} -> "
                f"{evidence['loss']:.3f}).")
    else:
        what = (f"Training accuracy is {percent(evidence['accuracy'])} but validation accuracy "
                f"{percent(evidence['val_accuracy'])} (epoch {evidence['epoch']}).")
    return Hint(
        id="overfitting", severity="warning", title="Overfitting: the model memorizes the training images",
        message=(what + " The model learns the training images rather than the classes. More "
                 "images help most; augmentation, dropout and L2 make memorizing harder; early "
                 "stopping ends the run at the best epoch (best.keras already holds it)."),
        evidence=evidence, fixes=_overfitting_fixes(config_or_default(config)))


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
    config = config_or_default(config)
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
    """Validation at chance while training learns: the likely causes for this config, most
    likely first, each with the fixes the config takes (``chance_causes``)."""
    if evidence is None:
        return None
    causes = chance_causes(evidence, config_or_default(config))
    listed = "; ".join(f"({number}) {text}" for number, (_, text, _) in enumerate(causes, start=1))
    return Hint(
        id="val_stuck_at_chance", severity="warning", title="Validation stays at chance while training learns",
        message=(f"Training accuracy reached {percent(evidence['accuracy'])}, but validation accuracy "
                 f"is {percent(evidence['val_accuracy'])}, what always predicting the largest class "
                 f"scores ({percent(evidence['chance_accuracy'])}), for 2 epochs running: what the "
                 "model learns does not carry over to the validation images. Likely causes, most "
                 f"likely first: {listed}."),
        evidence={**evidence, "causes": [cause for cause, _, _ in causes]},
        fixes=[fix for _, _, fixes in causes for fix in fixes])


def chance_causes(evidence: dict[str, Any], config: Config) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(id, words, fixes) of each likely cause of validation at chance, most likely first.

    Ranked by what the config makes possible: BatchNorm layers train only on a backbone that
    started from random weights (pretrained ones keep theirs frozen), and a frozen random
    backbone under the trained layers is the trap that explains it best."""
    causes = []
    random_start = config.model.weights == "none"
    if random_start and (evidence.get("phase") == "head" or evidence.get("after_head_phase")):
        causes.append((
            "frozen_random_backbone",
            f"{config.model.backbone} started from random weights (`model.weights` is none) and "
            "was frozen for the head phase: the layers trained on it sit on random features, and "
            "the BatchNorm statistics of a random backbone do not carry what training learned "
            "over to validation; without pretrained weights, train from scratch (`training.mode` "
            "from_scratch: every layer, BatchNorm included, from the first epoch)",
            [dict(FROM_SCRATCH)]))
    if random_start:
        momentum = config.model.batch_norm_momentum
        causes.append((
            "batch_norm_statistics",
            "BatchNormalization layers that train with moving statistics that have not caught "
            "up (from scratch, on small data, in few steps), so the model behaves differently at "
            "validation. Early in a short run from scratch this often passes by itself within a "
            "few epochs, as the statistics catch up (MobileNetV2 on the built-in sample, 10 "
            "steps an epoch: validation left chance at epoch 6 and reached 79 % at epoch 8); if "
            "it persists, a lower `model.batch_norm_momentum` (0.9, or lower with few steps an "
            "epoch), a larger batch or a larger image size help",
            [{"model.batch_norm_momentum": 0.9}] if momentum is not None and momentum > 0.9 else []))
    where = ("the separate validation folder" if config.data.validation_dir else "the validation images")
    causes.append((
        "validation_unlike_training",
        f"{where} unlike the training ones: another source, size or colour, or prepared "
        "differently (already scaled, grayscale, cropped)", []))
    causes.append((
        "label_mix_up",
        "labels that do not follow the images: files filed under the wrong class folders (training "
        "can memorize wrong labels, validation then scores chance)", []))
    return causes


def plateau(evidence: dict[str, Any] | None, config: Config | None) -> Hint | None:
    if evidence is None:
        return None
    config = config_or_default(config)
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
    config = config_or_default(context.get("config"))
    rate = context.get("learning_rate") or 1e-3
    fixes = []
    if config.optimizer.clipvalue == 0 and config.optimizer.clipnorm == 0:
        fixes.append({"optimizer.clipnorm": 1.0})
    fixes.append({learning_rate_key(phase, config): rounded_rate(rate / 10)})
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
    config = config_or_default(config)
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
    config = config_or_default(context.get("config"))
    phase = evidence["phase"]
    rate = context.get("learning_rate") or evidence.get("learning_rate") or 1e-3
    fixes: list[dict[str, Any]] = [{learning_rate_key(phase, config): rounded_rate(rate / 3)}]
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
    fix = {_phase_epochs_key(phase): min(10000, max(2 * epochs, epochs + 2))}
    if training_mode(config) == "from_scratch":
        # From scratch the one phase runs head + fine-tune epochs: the total goes into one key.
        fix["training.head_epochs"] = 0
    return fix


def underfitting(evidence: dict[str, Any], context: dict[str, Any]) -> Hint:
    config = config_or_default(context.get("config"))
    phase = evidence["phase"]
    rate = context.get("learning_rate") or evidence.get("learning_rate") or 1e-3
    seen = (f"At the end of the run (epoch {evidence['epoch']}) the training loss is "
            f"{evidence['loss']:.3f} and the validation loss {evidence['val_loss']:.3f}, still "
            f"{percent(evidence['loss_fraction'])} of what guessing scores "
            f"(ln C = {evidence['chance_loss']:.3f}), with training accuracy "
            f"{percent(evidence['accuracy'])} and no gap to validation: the model cannot even "
            "fit the training images.")
    if random_frozen_head(config, phase):
        # Random frozen features: a higher rate, more epochs or a bigger head only fit them harder.
        return Hint(
            id="underfitting", severity="warning", title="Underfitting: the head sees random features",
            message=(seen + f" {config.model.backbone} has random weights (`model.weights` is none) "
                     "and stayed frozen: the head can only learn what random features happen to "
                     "carry, whatever the learning rate or the number of epochs. Without pretrained "
                     "weights, train from scratch (`training.mode` from_scratch: every layer trains "
                     "from the first epoch), or use ImageNet weights or a weights file."),
            evidence=evidence, fixes=[dict(FROM_SCRATCH)])
    capacity: list[dict[str, Any]] = []
    layers = config.training.fine_tune_layers
    if phase == "head" and config.training.fine_tune_epochs == 0:
        more = {"training.fine_tune_epochs": max(3, config.training.head_epochs)}
        if config.training.mode == "head_only":
            more = {"training.mode": "fine_tune", **more}  # head only ignores fine-tuning epochs
        capacity.append(more)
    elif layers != "all":
        capacity.append({"training.fine_tune_layers": "all" if layers >= 100 else max(10, 2 * layers)})
    if not config.model.head.hidden_units:
        capacity.append({"model.head.hidden_units": [256]})
    heavy = {key: moderate for key, get, limit, moderate in _MODERATE if get(config) > limit}
    if config.model.head.dropout > 0.2:
        heavy.setdefault("model.head.dropout", 0.1)
    less_regularization = [heavy] if heavy else []
    longer = [_more_epochs(config, phase)]
    faster = [{learning_rate_key(phase, config): rounded_rate(min(10.0, rate * 3))}]
    if evidence.get("still_improving"):
        fixes = longer + capacity + faster + less_regularization
        progress = " The validation loss was still falling, so more epochs come first."
    else:
        fixes = capacity + less_regularization + faster + longer
        progress = ""
    return Hint(
        id="underfitting", severity="warning", title="Underfitting: the model fits neither set well",
        message=(seen + " Give it more capacity (unfreeze more layers, a hidden layer in the head), "
                 "less regularization, a higher learning rate or more epochs." + progress),
        evidence=evidence, fixes=fixes)


def not_converged(evidence: dict[str, Any], config: Config | None) -> Hint:
    config = config_or_default(config)
    phase = evidence["phase"]
    values = " -> ".join(f"{v:.4g}" for v in evidence["values"])
    return Hint(
        id="not_converged", severity="info", title="Still improving at the last epoch",
        message=(f"{evidence['monitor']} improved in each of the last epochs of the {phase} phase "
                 f"({values}) and its last epoch is the best: the run ended before the model "
                 "converged. More epochs are likely to help; early stopping can end a longer run "
                 "once it stops improving."),
        evidence=evidence, fixes=[_more_epochs(config, phase)])

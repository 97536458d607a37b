"""The epoch-level checks: functions of the metrics history (one row an epoch, as in
metrics.csv) that return the evidence for a hint, or None. Pure numbers, so they are tested on
synthetic curves (``tests/test_diagnostics.py``); ``Diagnostics`` calls them after each epoch
and at the end of the run. The thresholds are in ``training.diagnostics.thresholds``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from training.diagnostics.thresholds import (
    CHANCE_MARGIN,
    CHANCE_TRAIN_GAP,
    LOW_LR_MAX_IMPROVEMENT,
    LOW_LR_MIN_EPOCHS,
    LOW_LR_MIN_STEPS,
    LOW_LR_NEAR_CHANCE,
    NOT_CONVERGED_ACCURACY,
    NOT_CONVERGED_NATS,
    NOT_CONVERGED_RELATIVE,
    NOT_CONVERGED_WINDOW,
    OVERFIT_ACCURACY_GAP,
    OVERFIT_MIN_TRAIN_ACCURACY,
    OVERFIT_RISE_FACTOR,
    OVERFIT_RISE_NATS,
    OVERFIT_WINDOW,
    PLATEAU_EPOCHS,
    REGULARIZATION_GAP_LN_C,
    REGULARIZATION_GAP_RELATIVE,
    UNDERFIT_LOSS_FRACTION,
    UNDERFIT_MAX_GAP_LN_C,
    UNDERFIT_MAX_SKILL,
)


def finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def current_phase_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the last phase (epochs since the last phase change)."""
    if not history:
        return []
    phase = history[-1].get("phase")
    start = len(history)
    while start > 0 and history[start - 1].get("phase") == phase:
        start -= 1
    return history[start:]


def lr_too_low_evidence(history: list[dict[str, Any]], num_classes: int, *,
                        start_loss: float | None = None, steps: int | None = None,
                        min_epochs: int = LOW_LR_MIN_EPOCHS) -> dict[str, Any] | None:
    rows = current_phase_rows(history)
    if len(rows) < min_epochs or (steps is not None and steps < LOW_LR_MIN_STEPS):
        return None
    first, last = rows[0], rows[-1]
    start = start_loss if start_loss is not None and finite(start_loss) else first["loss"]
    best_val = min((r["val_loss"] for r in rows if finite(r["val_loss"])), default=math.nan)
    if not finite(start, last["loss"], first["val_loss"], best_val, last["val_loss"]):
        return None
    train_gain = 1.0 - last["loss"] / start if start > 0 else 0.0
    val_gain = 1.0 - best_val / first["val_loss"] if first["val_loss"] > 0 else 0.0
    near_chance = last["val_loss"] >= LOW_LR_NEAR_CHANCE * math.log(num_classes)
    if train_gain < LOW_LR_MAX_IMPROVEMENT and val_gain < LOW_LR_MAX_IMPROVEMENT and near_chance:
        return {"phase": last["phase"], "epochs": len(rows), "start_loss": round(start, 4),
                "loss": round(last["loss"], 4), "train_improvement": round(train_gain, 4),
                "val_loss_first": round(first["val_loss"], 4), "val_loss_best": round(best_val, 4),
                "val_improvement": round(val_gain, 4), "chance_loss": round(math.log(num_classes), 4),
                "learning_rate": last.get("learning_rate")}
    return None


def _window(history: list[dict[str, Any]], size: int) -> list[dict[str, Any]] | None:
    """The last ``size`` rows if they are one phase's and none is the first epoch of a phase
    that followed another (a fresh optimizer then jolts the curves)."""
    rows = current_phase_rows(history)
    later_phase = len(rows) < len(history)
    usable = rows[1:] if later_phase else rows
    return usable[-size:] if len(usable) >= size else None


def overfitting_evidence(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    window = _window(history, OVERFIT_WINDOW)
    if window is None:
        return None
    rows = [r for r in history if finite(r["val_loss"])]
    if not rows:
        return None
    best = min(rows, key=lambda r: r["val_loss"])
    last = window[-1]
    limit = best["val_loss"] * OVERFIT_RISE_FACTOR + OVERFIT_RISE_NATS
    rising = (best["epoch"] < window[0]["epoch"]
              and all(finite(r["val_loss"]) and r["val_loss"] >= limit for r in window)
              and finite(last["loss"]) and last["loss"] < best["loss"]
              and last["val_accuracy"] <= best["val_accuracy"] + 0.02)
    gaps = [r["accuracy"] - r["val_accuracy"] for r in window]
    gap = (all(finite(g) for g in gaps) and min(gaps) >= OVERFIT_ACCURACY_GAP
           and min(r["accuracy"] for r in window) >= OVERFIT_MIN_TRAIN_ACCURACY)
    if not (rising or gap):
        return None
    return {"kind": "val_loss_rising" if rising else "accuracy_gap",
            "best_epoch": best["epoch"], "best_val_loss": round(best["val_loss"], 4),
            "epoch": last["epoch"], "val_loss": round(last["val_loss"], 4),
            "val_loss_rise": round(last["val_loss"] / best["val_loss"], 3) if best["val_loss"] > 0 else None,
            "loss": round(last["loss"], 4), "best_epoch_loss": round(best["loss"], 4),
            "accuracy": round(last["accuracy"], 4), "val_accuracy": round(last["val_accuracy"], 4),
            "accuracy_gap": round(gaps[-1], 4)}


def mixed_target_entropy(mixup: float, cutmix: float, num_classes: int) -> float:
    """The mean entropy of MixUp/CutMix targets: a floor under the training loss that is
    not underfitting. A pair of different classes (1 - 1/C of pairs) mixed with weight
    lambda ~ Beta(a, a) has entropy H(lambda): 0.23 nats on average for a = 0.2, 0.47 for
    0.8. Both on: the two floors added (an upper bound), at most ln C."""
    rng = np.random.default_rng(0)
    total = 0.0
    for alpha in (mixup, cutmix):
        if alpha > 0:
            mix = np.clip(rng.beta(alpha, alpha, 20_000), 1e-12, 1 - 1e-12)
            entropy = -(mix * np.log(mix) + (1 - mix) * np.log(1 - mix))
            total += float(entropy.mean()) * (1 - 1 / num_classes)
    return min(total, math.log(num_classes))


def _mid_epoch_gaps(history: list[dict[str, Any]], floor: float = 0.0
                    ) -> list[tuple[dict[str, Any], float, float]]:
    """(row, training loss minus ``floor`` minus mid-epoch validation loss, mid-epoch
    validation loss) for each epoch of the current phase that has a predecessor in it."""
    rows = current_phase_rows(history)
    gaps = []
    for before, row in zip(rows, rows[1:]):
        if finite(before["val_loss"], row["val_loss"], row["loss"]):
            middle = (before["val_loss"] + row["val_loss"]) / 2
            gaps.append((row, row["loss"] - floor - middle, middle))
    return gaps


def regularization_gap_evidence(history: list[dict[str, Any]], num_classes: int, *,
                                floor: float = 0.0) -> dict[str, Any] | None:
    """``floor``: the part of the training loss no model can remove (mixed targets)."""
    gaps = _mid_epoch_gaps(history, floor)[-2:]
    if len(gaps) < 2:
        return None
    floor = REGULARIZATION_GAP_LN_C * math.log(num_classes)
    if all(gap >= floor and gap >= REGULARIZATION_GAP_RELATIVE * middle for _, gap, middle in gaps):
        row, gap, middle = gaps[-1]
        return {"epoch": row["epoch"], "loss": round(row["loss"], 4), "target_entropy": round(floor, 4),
                "val_loss_mid_epoch": round(middle, 4), "gap": round(gap, 4),
                "gap_relative": round(gap / middle, 3) if middle > 0 else None,
                "accuracy": round(row["accuracy"], 4), "val_accuracy": round(row["val_accuracy"], 4)}
    return None


def stuck_at_chance_evidence(history: list[dict[str, Any]], chance_accuracy: float
                             ) -> dict[str, Any] | None:
    """Validation accuracy at what always predicting the largest class scores while training
    accuracy is clearly above both, for 2 epochs of one phase (not its jolted first epoch after
    a phase change): a phase's 2nd epoch, or its 3rd after another phase."""
    window = _window(history, 2)
    if window is None:
        return None
    stuck = all(finite(r["accuracy"], r["val_accuracy"])
                and r["val_accuracy"] <= chance_accuracy + CHANCE_MARGIN
                and r["accuracy"] - r["val_accuracy"] >= CHANCE_TRAIN_GAP
                and r["accuracy"] - chance_accuracy >= CHANCE_TRAIN_GAP for r in window)
    if not stuck:
        return None
    last = window[-1]
    rows = current_phase_rows(history)
    return {"epoch": last["epoch"], "phase": last["phase"], "phase_epochs": len(rows),
            "accuracy": round(last["accuracy"], 4), "val_accuracy": round(last["val_accuracy"], 4),
            "chance_accuracy": round(chance_accuracy, 4),
            "after_head_phase": any(r.get("phase") == "head" for r in history[:len(history) - len(rows)])}


def plateau_evidence(history: list[dict[str, Any]], monitor: str = "val_loss") -> dict[str, Any] | None:
    rows = [r for r in current_phase_rows(history) if finite(r.get(monitor))]
    if len(rows) <= PLATEAU_EPOCHS:
        return None
    best_index = 0
    for index, row in enumerate(rows[1:], start=1):
        value, best = row[monitor], rows[best_index][monitor]
        better = value < best * 0.99 if monitor == "val_loss" else value > best + 0.005
        if better:
            best_index = index
    stale = len(rows) - 1 - best_index
    if stale < PLATEAU_EPOCHS:
        return None
    best = rows[best_index]
    return {"monitor": monitor, "best_epoch": best["epoch"], "best_value": round(best[monitor], 4),
            "epochs_without_improvement": stale, "epoch": rows[-1]["epoch"], "phase": rows[-1]["phase"]}


def smoothed_target_entropy(label_smoothing: float, num_classes: int) -> float:
    """The entropy of Keras's smoothed one-hot targets (1 - e + e/C, e/C, ...): the lowest
    cross-entropy any model reaches, on training and validation alike."""
    if label_smoothing <= 0:
        return 0.0
    low = label_smoothing / num_classes
    high = 1.0 - label_smoothing + low
    return -(high * math.log(high) + (num_classes - 1) * low * math.log(low))


def residual_fit(rows: list[dict[str, Any]], num_classes: int, floor: float = 0.0,
                  train_floor: float = 0.0) -> float | None:
    """The smaller of the training and validation losses of ``rows`` (their largest over
    the rows), less what no model can remove, as a fraction of ln C less that floor: 1 is
    guessing, 0 a perfect fit."""
    values = []
    for r in rows:
        if not finite(r.get("loss"), r.get("val_loss")):
            return None
        values.append(min(r["loss"] - floor - train_floor, r["val_loss"] - floor))
    span = math.log(num_classes) - floor
    return max(values) / span if values and span > 0 else None


def underfitting_evidence(history: list[dict[str, Any]], num_classes: int, chance_accuracy: float, *,
                          floor: float = 0.0, train_floor: float = 0.0) -> dict[str, Any] | None:
    """The last 2 epochs of the last phase fit neither training nor validation images:
    both losses high, no overfitting gap, low training accuracy."""
    window = _window(history, OVERFIT_WINDOW)
    if window is None:
        return None
    fraction = residual_fit(window, num_classes, floor, train_floor)
    if fraction is None or fraction < UNDERFIT_LOSS_FRACTION:
        return None
    ln_c = math.log(num_classes)
    if any(r["val_loss"] - r["loss"] > UNDERFIT_MAX_GAP_LN_C * ln_c for r in window):
        return None  # validation worse than training: not (only) underfitting
    accuracy = max(r["accuracy"] for r in window)
    skill = (accuracy - chance_accuracy) / (1 - chance_accuracy) if chance_accuracy < 1 else 1.0
    if not finite(skill) or skill >= UNDERFIT_MAX_SKILL:
        return None
    last = window[-1]
    return {"phase": last["phase"], "epoch": last["epoch"], "loss": round(last["loss"], 4),
            "val_loss": round(last["val_loss"], 4), "accuracy": round(last["accuracy"], 4),
            "val_accuracy": round(last["val_accuracy"], 4), "chance_loss": round(ln_c, 4),
            "loss_floor": round(floor + train_floor, 4), "loss_fraction": round(fraction, 3),
            "accuracy_skill": round(skill, 3), "learning_rate": last.get("learning_rate")}


def improvement_over_window(history: list[dict[str, Any]], monitor: str = "val_loss") -> float | None:
    """How much the monitor improved over the last ``NOT_CONVERGED_WINDOW`` epochs of the last
    phase (nats for val_loss, accuracy points for val_accuracy); None without them."""
    window = _window(history, NOT_CONVERGED_WINDOW)
    if window is None or not all(finite(r.get(monitor)) for r in window):
        return None
    first, last = window[0][monitor], window[-1][monitor]
    return first - last if monitor == "val_loss" else last - first


def convergence_evidence(history: list[dict[str, Any]], monitor: str = "val_loss", *,
                         floor: float = 0.0) -> dict[str, Any] | None:
    """The monitor still improving clearly at the end: better in each of the last 2 epochs,
    the last the phase's best, by a margin that is more than noise, with as much left to
    gain (``floor``: the lowest validation loss reachable, label smoothing's entropy)."""
    window = _window(history, NOT_CONVERGED_WINDOW)
    if window is None or not all(finite(r.get(monitor)) for r in window):
        return None
    values = [r[monitor] for r in window]
    phase_values = [r[monitor] for r in current_phase_rows(history) if finite(r.get(monitor))]
    if monitor == "val_loss":
        steady = all(b < a for a, b in zip(values, values[1:])) and values[-1] <= min(phase_values)
        gain = values[0] - values[-1]
        clear = (gain >= NOT_CONVERGED_NATS and gain >= NOT_CONVERGED_RELATIVE * values[0]
                 and values[-1] - floor >= NOT_CONVERGED_NATS)
    else:
        steady = (all(b >= a for a, b in zip(values, values[1:])) and values[-1] > values[0]
                  and values[-1] >= max(phase_values))
        gain = values[-1] - values[0]
        clear = gain >= NOT_CONVERGED_ACCURACY and 1.0 - values[-1] >= NOT_CONVERGED_ACCURACY
    if not (steady and clear):
        return None
    last = window[-1]
    return {"monitor": monitor, "phase": last["phase"], "epoch": last["epoch"],
            "epochs": len(current_phase_rows(history)),
            "values": [round(v, 4) for v in values], "improvement": round(gain, 4),
            "improvement_relative": round(gain / values[0], 3) if values[0] else None,
            "loss": round(last["loss"], 4)}


def curve_statistics(history: list[dict[str, Any]], num_classes: int) -> dict[str, Any]:
    """The largest value each epoch-level check saw over the run (benchmarks print these
    next to the thresholds to show the margins)."""
    stats: dict[str, Any] = {}
    rises, gaps, accuracy_gaps, low_gains = [], [], [], []
    for end in range(1, len(history) + 1):
        part = history[:end]
        window = _window(part, OVERFIT_WINDOW)
        scored = [r for r in part if finite(r["val_loss"])]
        if window and scored:
            best = min(scored, key=lambda r: r["val_loss"])
            if best["epoch"] < window[0]["epoch"]:
                rises.append(min(r["val_loss"] - best["val_loss"] * OVERFIT_RISE_FACTOR for r in window))
            accuracy_gaps.append(min(r["accuracy"] - r["val_accuracy"] for r in window))
        pairs = _mid_epoch_gaps(part)[-2:]
        if len(pairs) == 2:
            gaps.append(min(gap for _, gap, _ in pairs) / math.log(num_classes))
        rows = current_phase_rows(part)
        if len(rows) >= LOW_LR_MIN_EPOCHS and finite(rows[0]["val_loss"]) and rows[0]["val_loss"] > 0:
            low_gains.append(1 - min(r["val_loss"] for r in rows) / rows[0]["val_loss"])
    stats["val_loss_rise_nats"] = max(rises, default=None)
    stats["accuracy_gap"] = max(accuracy_gaps, default=None)
    stats["regularization_gap_ln_c"] = max(gaps, default=None)
    stats["phase_val_improvement"] = max(low_gains, default=None)
    return stats

"""Diagnostics: read the curves and the data like an experienced practitioner.

Pure logic over numbers (no Keras, no Qt): the engine feeds it the data report, each
training batch's loss, each epoch's metrics and, when probed, per-layer-group gradient
norms; it answers with ``Hint`` events. Each hint fires once per run.

The engine's contract with this module (see ``training/callbacks.py``):

- ``check_data(report, train_files, validation_files)`` once, before training;
- ``observe_batch(...)`` after every training batch; it must stay constant-time. It
  returns ``(hints, stop)``; ``stop=True`` ends the run at once as diverged;
- ``observe_epoch(row)`` after every completed epoch (``row`` as in metrics.csv);
- ``observe_gradients(epoch, norms)`` when a gradient probe ran;
- ``finish(history, stop_reason)`` once at the end.

Every threshold (``training.diagnostics.thresholds``) was chosen from the scenario runs in
``benchmarks/diagnostics_scenarios.py``; ``docs/hints.md`` gives the numbers and the
reasoning for each hint. The curve checks are module-level functions of the metrics
history, so they are tested on synthetic curves (``tests/test_diagnostics.py``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.config import Config, ConfigError
from training.diagnostics.thresholds import (
    CHANCE_MARGIN,
    CHANCE_TRAIN_GAP,
    DIVERGENCE_FACTOR,
    DIVERGENCE_WINDOW,
    EXPLODING_GROWTH,
    EXPLODING_MIN_NORM,
    INITIAL_LOSS_MAX_EXCESS,
    INITIAL_LOSS_MIN_FRACTION,
    LOW_LR_MAX_IMPROVEMENT,
    LOW_LR_MIN_EPOCHS,
    LOW_LR_MIN_STEPS,
    LOW_LR_NEAR_CHANCE,
    NOT_CONVERGED_ACCURACY,
    NOT_CONVERGED_NATS,
    NOT_CONVERGED_RELATIVE,
    NOT_CONVERGED_WINDOW,
    OSCILLATION_BLOCK,
    OSCILLATION_SWING_LN_C,
    OSCILLATION_SWING_RELATIVE,
    OVERFIT_ACCURACY_GAP,
    OVERFIT_MIN_TRAIN_ACCURACY,
    OVERFIT_RISE_FACTOR,
    OVERFIT_RISE_NATS,
    OVERFIT_WINDOW,
    PLATEAU_EPOCHS,
    REFERENCE_BATCHES,
    REGULARIZATION_GAP_LN_C,
    REGULARIZATION_GAP_RELATIVE,
    UNDERFIT_LOSS_FRACTION,
    UNDERFIT_MAX_GAP_LN_C,
    UNDERFIT_MAX_SKILL,
    VANISHING_RATIO,
)
from training.events import DataReport, Hint


@dataclass
class _PhaseTrace:
    """Constant-size summary of one phase's training batches."""
    phase: str
    batches: int = 0
    first_loss: float = math.nan
    head_sum: float = 0.0        # sum of the first REFERENCE_BATCHES losses
    head_min: float = math.inf
    recent: deque = field(default_factory=lambda: deque(maxlen=DIVERGENCE_WINDOW))
    max_ratio: float = 0.0       # largest smoothed loss / reference seen (for benchmarks)
    swing_sum: float = 0.0       # sum of |loss_t - loss_t-1| in the current block
    level_sum: float = 0.0       # sum of the losses in the current block
    block_swing: float = math.nan  # mean swing of the previous complete block
    block_relative: float = math.nan  # its mean swing / its mean loss
    sustained_swing: float = math.nan  # min of the last two blocks' mean swings
    sustained_relative: float = math.nan  # min of their swing / level
    max_sustained_swing: float = 0.0   # the largest sustained swing (for benchmarks)
    max_sustained_relative: float = 0.0

    def add(self, loss: float) -> None:
        self.batches += 1
        if self.batches == 1:
            self.first_loss = loss
        if self.batches <= REFERENCE_BATCHES:
            self.head_sum += loss
            self.head_min = min(self.head_min, loss)
        # Swing blocks start after the phase's first block (where the loss falls fast);
        # each block's first swing is measured against the previous block's last loss.
        if self.batches > OSCILLATION_BLOCK:
            self.swing_sum += abs(loss - self.recent[-1])
            self.level_sum += loss
            if (self.batches - OSCILLATION_BLOCK) % OSCILLATION_BLOCK == 0:
                swing = self.swing_sum / OSCILLATION_BLOCK
                relative = swing / max(1e-12, self.level_sum / OSCILLATION_BLOCK)
                if _finite(self.block_swing):
                    self.sustained_swing = min(swing, self.block_swing)
                    self.sustained_relative = min(relative, self.block_relative)
                    self.max_sustained_swing = max(self.max_sustained_swing, self.sustained_swing)
                    self.max_sustained_relative = max(self.max_sustained_relative, self.sustained_relative)
                self.block_swing, self.block_relative = swing, relative
                self.swing_sum = self.level_sum = 0.0
        self.recent.append(loss)

    def take_sustained_swing(self) -> tuple[float, float]:
        """(mean swing, swing / level) of the two blocks just completed; NaN between block ends."""
        taken = (self.sustained_swing, self.sustained_relative)
        self.sustained_swing = self.sustained_relative = math.nan
        return taken

    @property
    def head_mean(self) -> float:
        return self.head_sum / max(1, min(self.batches, REFERENCE_BATCHES))


class Diagnostics:
    """Watches one run; remembers which hints already fired.

    Args:
        num_classes: C; the untrained loss is ln(C).
        phase_learning_rates: each phase's base rate, for the fixes.
        config: the run's config; fixes are then tailored to it and checked against it
            (every fix must pass ``config.with_overrides``). Without it, defaults.
        history: epochs already completed (a resumed run): the initial-loss check is then
            skipped and the curve checks see the whole run.
    """

    def __init__(self, *, num_classes: int, phase_learning_rates: dict[str, float],
                 config: Config | None = None, history: list[dict[str, Any]] | None = None):
        self.num_classes = max(2, int(num_classes))
        self.phase_learning_rates = dict(phase_learning_rates)
        self.config = config
        self.fired: set[str] = set()
        self.history: list[dict[str, Any]] = [dict(row) for row in history or []]
        self.traces: dict[str, _PhaseTrace] = {}
        self._trace: _PhaseTrace | None = None
        self._initial_pending = not self.history
        self._loss_scale = 1.0              # largest class weight, when classes are weighted
        self._validation_chance = 1.0 / self.num_classes
        self._target_entropy = (mixed_target_entropy(config.augmentation.mixup, config.augmentation.cutmix,
                                                     self.num_classes) if config is not None else 0.0)
        self._gradient_history: list[tuple[str, dict[str, float]]] = []

    @property
    def chance_loss(self) -> float:
        return math.log(self.num_classes)

    def _once(self, hint: Hint | None) -> list[Hint]:
        if hint is None or hint.id in self.fired:
            return []
        self.fired.add(hint.id)
        return [hint]

    # -- data --------------------------------------------------------------------------
    # (``training.diagnostics.hints`` imports this module's thresholds, so it is imported here, late.)
    def check_data(self, report: DataReport, train_files: list[str],
                   validation_files: list[str]) -> list[Hint]:
        from training.diagnostics import hints

        train, validation = dict(report.train_counts), dict(report.validation_counts)
        if validation and sum(validation.values()):
            self._validation_chance = max(validation.values()) / sum(validation.values())
        balanced = self.config is not None and self.config.data.class_weight == "balanced"
        if balanced and train and min(train.values()) > 0:
            # Keras scales each sample's loss by its class weight; the largest weight bounds
            # how much higher a batch's loss may legitimately be.
            total = sum(train.values())
            self._loss_scale = max(total / (len(train) * n) for n in train.values())
        found = [hints.class_imbalance(train, balanced),
                 hints.val_too_small(train, validation, self.config)]
        found += hints.data_leakage(train_files, validation_files)
        return [hint for h in found for hint in self._once(self._checked(h))]

    # -- training ------------------------------------------------------------------------
    def observe_batch(self, *, phase: str, epoch: int, batch: int, step: int, loss: float,
                      accuracy: float, learning_rate: float) -> tuple[list[Hint], bool]:
        if not math.isfinite(loss):
            return self._once(self._checked(lr_too_high_hint(
                phase, epoch, batch, loss, self._base_rate(phase, learning_rate),
                reason=f"the training loss became {loss}"))), True
        trace = self._trace_for(phase)
        trace.add(loss)
        found: list[Hint] = []
        if self._initial_pending and trace.batches >= REFERENCE_BATCHES:
            found += self._check_initial_loss(trace)
        swing, relative = trace.take_sustained_swing()
        if (_finite(swing, relative) and "oscillating" not in self.fired
                and swing >= OSCILLATION_SWING_LN_C * self.chance_loss * self._loss_scale
                and relative >= OSCILLATION_SWING_RELATIVE):
            from training.diagnostics import hints

            found += self._once(self._checked(hints.oscillating(
                {"phase": phase, "epoch": epoch, "batch": batch, "swing": round(swing, 4),
                 "swing_ln_c": round(swing / self.chance_loss, 3),
                 "swing_relative": round(relative, 3), "block": OSCILLATION_BLOCK,
                 "recent_loss": round(sum(trace.recent) / len(trace.recent), 4),
                 "learning_rate": self._base_rate(phase, learning_rate),
                 "batch_size": self.config.data.batch_size if self.config else None},
                self._fix_context())))
        if len(trace.recent) == DIVERGENCE_WINDOW:
            reference = max(self.chance_loss, trace.head_min)
            smoothed = sum(trace.recent) / DIVERGENCE_WINDOW
            ratio = smoothed / reference
            trace.max_ratio = max(trace.max_ratio, ratio)
            if ratio > DIVERGENCE_FACTOR * self._loss_scale:
                reason = (f"the training loss (mean of the last {DIVERGENCE_WINDOW} batches) reached "
                          f"{smoothed:.3g}, {ratio:.1f} times its starting level {reference:.3g}")
                return found + self._once(self._checked(lr_too_high_hint(
                    phase, epoch, batch, smoothed, self._base_rate(phase, learning_rate),
                    reason=reason, reference=reference))), True
        return found, False

    def observe_epoch(self, row: dict[str, Any]) -> list[Hint]:
        from training.diagnostics import hints

        self.history.append(dict(row))
        found: list[Hint] = []
        trace = self.traces.get(str(row.get("phase", "")))
        if self._initial_pending and trace is not None and trace.batches:
            found += self._check_initial_loss(trace)  # a first epoch of fewer than 5 batches
        history, classes = self.history, self.num_classes
        phase_start = trace.head_mean if trace is not None and trace.batches else None
        steps = trace.batches if trace is not None else None
        if "lr_too_low" not in self.fired:
            evidence = lr_too_low_evidence(history, classes, start_loss=phase_start, steps=steps,
                                           min_epochs=self._low_lr_min_epochs(str(row.get("phase"))))
            found += self._once(self._checked(hints.lr_too_low(evidence, self._fix_context())))
        if "val_stuck_at_chance" not in self.fired:
            evidence = stuck_at_chance_evidence(history, self._validation_chance)
            found += self._once(self._checked(hints.val_stuck_at_chance(evidence, self.config)))
        if "overfitting" not in self.fired and "val_stuck_at_chance" not in self.fired:
            evidence = overfitting_evidence(history)
            found += self._once(self._checked(hints.overfitting(evidence, self.config)))
        balanced = self.config is not None and self.config.data.class_weight == "balanced"
        if "too_much_regularization" not in self.fired and not balanced:
            # Class weights scale the training loss but not the validation loss: the gap
            # would then measure the weighting, not the regularization.
            evidence = regularization_gap_evidence(history, classes, floor=self._target_entropy)
            found += self._once(self._checked(hints.too_much_regularization(evidence, self.config)))
        if "plateau" not in self.fired and not self.fired & {"overfitting", "lr_too_low"}:
            monitor = self.config.training.monitor if self.config else "val_loss"
            evidence = plateau_evidence(history, monitor)
            found += self._once(self._checked(hints.plateau(evidence, self.config)))
        return found

    def observe_gradients(self, epoch: int, norms: dict[str, float]) -> list[Hint]:
        from training.diagnostics import hints

        phase = self._trace.phase if self._trace else ""
        previous = [n for p, n in self._gradient_history if p == phase]
        self._gradient_history.append((phase, dict(norms)))
        if "lr_too_high" in self.fired:
            return []  # the run diverged already: its gradients say nothing new
        found = []
        evidence = exploding_evidence(norms, previous[-1] if previous else None)
        if evidence:
            evidence["epoch"] = epoch
            found += self._once(self._checked(hints.exploding_gradients(
                evidence, phase, self._fix_context())))
        evidence = vanishing_evidence(norms)
        if evidence:
            evidence["epoch"] = epoch
            found += self._once(self._checked(hints.vanishing_gradients(evidence, self.config)))
        return found

    def finish(self, history: list[dict[str, Any]], stop_reason: str) -> list[Hint]:
        """End-of-run hints: underfitting (a run that ended, also by early stopping) and
        not_converged (a run that completed its epochs). A still-improving run that
        underfits gets one hint, underfitting, whose first fix is then more epochs."""
        from training.diagnostics import hints

        if stop_reason not in ("completed", "early_stopping") or not history:
            return []
        monitor = self.config.training.monitor if self.config else "val_loss"
        improving = (convergence_evidence(history, monitor, floor=self._loss_floor())
                     if stop_reason == "completed" else None)
        found: list[Hint] = []
        # A specific cause already reported explains the same numbers.
        explained = self.fired & {"lr_too_high", "lr_too_low", "too_much_regularization", "overfitting",
                                  "val_stuck_at_chance", "underfitting"}
        if not explained:
            evidence = underfitting_evidence(history, self.num_classes, self._chance_accuracy(),
                                             floor=self._loss_floor(), train_floor=self._target_entropy)
            if evidence is not None:
                evidence["still_improving"] = improving is not None
                found += self._once(self._checked(hints.underfitting(evidence, self._fix_context())))
        if improving is not None and "underfitting" not in self.fired:
            found += self._once(self._checked(hints.not_converged(improving, self.config)))
        return found

    # -- numbers for reports and benchmarks ----------------------------------------------
    def statistics(self) -> dict[str, Any]:
        """The quantities behind the thresholds, whether or not a hint fired."""
        first = next(iter(self.traces.values()), None)
        stats: dict[str, Any] = {"chance_loss": self.chance_loss}
        if first is not None:
            stats["initial_first_batch"] = first.first_loss
            stats["initial_mean"] = first.head_mean
        stats["divergence_ratio"] = max((t.max_ratio for t in self.traces.values()), default=0.0)
        stats["oscillation_swing_ln_c"] = max((t.max_sustained_swing for t in self.traces.values()),
                                              default=0.0) / self.chance_loss
        stats["oscillation_swing_relative"] = max((t.max_sustained_relative for t in self.traces.values()),
                                                  default=0.0)
        stats.update(curve_statistics(self.history, self.num_classes))
        if self.history:
            fit = _residual_fit(self.history[-OVERFIT_WINDOW:], self.num_classes, self._loss_floor(),
                                self._target_entropy)
            stats["final_loss_fraction"] = fit
            stats["final_improvement"] = improvement_over_window(
                self.history, self.config.training.monitor if self.config else "val_loss")
        return stats

    # -- helpers ---------------------------------------------------------------------------
    def _trace_for(self, phase: str) -> _PhaseTrace:
        if self._trace is None or self._trace.phase != phase:
            self._trace = self.traces.setdefault(phase, _PhaseTrace(phase))
        return self._trace

    def _check_initial_loss(self, trace: _PhaseTrace) -> list[Hint]:
        from training.diagnostics import hints

        self._initial_pending = False
        verdict = initial_loss_verdict(trace.first_loss, trace.head_mean, self.num_classes)
        if verdict is None:
            return []
        return self._once(self._checked(hints.initial_loss_off(
            verdict, trace.first_loss, trace.head_mean, self.num_classes,
            batches=min(trace.batches, REFERENCE_BATCHES), config=self.config)))

    def _low_lr_min_epochs(self, phase: str) -> int:
        """Epochs before a flat loss means a low rate: a warm-up (or one-cycle's ramp) starts
        low on purpose, so its epochs do not count."""
        if self.config is None:
            return LOW_LR_MIN_EPOCHS
        schedule = self.config.schedule
        epochs = (self.config.training.head_epochs if phase == "head"
                  else self.config.training.fine_tune_epochs)
        ramp = schedule.warmup_epochs if schedule.name != "reduce_on_plateau" else 0.0
        if schedule.name == "one_cycle":
            ramp += schedule.one_cycle_warmup_fraction * epochs
        return LOW_LR_MIN_EPOCHS + math.ceil(ramp)

    def _chance_accuracy(self) -> float:
        return 1.0 / self.num_classes

    def _loss_floor(self) -> float:
        """The loss no model gets below on either side: label smoothing's target entropy."""
        if self.config is None:
            return 0.0
        return smoothed_target_entropy(self.config.regularization.label_smoothing, self.num_classes)

    def _base_rate(self, phase: str, current: float) -> float:
        rate = self.phase_learning_rates.get(phase)
        return float(rate) if rate else float(current)

    def _fix_context(self) -> dict[str, Any]:
        phase = self._trace.phase if self._trace else (self.history[-1]["phase"] if self.history else "head")
        return {"phase": phase, "learning_rate": self.phase_learning_rates.get(phase),
                "config": self.config}

    def _checked(self, hint: Hint | None) -> Hint | None:
        """The hint with only the fixes that the run's config (or the defaults) accepts."""
        if hint is None or not hint.fixes:
            return hint
        base = self.config or Config()
        valid = []
        for fix in hint.fixes:
            try:
                base.with_overrides(fix)
            except ConfigError:
                continue
            valid.append(fix)
        if len(valid) == len(hint.fixes):
            return hint
        return Hint(id=hint.id, severity=hint.severity, title=hint.title, message=hint.message,
                    evidence=hint.evidence, fixes=valid)


# -- the checks, as functions of numbers -------------------------------------------------------
def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def initial_loss_verdict(first_loss: float, mean_loss: float, num_classes: int) -> str | None:
    """"high", "low" or None. Both the first batch (before any update) and the mean of the
    first few must be off the same way, so neither one unlucky batch nor a rate that moves
    the loss from the second batch on can trigger it."""
    if not _finite(first_loss, mean_loss):
        return None
    expected = math.log(max(2, num_classes))
    high = expected + INITIAL_LOSS_MAX_EXCESS
    low = expected * INITIAL_LOSS_MIN_FRACTION
    if first_loss > high and mean_loss > high:
        return "high"
    if first_loss < low and mean_loss < low:
        return "low"
    return None


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
    start = start_loss if start_loss is not None and _finite(start_loss) else first["loss"]
    best_val = min((r["val_loss"] for r in rows if _finite(r["val_loss"])), default=math.nan)
    if not _finite(start, last["loss"], first["val_loss"], best_val, last["val_loss"]):
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
    rows = [r for r in history if _finite(r["val_loss"])]
    if not rows:
        return None
    best = min(rows, key=lambda r: r["val_loss"])
    last = window[-1]
    limit = best["val_loss"] * OVERFIT_RISE_FACTOR + OVERFIT_RISE_NATS
    rising = (best["epoch"] < window[0]["epoch"]
              and all(_finite(r["val_loss"]) and r["val_loss"] >= limit for r in window)
              and _finite(last["loss"]) and last["loss"] < best["loss"]
              and last["val_accuracy"] <= best["val_accuracy"] + 0.02)
    gaps = [r["accuracy"] - r["val_accuracy"] for r in window]
    gap = (all(_finite(g) for g in gaps) and min(gaps) >= OVERFIT_ACCURACY_GAP
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
        if _finite(before["val_loss"], row["val_loss"], row["loss"]):
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
    window = _window(history, 2)
    if window is None:
        return None
    stuck = all(_finite(r["accuracy"], r["val_accuracy"])
                and r["val_accuracy"] <= chance_accuracy + CHANCE_MARGIN
                and r["accuracy"] - r["val_accuracy"] >= CHANCE_TRAIN_GAP for r in window)
    if not stuck:
        return None
    last = window[-1]
    return {"epoch": last["epoch"], "accuracy": round(last["accuracy"], 4),
            "val_accuracy": round(last["val_accuracy"], 4), "chance_accuracy": round(chance_accuracy, 4)}


def plateau_evidence(history: list[dict[str, Any]], monitor: str = "val_loss") -> dict[str, Any] | None:
    rows = [r for r in current_phase_rows(history) if _finite(r.get(monitor))]
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


def exploding_evidence(norms: dict[str, float], previous: dict[str, float] | None
                       ) -> dict[str, Any] | None:
    total = norms.get("total")
    if total is None:
        return None
    if not _finite(total):
        return {"total_norm": str(total), "kind": "non_finite"}
    before = (previous or {}).get("total")
    if (before and _finite(before) and before > 0 and total / before >= EXPLODING_GROWTH
            and total >= EXPLODING_MIN_NORM):
        return {"kind": "growth", "total_norm": round(total, 6), "previous_total_norm": round(before, 6),
                "growth": round(total / before, 2)}
    return None


def vanishing_evidence(norms: dict[str, float]) -> dict[str, Any] | None:
    head = norms.get("head")
    backbone = {k: v for k, v in norms.items() if k.startswith("backbone") and _finite(v)}
    if not head or not _finite(head) or head <= 0 or not backbone:
        return None
    weakest = min(backbone, key=backbone.get)
    ratio = backbone[weakest] / head
    if ratio < VANISHING_RATIO:
        return {"group": weakest, "group_rms": backbone[weakest], "head_rms": head,
                "ratio": ratio, "norms": dict(norms)}
    return None


def smoothed_target_entropy(label_smoothing: float, num_classes: int) -> float:
    """The entropy of Keras's smoothed one-hot targets (1 - e + e/C, e/C, ...): the lowest
    cross-entropy any model reaches, on training and validation alike."""
    if label_smoothing <= 0:
        return 0.0
    low = label_smoothing / num_classes
    high = 1.0 - label_smoothing + low
    return -(high * math.log(high) + (num_classes - 1) * low * math.log(low))


def _residual_fit(rows: list[dict[str, Any]], num_classes: int, floor: float = 0.0,
                  train_floor: float = 0.0) -> float | None:
    """The smaller of the training and validation losses of ``rows`` (their largest over
    the rows), less what no model can remove, as a fraction of ln C less that floor: 1 is
    guessing, 0 a perfect fit."""
    values = []
    for r in rows:
        if not _finite(r.get("loss"), r.get("val_loss")):
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
    fraction = _residual_fit(window, num_classes, floor, train_floor)
    if fraction is None or fraction < UNDERFIT_LOSS_FRACTION:
        return None
    ln_c = math.log(num_classes)
    if any(r["val_loss"] - r["loss"] > UNDERFIT_MAX_GAP_LN_C * ln_c for r in window):
        return None  # validation worse than training: not (only) underfitting
    accuracy = max(r["accuracy"] for r in window)
    skill = (accuracy - chance_accuracy) / (1 - chance_accuracy) if chance_accuracy < 1 else 1.0
    if not _finite(skill) or skill >= UNDERFIT_MAX_SKILL:
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
    if window is None or not all(_finite(r.get(monitor)) for r in window):
        return None
    first, last = window[0][monitor], window[-1][monitor]
    return first - last if monitor == "val_loss" else last - first


def convergence_evidence(history: list[dict[str, Any]], monitor: str = "val_loss", *,
                         floor: float = 0.0) -> dict[str, Any] | None:
    """The monitor still improving clearly at the end: better in each of the last 2 epochs,
    the last the phase's best, by a margin that is more than noise, with as much left to
    gain (``floor``: the lowest validation loss reachable, label smoothing's entropy)."""
    window = _window(history, NOT_CONVERGED_WINDOW)
    if window is None or not all(_finite(r.get(monitor)) for r in window):
        return None
    values = [r[monitor] for r in window]
    phase_values = [r[monitor] for r in current_phase_rows(history) if _finite(r.get(monitor))]
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
        finite = [r for r in part if _finite(r["val_loss"])]
        if window and finite:
            best = min(finite, key=lambda r: r["val_loss"])
            if best["epoch"] < window[0]["epoch"]:
                rises.append(min(r["val_loss"] - best["val_loss"] * OVERFIT_RISE_FACTOR for r in window))
            accuracy_gaps.append(min(r["accuracy"] - r["val_accuracy"] for r in window))
        pairs = _mid_epoch_gaps(part)[-2:]
        if len(pairs) == 2:
            gaps.append(min(gap for _, gap, _ in pairs) / math.log(num_classes))
        rows = current_phase_rows(part)
        if len(rows) >= LOW_LR_MIN_EPOCHS and _finite(rows[0]["val_loss"]) and rows[0]["val_loss"] > 0:
            low_gains.append(1 - min(r["val_loss"] for r in rows) / rows[0]["val_loss"])
    stats["val_loss_rise_nats"] = max(rises, default=None)
    stats["accuracy_gap"] = max(accuracy_gaps, default=None)
    stats["regularization_gap_ln_c"] = max(gaps, default=None)
    stats["phase_val_improvement"] = max(low_gains, default=None)
    return stats


def learning_rate_key(phase: str) -> str:
    """The config key that sets a phase's base learning rate."""
    return "optimizer.learning_rate" if phase == "head" else "training.fine_tune_learning_rate"


def lr_too_high_hint(phase: str, epoch: int, batch: int, loss: float, learning_rate: float, *,
                     reason: str, reference: float | None = None) -> Hint:
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
        fixes=[{learning_rate_key(phase): float(f"{learning_rate / 10:.2g}")}])

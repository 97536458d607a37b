"""Diagnostics: read the curves and the data like an experienced practitioner.

Pure logic over numbers (no Keras, no Qt): the engine feeds it the data report, each
training batch's loss, each epoch's metrics and, when probed, per-layer-group gradient
norms; it answers with ``Hint`` events. Each hint fires once per run.

The engine's contract with this module (see ``training.engine.callbacks``):

- ``check_data(report, train_files, validation_files)`` once, before training;
- ``observe_batch(...)`` after every training batch; it must stay constant-time. It
  returns ``(hints, stop)``; ``stop=True`` ends the run at once as diverged;
- ``observe_epoch(row)`` after every completed epoch (``row`` as in metrics.csv);
- ``observe_gradients(epoch, norms)`` when a gradient probe ran;
- ``finish(history, stop_reason)`` once at the end.

``Diagnostics`` keeps the run's state (which hints fired, the batch traces, the history)
and asks the checks, which live by kind: ``batches`` (each training step),
``curves`` (each epoch and the end of the run), ``gradient_checks`` (each probe); the
words are in ``hints`` and ``data_hints``. Every threshold
(``training.diagnostics.thresholds``) was chosen from the scenario runs in
``benchmarks/diagnostics_scenarios.py``; ``docs/hints.md`` gives the numbers and the
reasoning for each hint.
"""

from __future__ import annotations

import math
from typing import Any

from training.config import Config, ConfigError
from training.diagnostics import data_hints, hints
from training.diagnostics.batches import PhaseTrace, initial_loss_verdict
from training.diagnostics.curves import (
    convergence_evidence,
    curve_statistics,
    finite,
    improvement_over_window,
    lr_too_low_evidence,
    mixed_target_entropy,
    overfitting_evidence,
    plateau_evidence,
    regularization_gap_evidence,
    residual_fit,
    smoothed_target_entropy,
    stuck_at_chance_evidence,
    underfitting_evidence,
)
from training.diagnostics.gradient_checks import exploding_evidence, vanishing_evidence
from training.diagnostics.thresholds import (
    DIVERGENCE_FACTOR,
    DIVERGENCE_WINDOW,
    LOW_LR_MIN_EPOCHS,
    OSCILLATION_BLOCK,
    OSCILLATION_SWING_LN_C,
    OSCILLATION_SWING_RELATIVE,
    OVERFIT_WINDOW,
    REFERENCE_BATCHES,
)
from training.diagnostics.wording import random_frozen_head
from training.events import DataReport, Hint


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
        self.traces: dict[str, PhaseTrace] = {}
        self._trace: PhaseTrace | None = None
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
    def check_data(self, report: DataReport, train_files: list[str],
                   validation_files: list[str]) -> list[Hint]:
        train, validation = dict(report.train_counts), dict(report.validation_counts)
        if validation and sum(validation.values()):
            self._validation_chance = max(validation.values()) / sum(validation.values())
        balanced = self.config is not None and self.config.data.class_weight == "balanced"
        if balanced and train and min(train.values()) > 0:
            # Keras scales each sample's loss by its class weight; the largest weight bounds
            # how much higher a batch's loss may legitimately be.
            total = sum(train.values())
            self._loss_scale = max(total / (len(train) * n) for n in train.values())
        found = [data_hints.class_imbalance(train, balanced),
                 data_hints.val_too_small(train, validation, self.config)]
        found += data_hints.data_leakage(train_files, validation_files)
        return [hint for h in found for hint in self._once(self._checked(h))]

    # -- training ------------------------------------------------------------------------
    def observe_batch(self, *, phase: str, epoch: int, batch: int, step: int, loss: float,
                      accuracy: float, learning_rate: float) -> tuple[list[Hint], bool]:
        if not math.isfinite(loss):
            return self._once(self._checked(hints.lr_too_high(
                phase, epoch, batch, loss, self._base_rate(phase, learning_rate),
                reason=f"the training loss became {loss}", config=self.config))), True
        trace = self._trace_for(phase)
        trace.add(loss)
        found: list[Hint] = []
        if self._initial_pending and trace.batches >= REFERENCE_BATCHES:
            found += self._check_initial_loss(trace)
        swing, relative = trace.take_sustained_swing()
        if (finite(swing, relative) and "oscillating" not in self.fired
                and swing >= OSCILLATION_SWING_LN_C * self.chance_loss * self._loss_scale
                and relative >= OSCILLATION_SWING_RELATIVE):
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
                return found + self._once(self._checked(hints.lr_too_high(
                    phase, epoch, batch, smoothed, self._base_rate(phase, learning_rate),
                    reason=reason, reference=reference, config=self.config))), True
        return found, False

    def observe_epoch(self, row: dict[str, Any]) -> list[Hint]:
        self.history.append(dict(row))
        found: list[Hint] = []
        trace = self.traces.get(str(row.get("phase", "")))
        if self._initial_pending and trace is not None and trace.batches:
            found += self._check_initial_loss(trace)  # a first epoch of fewer than 5 batches
        history, classes = self.history, self.num_classes
        phase_start = trace.head_mean if trace is not None and trace.batches else None
        steps = trace.batches if trace is not None else None
        phase = str(row.get("phase"))
        flat_id = "frozen_random_backbone" if random_frozen_head(self.config, phase) else "lr_too_low"
        if flat_id not in self.fired:
            evidence = lr_too_low_evidence(history, classes, start_loss=phase_start, steps=steps,
                                           min_epochs=self._low_lr_min_epochs(phase))
            found += self._once(self._checked(self._flat_loss(evidence, phase)))
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
        explained = {"overfitting", "lr_too_low", "frozen_random_backbone"}
        if "plateau" not in self.fired and not self.fired & explained:
            monitor = self.config.training.monitor if self.config else "val_loss"
            evidence = plateau_evidence(history, monitor)
            found += self._once(self._checked(hints.plateau(evidence, self.config)))
        return found

    def observe_gradients(self, epoch: int, norms: dict[str, float]) -> list[Hint]:
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
        if stop_reason not in ("completed", "early_stopping") or not history:
            return []
        monitor = self.config.training.monitor if self.config else "val_loss"
        improving = (convergence_evidence(history, monitor, floor=self._loss_floor())
                     if stop_reason == "completed" else None)
        found: list[Hint] = []
        # A specific cause already reported explains the same numbers.
        explained = self.fired & {"lr_too_high", "lr_too_low", "too_much_regularization", "overfitting",
                                  "val_stuck_at_chance", "underfitting", "frozen_random_backbone"}
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
            fit = residual_fit(self.history[-OVERFIT_WINDOW:], self.num_classes, self._loss_floor(),
                                self._target_entropy)
            stats["final_loss_fraction"] = fit
            stats["final_improvement"] = improvement_over_window(
                self.history, self.config.training.monitor if self.config else "val_loss")
        return stats

    # -- helpers ---------------------------------------------------------------------------
    def _trace_for(self, phase: str) -> PhaseTrace:
        if self._trace is None or self._trace.phase != phase:
            self._trace = self.traces.setdefault(phase, PhaseTrace(phase))
        return self._trace

    def _check_initial_loss(self, trace: PhaseTrace) -> list[Hint]:
        self._initial_pending = False
        verdict = initial_loss_verdict(trace.first_loss, trace.head_mean, self.num_classes)
        if verdict is None:
            return []
        return self._once(self._checked(hints.initial_loss_off(
            verdict, trace.first_loss, trace.head_mean, self.num_classes,
            batches=min(trace.batches, REFERENCE_BATCHES), config=self.config)))

    def _flat_loss(self, evidence: dict[str, Any] | None, phase: str) -> Hint | None:
        """Losses that do not move: the rate's doing, except for a head on random frozen
        features, which no rate makes useful (a higher one would be the wrong advice)."""
        if evidence is None:
            return None
        if random_frozen_head(self.config, phase):
            return hints.frozen_random_backbone(self.config, evidence)
        return hints.lr_too_low(evidence, self._fix_context())

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

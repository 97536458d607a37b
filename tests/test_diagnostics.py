"""Diagnostics on synthetic curves: each hint fires on the curve that should trigger it,
stays silent on a healthy one, and fires once. The curves' numbers come from the real
scenario runs (benchmarks/diagnostics_scenarios.py); no model is trained here."""

from __future__ import annotations

import io
import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image

from training.config import Config
from training.data import duplicates
from training.data.sample import make_shapes_dataset
from training.diagnostics import data_hints, hints
from training.diagnostics.batches import initial_loss_verdict
from training.diagnostics.curves import (
    convergence_evidence,
    lr_too_low_evidence,
    overfitting_evidence,
    plateau_evidence,
    regularization_gap_evidence,
    smoothed_target_entropy,
    stuck_at_chance_evidence,
    underfitting_evidence,
)
from training.diagnostics.gradient_checks import exploding_evidence, vanishing_evidence
from training.diagnostics.monitor import Diagnostics
from training.diagnostics.thresholds import HINT_IDS, OSCILLATION_BLOCK
from training.diagnostics.wording import learning_rate_key
from training.events import DataReport, Hint

LN3 = math.log(3)


def make_diagnostics(config: Config | None = None, **kwargs) -> Diagnostics:
    return Diagnostics(num_classes=3, phase_learning_rates={"head": 1e-3, "fine_tune": 1e-4},
                       config=config, **kwargs)


def feed_batches(diagnostics: Diagnostics, losses, *, phase: str = "head", epoch: int = 1):
    """Feeds batch losses; returns (all hints, index of the batch that stopped or None)."""
    found = []
    for index, loss in enumerate(losses):
        new, stop = diagnostics.observe_batch(phase=phase, epoch=epoch, batch=index + 1, step=index + 1,
                                              loss=loss, accuracy=0.5, learning_rate=1e-3)
        found += new
        if stop:
            return found, index
    return found, None


def row(epoch, phase, loss, accuracy, val_loss, val_accuracy, learning_rate=1e-3):
    return {"epoch": epoch, "phase": phase, "loss": loss, "accuracy": accuracy, "val_loss": val_loss,
            "val_accuracy": val_accuracy, "learning_rate": learning_rate}


def curve(phase, values, first_epoch=1):
    """Rows from (loss, accuracy, val_loss, val_accuracy) tuples."""
    return [row(first_epoch + i, phase, *v) for i, v in enumerate(values)]


def feed_epochs(diagnostics: Diagnostics, rows, batches_per_epoch: int = 14):
    """Per epoch: the batches (at the epoch's loss), then the row. Returns (epoch, hint) pairs."""
    fired = []
    for r in rows:
        feed_batches(diagnostics, [r["loss"]] * batches_per_epoch, phase=r["phase"], epoch=r["epoch"])
        fired += [(r["epoch"], h) for h in diagnostics.observe_epoch(r)]
    return fired


# The healthy two-phase run of the scenarios (stand-in pretrained SmallCNN): fast learning,
# training metrics lag the end-of-epoch validation ones, a fresh optimizer at epoch 4.
HEALTHY_TRANSFER = curve("head", [(1.924, 0.273, 1.441, 0.370), (1.098, 0.546, 0.645, 0.667),
                                  (0.544, 0.787, 0.288, 1.0)]) + curve(
    "fine_tune", [(0.226, 0.972, 0.078, 1.0), (0.073, 1.0, 0.027, 1.0), (0.031, 1.0, 0.013, 1.0)], 4)
# From scratch, 3e-3: near-perfect after one epoch, then tiny wobbles of a tiny val loss.
HEALTHY_SCRATCH = curve("fine_tune", [(0.219, 0.921, 0.012, 1.0), (0.045, 1.0, 0.004, 1.0),
                                      (0.032, 1.0, 0.006, 1.0), (0.031, 0.995, 0.009, 1.0),
                                      (0.020, 1.0, 0.005, 1.0)])


# -- lr_too_high --------------------------------------------------------------------------------
def test_non_finite_loss_stops_at_once_with_a_valid_fix():
    diagnostics = make_diagnostics()
    found, stopped = feed_batches(diagnostics, [1.1, 1.0, float("nan")])
    assert stopped == 2
    assert [h.id for h in found] == ["lr_too_high"] and found[0].severity == "error"
    assert found[0].fixes == [{"optimizer.learning_rate": 1e-4}]


def test_loss_three_times_its_start_stops_the_run_once():
    diagnostics = make_diagnostics()
    # lr_far_too_high scenario: 1.085 before any update, then 505, 312, ...
    found, stopped = feed_batches(diagnostics, [1.085, 505.4, 312.6, 88.3])
    assert stopped == 2 and [h.id for h in found] == ["lr_too_high"]
    assert found[0].evidence["reference_loss"] == pytest.approx(LN3, abs=1e-3)
    again, stopped_again = feed_batches(diagnostics, [400.0, 400.0, 400.0], epoch=2)
    assert stopped_again is not None and again == []  # stops again, but the hint fired once


def test_noisy_batches_and_a_single_spike_do_not_stop():
    diagnostics = make_diagnostics()
    # healthy_transfer's first batches swing 1.4-2.8 around a 1.8 start; one spike of 6.
    losses = [1.78, 1.85, 2.21, 2.73, 2.30, 1.42, 2.77, 1.84, 6.0, 1.2, 1.1, 0.9]
    found, stopped = feed_batches(diagnostics, losses)
    assert stopped is None and found == []


def test_fine_tune_start_is_measured_against_ln_c_not_a_tiny_loss():
    diagnostics = make_diagnostics()
    feed_batches(diagnostics, [1.1, 0.5, 0.2, 0.1, 0.05])
    # A fresh optimizer jolts a 0.02 loss to 0.6: 30x the phase's start, but far below ln(C).
    found, stopped = feed_batches(diagnostics, [0.02, 0.6, 0.6, 0.5, 0.3], phase="fine_tune", epoch=2)
    assert stopped is None and found == []
    found, stopped = feed_batches(diagnostics, [4.0, 4.0, 4.0], phase="fine_tune", epoch=2)
    assert stopped is not None and found[0].fixes == [{"training.fine_tune_learning_rate": 1e-5}]


def test_balanced_class_weights_widen_the_divergence_limit():
    config = Config().with_overrides({"data.class_weight": "balanced"})
    diagnostics = make_diagnostics(config)
    report = DataReport(root="x", classes=["a", "b", "c"], train_counts={"a": 80, "b": 10, "c": 10},
                        validation_counts={"a": 20, "b": 20, "c": 20})
    diagnostics.check_data(report, [], [])
    # Weights 0.42 / 3.33 / 3.33: a batch of rare classes legitimately scores ~3.3 x ln(C).
    found, stopped = feed_batches(diagnostics, [1.1, 3.6, 3.7, 3.6, 3.5])
    assert stopped is None and not [h for h in found if h.id == "lr_too_high"]


def test_batch_state_stays_bounded():
    diagnostics = make_diagnostics()
    rng = np.random.default_rng(0)
    feed_batches(diagnostics, list(1.0 + 0.1 * rng.standard_normal(20_000)))
    trace = diagnostics.traces["head"]
    assert trace.batches == 20_000 and len(trace.recent) <= 3


# -- initial_loss_off -----------------------------------------------------------------------------
def test_initial_loss_far_above_ln_c_fires_once():
    diagnostics = make_diagnostics()
    found, _ = feed_batches(diagnostics, [4.2, 4.0, 4.4, 3.9, 4.1, 3.0, 2.0])
    assert [h.id for h in found] == ["initial_loss_off"]
    assert found[0].evidence["expected"] == pytest.approx(LN3, abs=1e-3)
    assert found[0].fixes == [{"schedule.warmup_epochs": 1.0}]
    found, _ = feed_batches(diagnostics, [4.2] * 5, phase="fine_tune", epoch=2)
    assert not [h for h in found if h.id == "initial_loss_off"]


def test_initial_loss_far_below_ln_c_fires():
    found, _ = feed_batches(make_diagnostics(), [0.3, 0.2, 0.25, 0.2, 0.1])
    assert [h.id for h in found] == ["initial_loss_off"] and "below" in found[0].title


@pytest.mark.parametrize("losses", [
    [1.085, 0.41, 0.36, 0.15, 0.19],   # healthy from scratch: learns from the 2nd batch on
    [1.78, 1.85, 2.21, 2.73, 2.30],    # stand-in pretrained backbone (+0.7 / +1.1 nats)
    [2.15, 2.73, 3.43, 3.17, 2.42],    # dropout 0.8 and heavy augmentation (+1.05 / +1.7)
    [1.09, 5.0, 5.0, 5.0, 5.0],        # a rate too high moves the loss, not the init
])
def test_initial_loss_in_the_healthy_range_is_silent(losses):
    found, _ = feed_batches(make_diagnostics(), losses)
    assert not [h for h in found if h.id == "initial_loss_off"]


def test_initial_loss_check_is_skipped_when_resuming():
    resumed = make_diagnostics(history=HEALTHY_TRANSFER[:2])
    found, _ = feed_batches(resumed, [4.5] * 5)
    assert found == []


def test_initial_loss_verdict_needs_both_first_batch_and_mean():
    assert initial_loss_verdict(4.0, 4.0, 3) == "high"
    assert initial_loss_verdict(1.1, 4.0, 3) is None
    assert initial_loss_verdict(0.2, 0.2, 3) == "low"
    assert initial_loss_verdict(float("nan"), 1.0, 3) is None


# -- the key of a phase's rate ----------------------------------------------------------------------
@pytest.mark.parametrize("overrides", [
    {}, {"model.weights": "none"}, {"model.weights": "none", "training.mode": "fine_tune"},
    {"model.weights": "none", "training.mode": "from_scratch"}, {"training.mode": "head_only"},
    {"training.head_epochs": 0}, {"training.fine_tune_learning_rate": 3e-4},
    {"model.weights": "none", "training.fine_tune_learning_rate": 3e-4},
], ids=str)
def test_a_rate_fix_sets_the_rate_the_phase_trains_at(overrides):
    from training.engine.recipe import (
        PHASES,
        fine_tune_learning_rate,
        phase_epochs,
        phase_learning_rate,
        resolve_mode,
    )

    config = Config().with_overrides(overrides)
    # As the engine hands it to Diagnostics: the mode resolved, the fine-tuning rate filled in.
    resolved = resolve_mode(config)
    resolved = resolved.with_overrides({"training.fine_tune_learning_rate": fine_tune_learning_rate(resolved)})
    for phase in PHASES:
        if phase_epochs(config, phase) == 0:
            continue
        for given in (config, resolved):
            fix = {learning_rate_key(phase, given): 0.0123}
            assert phase_learning_rate(config.with_overrides(fix), phase) == pytest.approx(0.0123), (phase, fix)


# -- lr_too_low -----------------------------------------------------------------------------------
LR_FAR_TOO_LOW = curve("head", [(2.45, 0.28, 2.497, 0.30), (2.43, 0.28, 2.496, 0.30),
                                (2.46, 0.29, 2.495, 0.30), (2.44, 0.26, 2.494, 0.30)])


def test_flat_losses_near_chance_fire_lr_too_low_once():
    fired = feed_epochs(make_diagnostics(), LR_FAR_TOO_LOW)
    assert [(e, h.id) for e, h in fired] == [(3, "lr_too_low")]
    assert fired[0][1].fixes == [{"optimizer.learning_rate": 0.01}]


@pytest.mark.parametrize("rows", [HEALTHY_TRANSFER, HEALTHY_SCRATCH])
def test_healthy_runs_raise_no_warning(rows):
    fired = feed_epochs(make_diagnostics(), rows)
    assert [h.id for _, h in fired if h.severity != "info"] == []


def test_flat_fine_tuning_of_a_good_model_is_not_lr_too_low():
    # Converged in the head phase; fine-tuning at a tenth of the rate barely moves: fine.
    rows = HEALTHY_TRANSFER[:3] + curve("fine_tune", [(0.30, 0.95, 0.25, 1.0)] * 4, 4)
    fired = feed_epochs(make_diagnostics(), rows)
    assert "lr_too_low" not in [h.id for _, h in fired]


def test_lr_too_low_waits_out_a_warm_up():
    config = Config().with_overrides({"schedule.warmup_epochs": 2.0})
    fired = feed_epochs(make_diagnostics(config), LR_FAR_TOO_LOW + curve("head", [(2.44, 0.26, 2.494, 0.3)], 5))
    assert [(e, h.id) for e, h in fired] == [(5, "lr_too_low")]


def test_lr_too_low_needs_enough_steps():
    fired = feed_epochs(make_diagnostics(), LR_FAR_TOO_LOW, batches_per_epoch=2)
    assert fired == []


# -- overfitting ----------------------------------------------------------------------------------
# tiny_data_no_regularization: 8 images a class, no augmentation, no dropout.
TINY_DATA = curve("fine_tune", [(1.305, 0.167, 1.204, 0.333), (0.609, 0.75, 1.419, 0.45),
                                (0.597, 0.792, 1.503, 0.467), (0.416, 0.833, 1.175, 0.533),
                                (0.294, 0.917, 1.459, 0.483), (0.190, 0.958, 1.805, 0.5),
                                (0.123, 0.958, 1.785, 0.5), (0.236, 0.875, 1.537, 0.483)])


def test_validation_loss_rising_fires_overfitting_once():
    fired = feed_epochs(make_diagnostics(), TINY_DATA)
    assert [(e, h.id) for e, h in fired] == [(6, "overfitting")]
    hint = fired[0][1]
    assert hint.evidence["best_epoch"] == 4
    assert {"training.early_stopping.patience": 3} in hint.fixes


def test_rising_validation_loss_alone_is_detected():
    rows = curve("head", [(1.0, 0.6, 0.9, 0.6), (0.7, 0.7, 0.7, 0.7), (0.5, 0.8, 0.9, 0.68),
                          (0.4, 0.85, 1.0, 0.69)])
    evidence = overfitting_evidence(rows)
    assert evidence is not None and evidence["kind"] == "val_loss_rising"


def test_fine_tune_jolt_is_not_overfitting():
    # The fresh optimizer of the fine-tuning phase makes validation loss jump for an epoch.
    rows = curve("head", [(1.2, 0.5, 0.9, 0.6), (0.8, 0.7, 0.6, 0.8), (0.6, 0.8, 0.5, 0.85)]) + curve(
        "fine_tune", [(0.5, 0.82, 0.9, 0.7), (0.45, 0.85, 0.48, 0.86)], 4)
    assert overfitting_evidence(rows) is None
    assert feed_epochs(make_diagnostics(), rows) == []


def test_tiny_validation_losses_wobbling_are_not_overfitting():
    # 0.004 -> 0.009 is +125 % but 0.005 nats: noise.
    assert overfitting_evidence(HEALTHY_SCRATCH) is None


# -- too_much_regularization ---------------------------------------------------------------------
HEAVY_REGULARIZATION = curve("head", [(2.728, 0.306, 2.133, 0.037), (2.601, 0.315, 1.676, 0.296),
                                      (2.411, 0.380, 1.331, 0.667), (2.055, 0.426, 1.098, 0.741),
                                      (1.966, 0.5, 0.984, 1.0), (1.738, 0.569, 0.935, 1.0)])


def test_training_loss_far_above_validation_fires_too_much_regularization():
    config = Config().with_overrides({"model.head.dropout": 0.8, "regularization.l2": 0.05,
                                      "augmentation.zoom": 0.5})
    fired = feed_epochs(make_diagnostics(config), HEAVY_REGULARIZATION)
    assert [(e, h.id) for e, h in fired] == [(3, "too_much_regularization")]
    fixes = fired[0][1].fixes
    assert fixes[0] == {"model.head.dropout": 0.2, "regularization.l2": 1e-4, "augmentation.zoom": 0.1}


def test_epoch_lag_of_fast_learning_is_not_too_much_regularization():
    # healthy_transfer: train 1.098 vs val 0.645 at epoch 2 looks like a gap, but against
    # the mid-epoch validation loss it is 0.05 nats.
    assert regularization_gap_evidence(HEALTHY_TRANSFER[:3], 3) is None


def test_mixup_targets_entropy_is_not_counted_as_underfitting():
    # A healthy mixup run: the mixed targets keep the training loss ~0.15 nats up (C = 3).
    rows = curve("head", [(0.9, 0.6, 0.5, 0.85), (0.5, 0.75, 0.2, 0.95), (0.42, 0.8, 0.08, 1.0),
                          (0.38, 0.8, 0.05, 1.0)])
    assert regularization_gap_evidence(rows, 3) is not None  # without the floor: a false alarm
    config = Config().with_overrides({"augmentation.mixup": 0.4})
    fired = feed_epochs(make_diagnostics(config), rows)
    assert "too_much_regularization" not in [h.id for _, h in fired]


def test_balanced_class_weights_skip_the_regularization_gap():
    config = Config().with_overrides({"data.class_weight": "balanced"})
    fired = feed_epochs(make_diagnostics(config), HEAVY_REGULARIZATION)
    assert "too_much_regularization" not in [h.id for _, h in fired]


# -- val_stuck_at_chance, plateau -------------------------------------------------------------------
def test_validation_at_chance_while_training_learns():
    # batch_norm_mismatch scenario: MobileNetV2 from scratch at 32 px.
    rows = curve("fine_tune", [(1.477, 0.509, 1.127, 0.333), (1.020, 0.597, 1.181, 0.333),
                               (0.924, 0.662, 1.104, 0.333), (0.791, 0.671, 1.691, 0.333)])
    config = Config().with_overrides({"model.weights": "none", "model.batch_norm_momentum": 0.99})
    fired = feed_epochs(make_diagnostics(config), rows)
    assert [(e, h.id) for e, h in fired] == [(2, "val_stuck_at_chance")]  # from 2 epochs of evidence
    hint = fired[0][1]
    assert hint.fixes == [{"model.batch_norm_momentum": 0.9}]
    assert hint.evidence["causes"] == ["batch_norm_statistics", "validation_unlike_training", "label_mix_up"]


# The issue's trap, 5 classes: a head on a frozen random backbone (explicit fine_tune mode,
# weights none) sits at exactly ln 5 and 20 %, then fine-tuning 30 layers brings training
# accuracy to 0.44 while validation stays at 0.20. Per-epoch numbers shaped like the issue's
# run (it kept only these).
LN5 = math.log(5)
FROZEN_RANDOM_CONFIG = Config().with_overrides({"model.weights": "none", "training.mode": "fine_tune",
                                                "training.head_epochs": 5, "training.fine_tune_epochs": 5})
ISSUE_HEAD = curve("head", [(LN5 + 0.0004, 0.19, LN5, 0.2), (LN5 + 0.0001, 0.2, LN5, 0.2),
                            (LN5, 0.2, LN5, 0.2), (LN5, 0.2, LN5, 0.2), (LN5, 0.2, LN5, 0.2)])
ISSUE_FINE_TUNE = curve("fine_tune", [(1.75, 0.22, 1.62, 0.2), (1.52, 0.36, 1.63, 0.2),
                                      (1.45, 0.41, 1.64, 0.2), (1.40, 0.44, 1.66, 0.2)], 6)


def five_class_diagnostics(config: Config) -> Diagnostics:
    diagnostics = Diagnostics(num_classes=5, phase_learning_rates={"head": 1e-3, "fine_tune": 1e-3},
                              config=config)
    counts = {name: 20 for name in "abcde"}
    diagnostics.check_data(DataReport(root="x", classes=list(counts), train_counts=counts,
                                      validation_counts=counts), [], [])
    return diagnostics


def raises_a_head_rate(hint: Hint, config: Config) -> bool:
    return any(fix.get("optimizer.learning_rate", 0) > config.optimizer.learning_rate for fix in hint.fixes)


def test_a_frozen_random_backbone_is_named_instead_of_the_learning_rate():
    from training.engine.recipe import frozen_random_backbone

    assert frozen_random_backbone(FROZEN_RANDOM_CONFIG)
    diagnostics = five_class_diagnostics(FROZEN_RANDOM_CONFIG)
    fired = feed_epochs(diagnostics, ISSUE_HEAD + ISSUE_FINE_TUNE)
    fired += [(None, h) for h in diagnostics.finish(ISSUE_HEAD + ISSUE_FINE_TUNE, "completed")]
    assert [(e, h.id) for e, h in fired] == [(3, "frozen_random_backbone"), (8, "val_stuck_at_chance")]
    frozen, stuck = fired[0][1], fired[1][1]
    assert frozen.evidence["seen_in"] == "curves" and frozen.evidence["phase"] == "head"
    assert frozen.evidence["loss"] == pytest.approx(LN5, abs=1e-3)
    assert frozen.evidence["chance_loss"] == pytest.approx(LN5, abs=1e-3)
    assert frozen.fixes == [{"training.mode": "from_scratch"}]
    assert "1.609" in frozen.message and "random weights" in frozen.message
    # Validation at chance in the 3rd epoch of fine-tuning (the jolted 1st not counted), with
    # the random backbone's BatchNorm statistics as the first cause and training from scratch
    # as the first fix.
    assert stuck.evidence["phase_epochs"] == 3 and stuck.evidence["after_head_phase"] is True
    assert stuck.evidence["causes"][0] == "frozen_random_backbone"
    assert stuck.fixes[0] == {"training.mode": "from_scratch"}
    assert stuck.message.index("BatchNorm statistics of a random backbone") < stuck.message.index("label")
    for _, hint in fired:
        assert not raises_a_head_rate(hint, FROZEN_RANDOM_CONFIG), hint
        for fix in hint.fixes:
            FROZEN_RANDOM_CONFIG.with_overrides(fix)
    # The same flat head phase on pretrained weights is a rate problem.
    pretrained = FROZEN_RANDOM_CONFIG.with_overrides({"model.weights": "imagenet"})
    assert [h.id for _, h in feed_epochs(five_class_diagnostics(pretrained), ISSUE_HEAD)] == ["lr_too_low"]


def test_stuck_at_chance_fires_from_the_first_two_epochs_of_a_run():
    # From scratch, one phase: its first 2 epochs are the evidence (5 classes, 0.44 vs 0.20).
    rows = curve("fine_tune", [(1.50, 0.38, 1.62, 0.2), (1.40, 0.44, 1.63, 0.21), (1.3, 0.5, 1.6, 0.2)])
    config = Config().with_overrides({"model.weights": "none"})
    fired = feed_epochs(five_class_diagnostics(config), rows)
    assert [(e, h.id) for e, h in fired] == [(2, "val_stuck_at_chance")]
    assert fired[0][1].evidence["causes"][0] == "batch_norm_statistics"
    assert fired[0][1].fixes == []  # the momentum is already 0.9 from scratch ("auto")


@pytest.mark.parametrize("rows", [
    # Validation at chance for one epoch only (BatchNorm catching up), then fine.
    curve("fine_tune", [(1.50, 0.40, 1.62, 0.2), (1.10, 0.60, 0.90, 0.65), (0.8, 0.7, 0.7, 0.75)]),
    # Training not clearly above chance (0.31 vs 0.20): underfitting, not a train/validation split.
    curve("fine_tune", [(2.02, 0.18, 1.61, 0.2), (1.71, 0.28, 1.62, 0.2), (1.65, 0.31, 1.64, 0.2)]),
    # Validation below chance (0.0, a class the model never predicts) while training is at chance.
    curve("fine_tune", [(1.61, 0.21, 1.7, 0.0), (1.60, 0.22, 1.7, 0.0), (1.60, 0.22, 1.7, 0.0)]),
], ids=["recovers", "training_barely_learns", "training_at_chance"])
def test_stuck_at_chance_stays_silent_without_a_clear_signal(rows):
    fired = feed_epochs(five_class_diagnostics(Config().with_overrides({"model.weights": "none"})), rows)
    assert "val_stuck_at_chance" not in [h.id for _, h in fired]


def test_stuck_at_chance_causes_follow_the_config():
    evidence = stuck_at_chance_evidence(curve("fine_tune", [(1.0, 0.7, 1.1, 0.33)] * 3), 1 / 3)
    pretrained = hints.val_stuck_at_chance(evidence, Config())
    # Pretrained BatchNorm layers stay frozen: their statistics are not a cause.
    assert pretrained.evidence["causes"] == ["validation_unlike_training", "label_mix_up"]
    assert pretrained.fixes == []
    folder = hints.val_stuck_at_chance(evidence, Config().with_overrides({"data.validation_dir": "/v"}))
    assert "separate validation folder" in folder.message


def test_plateau_is_phase_relative_and_informational():
    flat = [(0.5, 0.8, 0.40, 0.85)] + [(0.45, 0.82, 0.41, 0.85)] * 4
    fired = feed_epochs(make_diagnostics(), curve("head", flat))
    assert [(e, h.id, h.severity) for e, h in fired] == [(5, "plateau", "info")]
    # The same epochs split over two phases: neither phase has 4 stale epochs.
    split = curve("head", flat[:3]) + curve("fine_tune", flat[3:], 4)
    assert plateau_evidence(split) is None
    config = Config().with_overrides({"training.early_stopping.patience": 2})
    assert feed_epochs(make_diagnostics(config), curve("head", flat)) == []


# -- oscillating --------------------------------------------------------------------------------
def sampling_noise(level: float, batches: int, batch_size: int, seed: int = 0) -> list[float]:
    """Batch means of heavy-tailed per-image losses (exponential, mean ``level``): the noise
    of a healthy run, larger the smaller the batch."""
    rng = np.random.default_rng(seed)
    return list(rng.exponential(level, (batches, batch_size)).mean(axis=1))


def bouncing(batches: int, low: float = 0.15, high: float = 1.6, seed: int = 0) -> list[float]:
    """A rate just below divergence (sgd_near_divergence): low batches, then a jump to
    ln(C) and above every other batch or so, with no trend."""
    rng = np.random.default_rng(seed)
    return [high * rng.uniform(0.6, 1.4) if i % 2 else low * rng.uniform(0.5, 1.5) for i in range(batches)]


def test_a_swinging_loss_fires_oscillating_once_after_two_blocks():
    diagnostics = make_diagnostics()
    found, stopped = feed_batches(diagnostics, [1.1] + bouncing(200))
    assert stopped is None and [h.id for h in found] == ["oscillating"]
    hint = found[0]
    # The phase's first block is skipped; blocks 2 and 3 end at batch 48.
    assert hint.evidence["batch"] == 3 * OSCILLATION_BLOCK and hint.evidence["swing_ln_c"] >= 0.5
    assert hint.severity == "warning"
    assert hint.fixes == [{"optimizer.learning_rate": 3.3e-4}, {"data.batch_size": 128}]
    found, _ = feed_batches(diagnostics, bouncing(100, seed=1), phase="fine_tune", epoch=2)
    assert found == []  # once per run


@pytest.mark.parametrize("level, batch_size", [(0.3, 4), (1.0, 8), (0.05, 16)])
def test_sampling_noise_of_small_batches_is_not_oscillating(level, batch_size):
    # Real healthy runs: <= 0.36 ln C with batches of 4 (threshold 0.5). Exponential
    # per-image losses are more dispersed than real ones: at a level of ln C and batches of
    # 4 they would reach 0.51 (docs/hints.md: the limit of this check).
    found, _ = feed_batches(make_diagnostics(), sampling_noise(level, 400, batch_size))
    assert "oscillating" not in [h.id for h in found]
    assert make_diagnostics().statistics()["oscillation_swing_ln_c"] == 0.0


def test_a_phase_start_is_not_oscillating():
    diagnostics = make_diagnostics()
    # The first block of each phase is skipped: a loss that falls 2.5 -> 0.1 in a few
    # batches swings a lot but is just learning fast.
    falling = [2.5, 0.3, 1.8, 0.2, 1.2, 0.15, 0.9, 0.1] + [0.1] * 8 + sampling_noise(0.1, 40, 16)
    found, _ = feed_batches(diagnostics, falling)
    found += feed_batches(diagnostics, falling, phase="fine_tune", epoch=2)[0]
    assert found == []


def test_oscillation_state_stays_bounded_and_diverging_still_stops():
    diagnostics = make_diagnostics()
    found, stopped = feed_batches(diagnostics, [1.1] + bouncing(20_000))
    trace = diagnostics.traces["head"]
    assert stopped is None and len(trace.recent) <= 3 and [h.id for h in found] == ["oscillating"]
    found, stopped = feed_batches(diagnostics, [50.0] * 3, epoch=2)
    assert stopped is not None and [h.id for h in found] == ["lr_too_high"]


# -- underfitting, not_converged (end of the run) ---------------------------------------------------
# frozen_random_backbone: a linear head on random frozen SmallCNN features, 5 epochs.
FROZEN_RANDOM = curve("head", [(1.162, 0.278, 1.079, 0.370), (1.075, 0.431, 1.012, 0.481),
                               (1.014, 0.537, 0.945, 0.981), (0.918, 0.769, 0.885, 1.0),
                               (0.878, 0.773, 0.830, 1.0)])
# SmallCNN from scratch on hard shapes (colour rarely tells): 55 % on both sides.
SCRATCH_HARD = curve("fine_tune", [(1.386, 0.329, 1.191, 0.315), (1.030, 0.523, 1.148, 0.463),
                                   (0.993, 0.495, 1.076, 0.481), (1.026, 0.560, 1.088, 0.593),
                                   (0.960, 0.556, 1.030, 0.519)])
# stopped_too_soon: healthy from scratch at 1e-4, 3 epochs.
STOPPED_TOO_SOON = curve("fine_tune", [(0.937, 0.551, 0.754, 0.833), (0.510, 0.856, 0.350, 0.981),
                                       (0.308, 0.949, 0.189, 1.0)])
# Adam at 0.02 from scratch: val loss 0.196 -> 0.046 -> 0.001 falls, but nothing is left to gain.
CONVERGED_FAST = curve("fine_tune", [(0.250, 0.880, 0.196, 0.981), (0.055, 1.0, 0.046, 0.981),
                                     (0.018, 1.0, 0.001, 1.0)])


def finish(rows, config: Config | None = None, reason: str = "completed") -> list[Hint]:
    diagnostics = make_diagnostics(config)
    fired = [h for _, h in feed_epochs(diagnostics, rows)]
    return fired + diagnostics.finish(rows, reason)


def test_a_model_that_fits_neither_set_underfits():
    for rows in (FROZEN_RANDOM, SCRATCH_HARD):
        fired = finish(rows)
        assert [h.id for h in fired] == ["underfitting"], rows[0]
    hint = finish(FROZEN_RANDOM, Config().with_overrides({"training.fine_tune_epochs": 0}))[0]
    assert hint.severity == "warning" and hint.evidence["loss_fraction"] == pytest.approx(0.80, abs=0.01)
    # Still improving (0.945 -> 0.830): one hint, not_converged folded in, more epochs first.
    assert hint.evidence["still_improving"] is True
    assert hint.fixes[0] == {"training.head_epochs": 10}
    assert {"training.fine_tune_epochs": 5} in hint.fixes and {"model.head.hidden_units": [256]} in hint.fixes
    plateaued = finish(SCRATCH_HARD)[0]
    assert plateaued.evidence["still_improving"] is False
    assert plateaued.fixes[0] == {"training.fine_tune_layers": 60}


def test_underfitting_fires_once_and_only_when_the_run_ended():
    diagnostics = make_diagnostics()
    assert [h.id for h in diagnostics.finish(SCRATCH_HARD, "completed")] == ["underfitting"]
    assert diagnostics.finish(SCRATCH_HARD, "completed") == []
    assert [h.id for h in make_diagnostics().finish(SCRATCH_HARD, "early_stopping")] == ["underfitting"]
    for reason in ("stopped", "diverged"):
        assert make_diagnostics().finish(SCRATCH_HARD, reason) == []


@pytest.mark.parametrize("rows", [HEALTHY_TRANSFER, HEALTHY_SCRATCH, TINY_DATA, CONVERGED_FAST])
def test_fitting_models_do_not_underfit(rows):
    assert underfitting_evidence(rows, 3, 1 / 3) is None
    assert "underfitting" not in [h.id for h in finish(rows)]


def test_a_specific_cause_replaces_underfitting():
    # Heavy regularization and a rate far too low also leave both losses high: the
    # specific hint says why, underfitting would repeat it.
    config = Config().with_overrides({"model.head.dropout": 0.8, "regularization.label_smoothing": 0.3})
    # Its validation loss still falls (1.098 -> 0.935): not_converged (info) is true as well.
    assert [h.id for h in finish(HEAVY_REGULARIZATION, config)] == ["too_much_regularization",
                                                                    "not_converged"]
    assert [h.id for h in finish(LR_FAR_TOO_LOW)] == ["lr_too_low"]


@pytest.mark.parametrize("rows", [ISSUE_HEAD, FROZEN_RANDOM, curve("head", [(0.5, 0.8, 0.40, 0.85)] * 6),
                                  curve("head", [(1.0, 0.7, 1.1, 0.33)] * 3)],
                         ids=["flat_at_ln_c", "underfits", "plateau", "stuck_at_chance"])
def test_no_hint_raises_the_head_rate_on_a_frozen_random_backbone(rows):
    config = FROZEN_RANDOM_CONFIG.with_overrides({"training.mode": "head_only"})
    diagnostics = make_diagnostics(config)
    found = [h for _, h in feed_epochs(diagnostics, rows)] + diagnostics.finish(rows, "completed")
    assert found  # each curve raises something
    for hint in found:
        assert hint.id != "lr_too_low" and not raises_a_head_rate(hint, config), hint
        assert "higher learning rate" not in hint.message
        for fix in hint.fixes:
            config.with_overrides(fix)
    underfits = [h for h in found if h.id == "underfitting"]
    assert all(h.fixes == [{"training.mode": "from_scratch"}] for h in underfits)


def test_label_smoothing_entropy_is_not_underfitting():
    # Targets (0.8, 0.1, 0.1) have entropy 0.64 nats: a perfect model scores that.
    floor = smoothed_target_entropy(0.3, 3)
    assert floor == pytest.approx(0.639, abs=1e-3)
    rows = curve("head", [(0.70 + 0.05 * i, 0.7, 0.68, 0.75) for i in range(3)])
    assert underfitting_evidence(rows, 3, 1 / 3) is not None  # without the floor
    assert underfitting_evidence(rows, 3, 1 / 3, floor=floor) is None


def test_still_improving_at_the_end_is_not_converged():
    fired = finish(STOPPED_TOO_SOON, Config().with_overrides({"training.fine_tune_epochs": 3}))
    assert [(h.id, h.severity) for h in fired] == [("not_converged", "info")]
    assert fired[0].evidence["values"] == [0.754, 0.35, 0.189]
    assert fired[0].fixes == [{"training.fine_tune_epochs": 6}]


@pytest.mark.parametrize("rows", [HEALTHY_SCRATCH, CONVERGED_FAST, TINY_DATA, STOPPED_TOO_SOON[:2]])
def test_converged_or_noisy_runs_are_not_flagged(rows):
    assert convergence_evidence(rows) is None


def test_not_converged_needs_a_completed_run_and_skips_the_fine_tune_jolt():
    assert make_diagnostics().finish(STOPPED_TOO_SOON, "early_stopping") == []
    assert make_diagnostics().finish(STOPPED_TOO_SOON, "stopped") == []
    # A fine-tuning phase of 3 epochs whose first epoch recovers from the jolt: only 2 usable.
    rows = HEALTHY_TRANSFER[:3] + curve("fine_tune", [(0.5, 0.8, 0.9, 0.7), (0.4, 0.85, 0.6, 0.8),
                                                      (0.3, 0.9, 0.4, 0.85)], 4)
    assert convergence_evidence(rows) is None
    assert convergence_evidence(rows + curve("fine_tune", [(0.25, 0.92, 0.3, 0.9)], 7)) is not None


def test_not_converged_on_val_accuracy():
    rows = curve("head", [(0.9, 0.6, 0.8, 0.60), (0.7, 0.7, 0.7, 0.65), (0.6, 0.75, 0.65, 0.70)])
    assert convergence_evidence(rows, "val_accuracy")["improvement"] == pytest.approx(0.1)
    flat = curve("head", [(0.9, 0.6, 0.8, 0.60), (0.7, 0.7, 0.7, 0.61), (0.6, 0.75, 0.65, 0.62)])
    assert convergence_evidence(flat, "val_accuracy") is None


# -- data ---------------------------------------------------------------------------------------
def report(train, validation) -> DataReport:
    return DataReport(root="x", classes=list(train), train_counts=train, validation_counts=validation)


def test_class_imbalance_fires_from_a_ratio_of_three():
    diagnostics = make_diagnostics()
    found = diagnostics.check_data(report({"a": 90, "b": 30, "c": 40}, {"a": 20, "b": 20, "c": 20}), [], [])
    assert [h.id for h in found] == ["class_imbalance"]
    assert found[0].fixes == [{"data.class_weight": "balanced"}]
    assert diagnostics.check_data(report({"a": 90, "b": 30, "c": 40}, {"a": 20, "b": 20, "c": 20}), [], []) == []
    assert make_diagnostics().check_data(report({"a": 87, "b": 30}, {"a": 30, "b": 30}), [], []) == []
    balanced = make_diagnostics(Config().with_overrides({"data.class_weight": "balanced"}))
    found = balanced.check_data(report({"a": 90, "b": 10}, {"a": 30, "b": 30}), [], [])
    assert found[0].severity == "info" and found[0].fixes == []


def test_val_too_small_counts_images_and_classes():
    assert make_diagnostics().check_data(report({"a": 100, "b": 100}, {"a": 25, "b": 25}), [], []) == []
    found = make_diagnostics().check_data(report({"a": 100, "b": 100}, {"a": 25, "b": 24}), [], [])
    assert [h.id for h in found] == ["val_too_small"]
    assert found[0].evidence["points_per_image"] == pytest.approx(100 / 49, abs=0.01)
    found = make_diagnostics().check_data(report({"a": 200, "b": 20}, {"a": 60, "b": 4}), [], [])
    assert [h.id for h in found] == ["class_imbalance", "val_too_small"]
    assert found[1].fixes == [{"data.validation_split": 0.25}]  # 24 images of "b" -> 6


def shapes(tmp_path, name, size=64, **kwargs):
    return make_shapes_dataset(tmp_path / name, classes=2, per_class=12, size=size, easy=True, **kwargs)


def files_of(root):
    return sorted(str(p) for p in root.rglob("*.png")) + sorted(str(p) for p in root.rglob("*.jpg"))


def test_data_leakage_finds_exact_and_resaved_copies(tmp_path):
    train = shapes(tmp_path, "train", seed=1)
    validation = shapes(tmp_path, "validation", seed=2)
    source = sorted((train / "circle").iterdir())
    shutil.copy(source[0], validation / "circle" / "copy.png")
    buffer = io.BytesIO()
    Image.open(source[1]).convert("RGB").save(buffer, "JPEG", quality=80)
    (validation / "circle" / "resaved.jpg").write_bytes(buffer.getvalue())
    Image.open(source[2]).resize((32, 32)).save(validation / "circle" / "smaller.png")
    found = make_diagnostics().check_data(report({"a": 24}, {"a": 27}), files_of(train), files_of(validation))
    leak = next(h for h in found if h.id == "data_leakage")
    assert leak.evidence["exact"] == 1 and leak.evidence["near"] == 2
    pairs = {(p["train"], p["validation"].rsplit("/", 1)[-1]) for p in leak.evidence["pairs"]}
    assert pairs == {(str(source[0]), "copy.png"), (str(source[1]), "resaved.jpg"),
                     (str(source[2]), "smaller.png")}


def test_no_leakage_between_different_images(tmp_path):
    train, validation = shapes(tmp_path, "train", seed=1), shapes(tmp_path, "validation", seed=2)
    found = make_diagnostics().check_data(report({"a": 24}, {"a": 24}), files_of(train), files_of(validation))
    assert [h.id for h in found] == ["val_too_small"]


def test_near_duplicate_check_is_skipped_beyond_its_time_budget(tmp_path, monkeypatch):
    train = shapes(tmp_path, "train", seed=1)
    validation = shapes(tmp_path, "validation", seed=2)
    shutil.copy(sorted((train / "circle").iterdir())[0], validation / "circle" / "copy.png")
    monkeypatch.setattr(duplicates, "_PROBE_FILES", 4)
    monkeypatch.setattr(duplicates, "NEAR_DUPLICATE_SECONDS_BUDGET", 0.0)
    found = make_diagnostics().check_data(report({"a": 100}, {"a": 100}), files_of(train), files_of(validation))
    assert [h.id for h in found] == ["duplicate_check_skipped", "data_leakage"]
    assert found[1].evidence["exact"] == 1  # byte-identical copies are still found


def test_flat_images_are_not_near_duplicates_of_each_other(tmp_path):
    for name, colour in (("red", (200, 0, 0)), ("blue", (0, 0, 200))):
        Image.new("RGB", (64, 64), colour).save(tmp_path / f"{name}.png")
    assert duplicates.near_duplicates([str(tmp_path / "red.png")], [str(tmp_path / "blue.png")]) == []


# -- gradients ------------------------------------------------------------------------------------
def test_gradient_checks():
    healthy = {"total": 0.08, "backbone_bottom": 6e-4, "backbone_middle": 1.6e-4,
               "backbone_top": 8.6e-5, "head": 3e-3}
    assert vanishing_evidence(healthy) is None and exploding_evidence(healthy, healthy) is None
    vanishing = dict(healthy, backbone_bottom=1e-8)
    assert vanishing_evidence(vanishing)["group"] == "backbone_bottom"
    assert exploding_evidence({"total": float("nan")}, None)["kind"] == "non_finite"
    assert exploding_evidence({"total": 112.0}, {"total": 2.72}) is None  # VGG16 from scratch, learned
    assert exploding_evidence({"total": 500.0}, {"total": 2.0})["growth"] == 250.0


def test_gradient_hints_fire_once_per_run():
    diagnostics = make_diagnostics(Config().with_overrides({"training.fine_tune_layers": "all"}))
    feed_batches(diagnostics, [1.1] * 5, phase="fine_tune")
    norms = {"total": 1.0, "backbone_bottom": 1e-9, "backbone_top": 1e-4, "head": 1e-3}
    assert [h.id for h in diagnostics.observe_gradients(1, norms)] == ["vanishing_gradients"]
    assert diagnostics.observe_gradients(2, norms) == []
    found = diagnostics.observe_gradients(3, dict(norms, total=1000.0))
    assert [h.id for h in found] == ["exploding_gradients"]
    assert found[0].fixes == [{"optimizer.clipnorm": 1.0}, {"training.fine_tune_learning_rate": 1e-5}]


# -- every fix is a valid config change -------------------------------------------------------------
HEAVY = Config().with_overrides({
    "model.head.dropout": 0.9, "regularization.l2": 0.5, "regularization.l1": 0.01,
    "regularization.label_smoothing": 0.4, "augmentation.mixup": 0.8, "augmentation.cutmix": 0.5,
    "augmentation.cutout": 0.4, "augmentation.randaugment": 0.9, "augmentation.gaussian_noise": 0.4,
    "augmentation.rotation": 0.5, "augmentation.zoom": 0.8, "augmentation.translation": 0.5,
    "augmentation.random_crop": 0.5, "augmentation.brightness": 0.9, "augmentation.contrast": 0.9,
    "augmentation.saturation": 0.9, "augmentation.hue": 0.4})
BARE = Config().with_overrides({"model.head.dropout": 0.0, "augmentation.horizontal_flip": False,
                                "augmentation.rotation": 0.0, "augmentation.zoom": 0.0,
                                "augmentation.translation": 0.0, "model.weights": "none",
                                "model.batch_norm_momentum": 0.999,
                                "training.fine_tune_layers": "all"})


def every_hint(config: Config | None) -> list[Hint]:
    """Each builder once, on the evidence of the synthetic curves above."""
    context = {"phase": "head", "learning_rate": 1e-3, "config": config}
    frozen_random = config if config is not None and config.model.weights == "none" else FROZEN_RANDOM_CONFIG
    built = [
        hints.frozen_random_backbone(frozen_random),
        hints.frozen_random_backbone(frozen_random, lr_too_low_evidence(ISSUE_HEAD, 5)),
        hints.val_stuck_at_chance(stuck_at_chance_evidence(ISSUE_HEAD[:1] + ISSUE_FINE_TUNE, 0.2), frozen_random),
        hints.lr_too_high("head", 1, 3, 273.0, 3.0, reason="test"),
        hints.lr_too_high("fine_tune", 1, 3, 273.0, 1e-5, reason="test"),
        hints.initial_loss_off("high", 4.0, 4.0, 3, batches=5, config=config),
        hints.initial_loss_off("low", 0.2, 0.2, 3, batches=5, config=config),
        hints.lr_too_low(lr_too_low_evidence(LR_FAR_TOO_LOW, 3), context),
        hints.lr_too_low(lr_too_low_evidence(LR_FAR_TOO_LOW, 3), dict(context, learning_rate=5.0)),
        hints.overfitting(overfitting_evidence(TINY_DATA), config),
        hints.too_much_regularization(regularization_gap_evidence(HEAVY_REGULARIZATION, 3), config),
        hints.val_stuck_at_chance(stuck_at_chance_evidence(
            curve("head", [(1.0, 0.7, 1.1, 0.33)] * 3), 1 / 3), config),
        hints.plateau(plateau_evidence(curve("head", [(0.5, 0.8, 0.4, 0.85)] * 6)), config),
        data_hints.class_imbalance({"a": 90, "b": 10}, False),
        data_hints.val_too_small({"a": 100, "b": 100}, {"a": 10, "b": 10}, config),
        hints.exploding_gradients({"kind": "growth", "total_norm": 500.0, "previous_total_norm": 2.0,
                                   "growth": 250.0, "epoch": 3}, "head", context),
        hints.vanishing_gradients({"group": "backbone_bottom", "ratio": 1e-6, "epoch": 2}, config),
        hints.oscillating({"phase": "head", "epoch": 1, "batch": 48, "swing": 0.7, "swing_ln_c": 0.64,
                           "block": 16, "recent_loss": 0.8, "learning_rate": 0.05}, context),
        hints.underfitting(dict(underfitting_evidence(FROZEN_RANDOM, 3, 1 / 3), still_improving=True),
                           context),
        hints.underfitting(dict(underfitting_evidence(SCRATCH_HARD, 3, 1 / 3), still_improving=False),
                           dict(context, phase="fine_tune")),
        hints.not_converged(convergence_evidence(STOPPED_TOO_SOON), config),
    ]
    return [h for h in built if h is not None]


@pytest.mark.parametrize("config", [None, HEAVY, BARE], ids=["defaults", "heavy", "bare"])
def test_every_fix_is_accepted_by_the_config(config):
    built = every_hint(config)
    assert len(built) >= 20
    for hint in built:
        assert hint.id in HINT_IDS, hint.id
        json.dumps(hint.to_dict())  # plain values only: it crosses processes and lands in events.jsonl
        # Each fix fits the config it was made for (a frozen random backbone's: one with
        # random weights; `training.mode: from_scratch` needs them).
        target = config or Config()
        if "training.mode" in str(hint.fixes) and target.model.weights != "none":
            target = FROZEN_RANDOM_CONFIG
        for fix in hint.fixes:
            target.with_overrides(fix)


def test_fixes_the_run_config_refuses_are_dropped():
    # A floor above the suggested rate would make the lower rate invalid for this config.
    config = Config().with_overrides({"optimizer.learning_rate": 1e-3, "schedule.min_learning_rate": 5e-4})
    diagnostics = make_diagnostics(config)
    found, _ = feed_batches(diagnostics, [1.1, 1.0, float("inf")])
    assert found[0].id == "lr_too_high" and found[0].fixes == []

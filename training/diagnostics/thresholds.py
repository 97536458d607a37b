"""Every number the diagnostics judge by, with the evidence behind it.

Each threshold was chosen from the scenario runs in ``benchmarks/diagnostics_scenarios.py``;
``docs/hints.md`` gives the numbers and the reasoning for each hint. Both the curve checks
(``monitor``) and the hint texts (``hints``) read them from here.
"""

HINT_IDS = (
    "lr_too_high", "initial_loss_off", "lr_too_low", "overfitting", "too_much_regularization",
    "val_stuck_at_chance", "plateau", "class_imbalance", "val_too_small", "data_leakage",
    "duplicate_check_skipped", "exploding_gradients", "vanishing_gradients",
    "oscillating", "underfitting", "not_converged", "frozen_random_backbone",
)

# -- batch level -------------------------------------------------------------------------
# The first batch's loss is computed before any update: it is the untrained model's loss.
# The divergence reference is the smallest of a phase's first batches (a rate far too high
# can blow the loss up from the second batch on, so their mean would be contaminated),
# never below ln(C): after the head phase the loss can be tiny and 3x tiny is noise.
REFERENCE_BATCHES = 5
DIVERGENCE_FACTOR = 3.0
# Mean of the last 3 batches: one unlucky batch cannot stop a run.
DIVERGENCE_WINDOW = 3
# A fresh softmax head predicts ~uniformly, so its cross-entropy is ln(C) whatever the
# targets (one-hot, smoothed, mixed): sum_i t_i * ln(C) = ln(C). Large input features
# spread the initial logits and add to it: up to +1.7 nats in the healthy scenarios
# (pretrained stand-in backbone, heavy dropout); +2.5 means a head that starts confidently
# wrong. Below half of ln(C) the untrained model already "knows" the labels: a leak.
INITIAL_LOSS_MAX_EXCESS = 2.5
INITIAL_LOSS_MIN_FRACTION = 0.5
# oscillating: the mean batch-to-batch swing |loss_t - loss_t-1| over a block of 16
# batches >= 0.5 ln C and >= 0.5 x the block's mean loss, in two consecutive blocks of a
# phase (its first block, where the loss falls fast, not counted). Healthy runs: <= 0.24
# ln C with batches of 8-16, 0.36 with batches of 4 on a hard task (sampling noise alone);
# a frozen head at 1e-6, whose loss sits at 2.2 ln C, swung 0.48 ln C but only 0.2 x its
# level. SGD (momentum 0.9) at 0.05 with batches of 4, just below divergence: 0.56 ln C and
# about its level; at 0.1 (diverged): 1.04 ln C.
OSCILLATION_BLOCK = 16
OSCILLATION_SWING_LN_C = 0.5
OSCILLATION_SWING_RELATIVE = 0.5

# -- epoch level -------------------------------------------------------------------------
# lr_too_low: after >= 3 epochs (plus any warm-up) and >= 20 steps of a phase, both
# losses improved < 5 % and validation is still near chance (>= 0.8 ln C). Scenarios: a
# rate of 1e-6 gained 0.1 %, the healthy phases 64 % and 83 % by their third epoch.
LOW_LR_MIN_EPOCHS = 3
LOW_LR_MIN_STEPS = 20
LOW_LR_MAX_IMPROVEMENT = 0.05
LOW_LR_NEAR_CHANCE = 0.8
# overfitting: for the last 2 epochs validation loss >= 1.2 x its best + 0.05 nats (the
# absolute part keeps 0.004 -> 0.009 from counting) while the training loss kept falling
# and validation accuracy did not improve; or training accuracy >= 0.9 with validation
# accuracy 0.3 or more below it.
OVERFIT_WINDOW = 2
OVERFIT_RISE_FACTOR = 1.2
OVERFIT_RISE_NATS = 0.05
OVERFIT_ACCURACY_GAP = 0.3
OVERFIT_MIN_TRAIN_ACCURACY = 0.9
# too_much_regularization: the training loss (dropout, augmentation on) above the
# validation loss at mid-epoch (mean of the previous and this epoch's, which removes the
# lag of an epoch mean while the model still learns fast) by >= 0.25 ln C and >= 25 %,
# two epochs running. Healthy runs: <= 0.08 nats; heavy regularization: 0.45-0.9. The
# entropy of MixUp/CutMix targets is taken off the training loss first (no model gets
# below it: it is not underfitting).
REGULARIZATION_GAP_LN_C = 0.25
REGULARIZATION_GAP_RELATIVE = 0.25
# val_stuck_at_chance: validation accuracy within 0.05 of predicting the largest validation
# class while training accuracy is >= 0.15 above both it and that chance level, two epochs
# running (a phase's first two, or its 2nd and 3rd after a phase change). Healthy runs: training
# accuracy never above validation accuracy early on; a frozen random MobileNetV2 fine-tuned:
# 0.37-0.45 above chance (3 classes); the 5-class run: 0.44 vs 0.20 (0.24), which
# the earlier 0.3 missed for good.
CHANCE_MARGIN = 0.05
CHANCE_TRAIN_GAP = 0.15
# plateau: the monitored metric's best in this phase is >= 4 epochs old (val_loss by 1 %
# relative, val_accuracy by 0.005).
PLATEAU_EPOCHS = 4
# underfitting (at the end of the run): over the last 2 epochs both losses, less what no
# model can remove (label smoothing, mixed targets), still >= half of ln C (minus that
# floor), validation no worse than training by more than 0.15 ln C, and training accuracy
# below chance + 0.8 x (1 - chance). Healthy runs end at <= 0.03 of ln C (a short run still
# improving fast: 0.17); a frozen random backbone under a linear head ends at 0.76, SmallCNN
# from scratch on a hard task at 0.87.
UNDERFIT_LOSS_FRACTION = 0.5
UNDERFIT_MAX_GAP_LN_C = 0.15
UNDERFIT_MAX_SKILL = 0.8
# not_converged (at the end of a completed run): the monitored metric improved in each of
# the last 2 epochs of the last phase (never its jolted first epoch) and its last value is
# the phase's best; val_loss by >= 10 % and >= 0.05 nats over the 2 epochs, val_accuracy
# by >= 0.03; and there must be that much left to gain (a validation loss of 0.001 that
# fell from 0.2 has converged). Healthy runs that had converged: <= 0.006 nats (or not
# improving at all, or ending below 0.04 nats); a from-scratch run stopped after 3 epochs
# at 1e-4: 0.565 nats (75 %), ending at 0.19.
NOT_CONVERGED_WINDOW = 3
NOT_CONVERGED_RELATIVE = 0.10
NOT_CONVERGED_NATS = 0.05
NOT_CONVERGED_ACCURACY = 0.03

# -- data --------------------------------------------------------------------------------
IMBALANCE_RATIO = 3.0
# Below 50 validation images one image moves accuracy by more than 2 percentage points;
# below 5 images a class's accuracy moves in steps of 20 points or more.
VAL_MIN_IMAGES = 50
VAL_MIN_PER_CLASS = 5
MAX_LISTED_DUPLICATES = 20

# -- gradients (training.diagnostics.gradients.GradientProbe) ------------------------------------------
# The weakest backbone group's RMS gradient relative to the head's, in runs that learned:
# SmallCNN from scratch 0.02-0.03, fine-tuned 0.06-0.3, VGG16 from scratch 0.006-0.08
# (SGD, slow), MobileNetV2 from scratch 0.2-10. 1e-3 is 6x below the smallest of them.
VANISHING_RATIO = 1e-3
# The global norm swings with the loss (it scales with p - y): VGG16 from scratch went
# 2.7 -> 112 (41x) in one epoch and still learned. Only a 100x jump to >= 10, or a
# non-finite norm, counts.
EXPLODING_GROWTH = 100.0
EXPLODING_MIN_NORM = 10.0

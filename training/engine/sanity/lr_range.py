"""``lr_range_test``: the smoothed training loss at exponentially growing learning rates
(Smith 2017, "Cyclical Learning Rates", section 3.3; the fastai learning-rate finder)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from training.config import Config
from training.diagnostics.hints import frozen_random_backbone as frozen_random_backbone_hint
from training.diagnostics.wording import learning_rate_key, rounded_rate
from training.engine.optim import build_optimizer
from training.engine.phase import set_trainable
from training.engine.recipe import first_phase, frozen_random_backbone, phase_learning_rate
from training.engine.sanity.common import (
    EventCallback,
    Setup,
    build,
    emit_hints,
    keeps_float32_after,
    prepare,
    quiet,
)
from training.events import Hint, Log

# The smoothing of the loss curve (fastai: 0.98, with bias correction), and the end of the
# test once the smoothed loss passes 4x its minimum (fastai's rule).
SMOOTHING = 0.98
DIVERGED_FACTOR = 4.0
# How far the smoothed loss must fall below its start for the curve to say something. Under
# 2 % it is flat, within the noise of its average over ~50 batches (a head on a frozen random
# MobileNetV2: 0.00007 %, its minimum anywhere). From 2 % to 10 % it fell only a little: its
# steepest point is still a cautious rate, not a sign that the setup is broken. From 10 % on
# the curve is clear. Measured with SmallCNN from scratch: easy shapes 78 %; hard shapes 10 %
# with batches of 64, and with batches of 16 never below its first step.
MIN_FALL = 0.02
CLEAR_FALL = 0.10


@dataclass
class LRRangeResult:
    learning_rates: list[float]
    losses: list[float]                    # smoothed
    raw_losses: list[float]
    suggested_learning_rate: float | None  # the smaller of the two below (see lr_range_test)
    min_loss_learning_rate: float | None   # where the smoothed loss is lowest
    steepest_learning_rate: float | None   # where it falls fastest (per decade of rate)
    phase: str
    fall: float | None = None              # how much the smoothed loss fell, relative to its start
    # What the curve says, for every reader to word alike: "clear" (a rate, the loss fell by
    # CLEAR_FALL or more), "shallow" (a cautious rate: it fell only a little) or "none" (no rate).
    verdict: str = "none"
    learning_rate_key: str = ""            # the setting that sets the measured phase's rate
    diverged: bool = False
    stopped: bool = False
    hints: list[Hint] = field(default_factory=list)


class ExponentialRange(keras.optimizers.schedules.LearningRateSchedule):
    """``min_lr * (max_lr / min_lr) ** (step / (steps - 1))``: one decade every
    ``(steps - 1) / log10(max_lr / min_lr)`` steps."""

    def __init__(self, min_lr: float, max_lr: float, steps: int):
        self.min_lr, self.max_lr, self.steps = float(min_lr), float(max_lr), int(steps)

    def __call__(self, step):
        fraction = keras.ops.cast(step, "float32") / float(max(1, self.steps - 1))
        return self.min_lr * keras.ops.power(self.max_lr / self.min_lr, fraction)

    def rate(self, step: int) -> float:
        return self.min_lr * (self.max_lr / self.min_lr) ** (step / max(1, self.steps - 1))

    def get_config(self) -> dict[str, Any]:
        return {"min_lr": self.min_lr, "max_lr": self.max_lr, "steps": self.steps}


@keeps_float32_after
def lr_range_test(config: Config, *, steps: int = 150, min_lr: float = 1e-7, max_lr: float = 10.0,
                  model: keras.Model | None = None, on_event: EventCallback | None = None,
                  stop: threading.Event | None = None) -> LRRangeResult:
    """The smoothed training loss at exponentially growing learning rates.

    Runs on a throwaway model: a fresh one built from ``config`` (its first phase's layers
    trainable), or a clone of ``model`` with copied weights, so the caller's weights are
    never touched. The run's optimizer, loss, augmentation and class weights are used.
    Stops early once the smoothed loss passes 4x its minimum (it diverged).

    Returns:
        Plain lists for plotting: ``learning_rates``, ``losses`` (smoothed),
        ``raw_losses``. ``suggested_learning_rate`` is the smaller of two common rules:
        the rate where the smoothed loss falls fastest, and a tenth of the rate at its
        minimum (the minimum itself is where the loss turns up: too high to train at).
        Either alone can be far too high: on a from-scratch SmallCNN with Adam the
        minimum was at 2.3, and a run at a tenth of it (0.23) diverged at its 3rd batch,
        while the steepest point (9.4e-4) trained to 100 %; for a head on a frozen
        backbone both worked (steepest 0.006, a tenth of the minimum 1.0). None when the
        curve suggests nothing: the loss never fell by ``MIN_FALL``, or was lowest among
        the first noisy steps, or the head trains on a frozen backbone with random
        weights (no rate helps it; a hint says so).

    Raises:
        ValueError: ``steps`` < 10 or ``0 < min_lr < max_lr`` violated.
    """
    if steps < 10:
        raise ValueError(f"`steps` must be >= 10. Received: steps={steps}")
    if not 0 < min_lr < max_lr:
        raise ValueError(f"`min_lr` must be > 0 and < `max_lr`. Received: min_lr={min_lr}, max_lr={max_lr}")
    on_event = on_event or quiet
    stop = stop or threading.Event()
    setup = prepare(config, augment=True, on_event=on_event)
    config, data = setup.config, setup.data
    phase = first_phase(config)
    throwaway = _throwaway_model(setup, model, phase)
    schedule = ExponentialRange(min_lr, max_lr, steps)
    throwaway.compile(optimizer=build_optimizer(config.optimizer, schedule),
                      loss=keras.losses.CategoricalCrossentropy(
                          label_smoothing=config.regularization.label_smoothing),
                      jit_compile=setup.precision.jit_compile)
    on_event(Log(f"Learning-rate range test: {steps} batches from {min_lr:.0e} to {max_lr:.0e} ..."))
    rates, raw, smoothed = [], [], []
    average, best, diverged, stopped = 0.0, math.inf, False, False
    for step, (images, labels) in enumerate(_batches(data, steps)):
        if stop.is_set():
            stopped = True
            break
        loss = float(np.asarray(throwaway.train_on_batch(
            images, labels, sample_weight=_sample_weights(data, labels))).reshape(-1)[0])
        if not math.isfinite(loss):
            diverged = True
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        value = average / (1 - SMOOTHING ** (step + 1))  # bias correction of the early average
        rates.append(schedule.rate(step))
        raw.append(loss)
        smoothed.append(value)
        best = min(best, value)
        if step >= 10 and value > DIVERGED_FACTOR * best:
            diverged = True
            break
        if (step + 1) % max(1, steps // 10) == 0:
            on_event(Log(f"Step {step + 1}/{steps}: rate {rates[-1]:.2e}, smoothed loss {value:.4f}"))
    result = LRRangeResult(learning_rates=rates, losses=smoothed, raw_losses=raw, phase=phase,
                           suggested_learning_rate=None, min_loss_learning_rate=None,
                           steepest_learning_rate=None, diverged=diverged, stopped=stopped)
    found = judge_curve(result, config)
    if not stopped:
        result.hints = emit_hints(found, on_event)
    return result


def judge_curve(result: LRRangeResult, config: Config) -> list[Hint]:
    """Reads the measured curve of ``result``: fills its fall, rates and verdict, and returns
    the hints that say what it means (at most one; see ``_range_hints``)."""
    _suggest(result)
    result.learning_rate_key = learning_rate_key(result.phase, config)
    if result.phase == "head" and frozen_random_backbone(config):
        # Random features: no rate helps them, and the hint says why.
        result.suggested_learning_rate, result.verdict = None, "none"
    return _range_hints(result, config)


def _throwaway_model(setup: Setup, model: keras.Model | None, phase: str) -> keras.Model:
    if model is None:
        classifier = build(setup, setup.config.regularization)
        set_trainable(classifier, setup.config, phase)
        return classifier.model
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _batches(data: Any, steps: int):
    """``steps`` training batches, going over the data as many times as needed."""
    produced, epoch = 0, 0
    while produced < steps:
        data.start_epoch(epoch)
        empty = True
        for images, labels in data.train:
            empty = False
            yield images, labels
            produced += 1
            if produced >= steps:
                return
        if empty:
            raise ValueError("No training image could be decoded.")
        epoch += 1


def _sample_weights(data: Any, labels: Any) -> np.ndarray | None:
    if not data.class_weight:
        return None
    weights = np.array([data.class_weight[i] for i in range(len(data.classes))], dtype=np.float32)
    return weights[np.argmax(np.asarray(labels), axis=1)]


def _suggest(result: LRRangeResult) -> None:
    """Fills the fall, the minimum-loss, steepest and suggested rates from the smoothed curve;
    a rate is suggested only where the curve shows a descent to measure."""
    losses = np.asarray(result.losses)
    if len(losses) < 5:
        return
    rates = np.asarray(result.learning_rates)
    lowest = int(np.argmin(losses))
    result.fall = float(1.0 - losses[lowest] / losses[0]) if losses[0] > 0 else 0.0
    result.min_loss_learning_rate = float(rates[lowest])
    # The first steps are noise (the smoothing has barely started, the rates change
    # nothing yet): like fastai's lr_find, look for the steepest descent after them.
    skip = max(3, len(losses) // 10)
    if lowest - skip < 2 or result.fall < MIN_FALL:
        return  # lowest at the start, or flat: no descent, no rate to suggest
    window = slice(skip, lowest + 1)
    slopes = np.gradient(losses[window], np.log10(rates[window]))
    result.steepest_learning_rate = float(rates[skip + int(np.argmin(slopes))])
    suggestion = min(rates[lowest] / 10, result.steepest_learning_rate)
    result.suggested_learning_rate = float(f"{suggestion:.2g}")
    result.verdict = "clear" if result.fall >= CLEAR_FALL else "shallow"


def _range_hints(result: LRRangeResult, config: Config) -> list[Hint]:
    """At most one hint, whose words agree with the result: "inconclusive" only when no
    rate is suggested, and a suggested rate always with what the curve says about it."""
    if result.phase == "head" and frozen_random_backbone(config):
        return [frozen_random_backbone_hint(config)]
    suggested = result.suggested_learning_rate
    if suggested is None:
        return [_inconclusive(result)]
    key = learning_rate_key(result.phase, config)
    current = phase_learning_rate(config, result.phase)
    start, lowest = result.losses[0], min(result.losses)
    evidence = {"suggested": suggested, "min_loss_rate": result.min_loss_learning_rate,
                "steepest_rate": result.steepest_learning_rate, "configured": current,
                "first_loss": round(start, 4), "lowest_loss": round(lowest, 4),
                "fall": round(result.fall or 0.0, 4)}
    if result.verdict != "clear":
        differs = rounded_rate(suggested) != rounded_rate(current)
        return [Hint(id="lr_range_shallow", severity="info",
                     title=f"Suggested learning rate: {suggested:.2g}, a cautious choice",
                     message=(f"The smoothed loss fell only a little over the range ({start:.3f} -> "
                              f"at best {lowest:.3f}, {100 * (result.fall or 0.0):.0f} %), so the "
                              f"curve says little. {suggested:.2g}, the smaller of the rate where "
                              f"it fell fastest ({result.steepest_learning_rate:.2g}) and a tenth "
                              f"of the rate where it was lowest ({result.min_loss_learning_rate:.2g}), "
                              f"is a cautious choice (the configured rate is {current:.2g}). If "
                              "training then stalls, check the setup with `python main.py check`."),
                     evidence=evidence, fixes=[{key: rounded_rate(suggested)}] if differs else [])]
    if current / suggested >= 10 or suggested / current >= 10:
        return [Hint(id="lr_range_suggestion", severity="info",
                     title=f"Suggested learning rate: {suggested:.2g}",
                     message=(f"The loss fell fastest near {result.steepest_learning_rate or suggested:.2g} "
                              f"and was lowest at {result.min_loss_learning_rate:.2g}. The suggested "
                              f"{suggested:.2g} (the smaller of the first and a tenth of the second) "
                              f"is {max(current / suggested, suggested / current):.0f} times "
                              f"{'lower' if suggested < current else 'higher'} than the configured "
                              f"{current:.2g}."),
                     evidence=evidence, fixes=[{key: rounded_rate(suggested)}])]
    return []


def _inconclusive(result: LRRangeResult) -> Hint:
    losses = result.losses
    if len(losses) < 5:
        return Hint(id="lr_range_inconclusive", severity="warning",
                    title="Learning-rate range test inconclusive",
                    message=("The loss diverged within the first few steps, at the lowest rates "
                             "of the range: lower `min_lr`, and check the setup with "
                             "`python main.py check`."),
                    evidence={"steps": len(losses)})
    start, lowest = losses[0], min(losses)
    return Hint(id="lr_range_inconclusive", severity="warning",
                title="Learning-rate range test inconclusive",
                message=(f"The smoothed loss did not fall as the rate grew (from {start:.3f}; its "
                         f"lowest, {lowest:.3f}, at {result.min_loss_learning_rate:.2g}), so no rate "
                         "can be suggested: no rate in the range makes progress, and the problem is "
                         "likely elsewhere. Check the setup with "
                         "`python main.py check`, and that the model can learn at all with "
                         "`python main.py overfit`."),
                evidence={"first_loss": round(start, 4), "lowest_loss": round(lowest, 4),
                          "fall": round(result.fall or 0.0, 4), "steps": len(losses)})

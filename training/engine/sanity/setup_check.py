"""``check_setup``: the data checks of a run, the untrained model's loss against ln(C), and
an L2 penalty on the head that must raise it."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace

import numpy as np

from models.classifier import head_layers
from training.config import Config
from training.diagnostics import hints as hint_texts
from training.diagnostics.batches import initial_loss_verdict
from training.diagnostics.monitor import Diagnostics
from training.engine.sanity.common import (
    EventCallback,
    build,
    emit_hints,
    keeps_float32_after,
    load,
    no_regularization,
    prepare,
    quiet,
    stratified,
)
from training.events import Hint, Log

# The L2 factor of the "loss must rise" test. With a default head (C x F glorot-uniform
# kernel, sum of squares ~ 2C) it adds ~0.6 nats for 3 classes.
STRONG_L2 = 0.1
# The penalty must add at least this share of what the weights predict (l2 * sum w^2).
MIN_PENALTY_SHARE = 0.5


@dataclass
class SetupCheck:
    num_classes: int
    expected_loss: float           # ln(C): a fresh head guessing evenly
    first_batch_loss: float
    initial_loss: float            # mean over the batches, regularization off
    regularized_loss: float        # the same batches with L2 = STRONG_L2 on the head
    expected_penalty: float        # STRONG_L2 * sum of the head kernels' squares
    logit_spread: float            # mean standard deviation of the logits over classes
    batches: int
    hints: list[Hint] = field(default_factory=list)
    stopped: bool = False          # the stop flag was set: the numbers after it are NaN

    @property
    def ok(self) -> bool:
        return not self.stopped and not any(h.severity in ("warning", "error") for h in self.hints)


@keeps_float32_after
def check_setup(config: Config, *, batches: int = 3, on_event: EventCallback | None = None,
                stop: threading.Event | None = None) -> SetupCheck:
    """The data checks of a run, the loss at init against ln(C), and L2 that raises it.

    Raises:
        training.data.errors.DataError, ConfigError, WeightsUnavailableError: as a run would.
    """
    on_event = on_event or quiet
    stop = stop or threading.Event()
    setup = prepare(config, augment=False, on_event=on_event)
    data, classes = setup.data, len(setup.data.classes)
    diagnostics = Diagnostics(num_classes=classes, phase_learning_rates={}, config=setup.config)
    hints = diagnostics.check_data(data.report(), data.train_files, data.validation_files)
    if stop.is_set():
        nan = math.nan
        return SetupCheck(num_classes=classes, expected_loss=math.log(classes), first_batch_loss=nan,
                          initial_loss=nan, regularized_loss=nan, expected_penalty=nan,
                          logit_spread=nan, batches=0, hints=emit_hints(hints, on_event), stopped=True)
    size = setup.config.data.batch_size
    images, labels = load(data, stratified(data, batches * size, setup.config.training.seed),
                           setup.image_size)
    on_event(Log(f"Measuring the untrained model's loss on {len(images)} images ..."))
    plain = build(setup, no_regularization(setup.config))
    probabilities = np.asarray(plain.model.predict(images, batch_size=size, verbose=0))
    losses = cross_entropy(labels, probabilities)
    first_loss = float(losses[:size].mean())
    initial = float(losses.mean())
    logs = np.log(np.clip(probabilities, 1e-7, 1.0))
    spread = float(np.mean(np.std(logs - logs.mean(axis=1, keepdims=True), axis=1)))

    strong = replace(no_regularization(setup.config), l2=STRONG_L2)
    regularized_model = build(setup, strong)
    kernels = [layer.kernel for layer in head_layers(regularized_model.model)]
    expected_penalty = STRONG_L2 * float(sum(np.sum(np.square(np.asarray(k))) for k in kernels))
    probabilities = np.asarray(regularized_model.model.predict(images, batch_size=size, verbose=0))
    penalty = float(sum(np.asarray(l) for l in regularized_model.model.losses)) if \
        regularized_model.model.losses else 0.0
    regularized = float(cross_entropy(labels, probabilities).mean()) + penalty

    verdict = initial_loss_verdict(first_loss, initial, classes)
    if verdict is not None:
        hints.append(hint_texts.initial_loss_off(verdict, first_loss, initial, classes,
                                                 batches=batches, config=setup.config))
    if regularized - initial < MIN_PENALTY_SHARE * expected_penalty:
        hints.append(Hint(
            id="regularization_not_applied", severity="error",
            title="L2 regularization does not reach the loss",
            message=(f"With L2 = {STRONG_L2} on the head the loss should rise by about "
                     f"{expected_penalty:.3f} (the head's weights), but it went from {initial:.3f} "
                     f"to {regularized:.3f}. The regularization settings are not applied: the "
                     "model or the training pipeline is broken."),
            evidence={"loss": round(initial, 4), "regularized_loss": round(regularized, 4),
                      "expected_penalty": round(expected_penalty, 4), "l2": STRONG_L2}))
    emit_hints(hints, on_event)
    return SetupCheck(num_classes=classes, expected_loss=math.log(classes), first_batch_loss=first_loss,
                      initial_loss=initial, regularized_loss=regularized,
                      expected_penalty=expected_penalty, logit_spread=spread, batches=batches,
                      hints=hints)


def cross_entropy(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    return -np.sum(labels * np.log(np.clip(probabilities, 1e-7, 1.0)), axis=1)

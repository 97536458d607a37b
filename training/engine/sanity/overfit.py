"""``overfit_tiny_subset``: a working model and pipeline memorize a few images; one that
cannot is broken, whatever the rest of the data."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import keras

from training.config import Config
from training.diagnostics.hints import frozen_random_backbone as frozen_random_backbone_hint
from training.diagnostics.wording import learning_rate_key, rounded_rate
from training.engine.optim import build_optimizer
from training.engine.phase import set_trainable
from training.engine.recipe import first_phase, frozen_random_backbone, phase_learning_rate
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

# "Memorized" is this training accuracy.
OVERFIT_TARGET_ACCURACY = 0.999


@dataclass
class OverfitResult:
    images: int
    epochs: int
    reached: bool
    final_loss: float
    final_accuracy: float
    learning_rate: float
    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    stopped: bool = False
    hints: list[Hint] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reached


@keeps_float32_after
def overfit_tiny_subset(config: Config, *, images: int = 20, max_epochs: int = 150,
                        on_event: EventCallback | None = None,
                        stop: threading.Event | None = None) -> OverfitResult:
    """Trains on ``images`` training images (spread over the classes) until they are
    memorized: no regularization, no augmentation, the layers trainable that the run's last
    phase trains, at the run's first learning rate, for at most ``max_epochs``."""
    on_event = on_event or quiet
    stop = stop or threading.Event()
    setup = prepare(config, augment=False, on_event=on_event)
    config = setup.config
    x, y = load(setup.data, stratified(setup.data, images, config.training.seed), setup.image_size)
    classifier = build(setup, no_regularization(config), head_dropout=0.0)
    last_phase = "fine_tune" if config.training.fine_tune_epochs > 0 else "head"
    set_trainable(classifier, config, last_phase)
    rate = phase_learning_rate(config, first_phase(config))
    model = classifier.model
    model.compile(optimizer=build_optimizer(config.optimizer, rate),
                  loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"],
                  jit_compile=setup.precision.jit_compile)
    on_event(Log(f"Overfitting {len(x)} images (at most {max_epochs} epochs, learning rate {rate:.3g}) ..."))
    recorder = _OverfitRecorder(stop, on_event, max_epochs)
    model.fit(x, y, batch_size=min(config.data.batch_size, len(x)), epochs=max_epochs, shuffle=True,
              callbacks=[recorder], verbose=0)
    reached = bool(recorder.accuracies) and max(recorder.accuracies) >= OVERFIT_TARGET_ACCURACY
    result = OverfitResult(images=len(x), epochs=len(recorder.losses), reached=reached,
                           final_loss=recorder.losses[-1] if recorder.losses else math.nan,
                           final_accuracy=recorder.accuracies[-1] if recorder.accuracies else math.nan,
                           learning_rate=rate, losses=recorder.losses, accuracies=recorder.accuracies,
                           stopped=recorder.stopped)
    if not reached and not recorder.stopped:
        # A head on random frozen features cannot memorize: say that, not "raise the rate".
        failed = (frozen_random_backbone_hint(config) if last_phase == "head" and frozen_random_backbone(config)
                  else _overfit_failed(result, config))
        result.hints = emit_hints([failed], on_event)
    return result


class _OverfitRecorder(keras.callbacks.Callback):
    """Records each epoch's loss and accuracy; stops at 100 %, on a non-finite loss, or on
    request (within a batch)."""

    def __init__(self, stop: threading.Event, on_event: EventCallback, max_epochs: int):
        super().__init__()
        self.stop, self.on_event, self.max_epochs = stop, on_event, max_epochs
        self.losses: list[float] = []
        self.accuracies: list[float] = []
        self.stopped = False

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.stop.is_set():
            self.stopped = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        loss, accuracy = float(logs.get("loss", math.nan)), float(logs.get("accuracy", math.nan))
        self.losses.append(loss)
        self.accuracies.append(accuracy)
        if accuracy >= OVERFIT_TARGET_ACCURACY or not math.isfinite(loss):
            self.model.stop_training = True
        if (epoch + 1) % 10 == 0:
            self.on_event(Log(f"Epoch {epoch + 1}/{self.max_epochs}: loss {loss:.4f}, "
                              f"training accuracy {accuracy:.1%}"))


def _overfit_failed(result: OverfitResult, config: Config) -> Hint:
    losses = [l for l in result.losses if math.isfinite(l)]
    start = losses[0] if losses else math.nan
    key = learning_rate_key(first_phase(config), config)
    fixes: list[dict[str, Any]] = []
    if not math.isfinite(result.final_loss) or (losses and losses[-1] > start):
        cause = "The loss rose or became non-finite: the learning rate is far too high."
        fixes.append({key: rounded_rate(result.learning_rate / 10)})
    elif losses and losses[-1] > 0.9 * start:
        cause = ("The loss hardly moved: the learning rate is far too low, or nothing that "
                 "matters is trainable.")
        fixes.append({key: rounded_rate(min(10.0, result.learning_rate * 10))})
    else:
        cause = ("The loss fell but the images were not all learned: check that each image is in "
                 "the right class folder (the same picture under two labels cannot be learned), "
                 "and that the model has enough trainable layers.")
    return Hint(
        id="overfit_failed", severity="error", title=f"The model cannot memorize {result.images} images",
        message=(f"After {result.epochs} epochs on {result.images} training images with no "
                 f"regularization, training accuracy is {result.final_accuracy:.0%} (loss "
                 f"{start:.3f} -> {result.final_loss:.3f}); any working model and pipeline reach "
                 f"100 %. {cause}"),
        evidence={"images": result.images, "epochs": result.epochs, "first_loss": round(start, 4),
                  "final_loss": round(result.final_loss, 4), "final_accuracy": round(result.final_accuracy, 4),
                  "learning_rate": result.learning_rate},
        fixes=fixes)

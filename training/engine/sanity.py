"""Sanity tools to run before a long training run (Karpathy, "A Recipe for Training
Neural Networks", 2019: verify the loss at init, overfit one batch, find a learning rate).

- ``check_setup``: the data checks of a run, then the untrained model's loss on a few
  batches (regularization off, inference mode) against ln(C), and with a strong L2
  penalty on the head, which must raise the loss.
- ``overfit_tiny_subset``: train on ~20 images with no regularization and no
  augmentation until training accuracy reaches 100 %. If it cannot, the model or the
  pipeline is broken (labels that do not match the images, a rate far off, nothing
  trainable), whatever the rest of the data.
- ``lr_range_test``: raise the learning rate exponentially from ``min_lr`` to ``max_lr``
  over ``steps`` batches on a throwaway model and record the smoothed loss (Smith 2017,
  "Cyclical Learning Rates", section 3.3; the fastai learning-rate finder).

Each is a plain function of a ``Config`` with an optional ``on_event`` (``Log`` progress
and the ``Hint`` events) and ``stop`` flag, returning a plain dataclass whose ``hints``
list is empty when all is well. They build everything from the engine's own pieces
(``prepare_data``, ``build_classifier``, ``training.engine.optim``) and never touch a run folder.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import keras
import numpy as np

from training.config import Config
from training.diagnostics import hints as hint_texts
from training.diagnostics.monitor import Diagnostics, initial_loss_verdict
from training.engine.recipe import fine_tune_learning_rate
from training.events import Event, Hint, Log

EventCallback = Callable[[Event], None]

# check_setup: the L2 factor of the "loss must rise" test. With a default head (C x F
# glorot-uniform kernel, sum of squares ~ 2C) it adds ~0.6 nats for 3 classes.
STRONG_L2 = 0.1
# The penalty must add at least this share of what the weights predict (l2 * sum w^2).
MIN_PENALTY_SHARE = 0.5
# overfit_tiny_subset: "memorized" is this training accuracy.
OVERFIT_TARGET_ACCURACY = 0.999
# lr_range_test: the smoothing of the loss curve (fastai: 0.98, with bias correction), and
# the end of the test once the smoothed loss passes 4x its minimum (fastai's rule).
SMOOTHING = 0.98
DIVERGED_FACTOR = 4.0


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


@dataclass
class LRRangeResult:
    learning_rates: list[float]
    losses: list[float]                    # smoothed
    raw_losses: list[float]
    suggested_learning_rate: float | None  # the smaller of the two below (see lr_range_test)
    min_loss_learning_rate: float | None   # where the smoothed loss is lowest
    steepest_learning_rate: float | None   # where it falls fastest (per decade of rate)
    phase: str
    diverged: bool = False
    stopped: bool = False
    hints: list[Hint] = field(default_factory=list)


# -- the pieces shared by the tools -------------------------------------------------------
@dataclass
class _Setup:
    config: Config
    image_size: int
    data: Any                              # training.data.pipeline.DataBundle


def _prepare(config: Config, *, augment: bool, on_event: EventCallback) -> _Setup:
    """Resolves the config as the engine's ``TrainingSession.start`` does and prepares the
    data (with the config's augmentation only when ``augment``)."""
    from models.backbones import check_image_size, get_spec
    from training.data.augment import build_augmenter
    from training.data.pipeline import prepare_data
    from training.data.sample import resolve_data_dir

    config = Config.from_dict(config.to_dict())
    spec = get_spec(config.model.backbone)
    image_size = config.data.image_size or spec.default_size
    check_image_size(spec.name, image_size, config.model.weights)
    config.data.image_size = image_size
    config.training.fine_tune_learning_rate = fine_tune_learning_rate(config)
    config.data.dir = str(resolve_data_dir(config.data.dir))
    if config.data.validation_dir:
        config.data.validation_dir = str(resolve_data_dir(config.data.validation_dir))
    keras.utils.set_random_seed(config.training.seed)
    on_event(Log(f"Scanning {config.data.dir} ..."))
    augmenter = (build_augmenter(config.augmentation, image_size=image_size, seed=config.training.seed)
                 if augment else None)
    data = prepare_data(config.data, image_size, augmenter=augmenter, seed=config.data.seed)
    return _Setup(config, image_size, data)


def _build(setup: _Setup, regularization: Any, head_dropout: float | None = None):
    """A freshly initialized classifier; the same config and seed give the same weights."""
    from models.classifier import build_classifier
    from models.weights import ensure_imagenet_weights

    config = setup.config
    if config.model.weights == "imagenet":
        ensure_imagenet_weights(config.model.backbone, setup.image_size)
    model_cfg = config.model
    if head_dropout is not None:
        model_cfg = replace(model_cfg, head=replace(model_cfg.head, dropout=head_dropout))
    keras.utils.set_random_seed(config.training.seed)
    return build_classifier(model_cfg, regularization, image_size=setup.image_size,
                            num_classes=len(setup.data.classes), seed=config.training.seed)


def _no_regularization(config: Config):
    return replace(config.regularization, l1=0.0, l2=0.0, max_norm=0.0, label_smoothing=0.0)


def _labels_by_path(data: Any) -> dict[str, int]:
    labels: dict[str, int] = {}
    for scan in (data.scan, data.validation_scan):
        if scan is not None:
            labels.update({str(p): int(l) for p, l in zip(scan.files, scan.labels)})
    return labels


def _load(data: Any, files: list[str], image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decoded images (float32, 0-255) and one-hot labels; undecodable files are skipped."""
    from training.data.images import ImageLoadError, load_image

    labels_by_path = _labels_by_path(data)
    images, labels = [], []
    for path in files:
        try:
            images.append(load_image(path, image_size))
        except ImageLoadError:
            continue
        labels.append(labels_by_path[path])
    if not images:
        raise ValueError("None of the sampled training images could be decoded.")
    onehot = np.eye(len(data.classes), dtype=np.float32)[labels]
    return np.stack(images).astype(np.float32), onehot


def _stratified(data: Any, count: int, seed: int) -> list[str]:
    """``count`` training files taken in turn from each class (in a seeded random order)."""
    labels = _labels_by_path(data)
    rng = np.random.default_rng(seed)
    per_class: dict[int, list[str]] = {}
    for path in rng.permutation(np.array(data.train_files, dtype=object)):
        per_class.setdefault(labels[str(path)], []).append(str(path))
    chosen: list[str] = []
    while len(chosen) < count and any(per_class.values()):
        for files in per_class.values():
            if files and len(chosen) < count:
                chosen.append(files.pop())
    return chosen


def _first_phase(config: Config) -> str:
    return "head" if config.training.head_epochs > 0 else "fine_tune"


def _set_trainable(classifier: Any, config: Config, phase: str) -> None:
    """The backbone frozen (head phase) or unfrozen as the fine-tuning phase does."""
    from models.classifier import freeze_backbone, unfreeze_top_layers

    if phase == "head":
        freeze_backbone(classifier.backbone)
    else:
        unfreeze_top_layers(classifier.backbone, config.training.fine_tune_layers,
                            train_batch_norm=classifier.from_scratch)


def _cross_entropy(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    return -np.sum(labels * np.log(np.clip(probabilities, 1e-7, 1.0)), axis=1)


def _emit_hints(hints: list[Hint], on_event: EventCallback) -> list[Hint]:
    for hint in hints:
        on_event(hint)
    return hints


def _quiet(event: Event) -> None:
    pass


# -- check_setup --------------------------------------------------------------------------
def check_setup(config: Config, *, batches: int = 3, on_event: EventCallback | None = None,
                stop: threading.Event | None = None) -> SetupCheck:
    """The data checks of a run, the loss at init against ln(C), and L2 that raises it.

    Raises:
        training.data.errors.DataError, ConfigError, WeightsUnavailableError: as a run would.
    """
    from models.classifier import head_layers

    on_event = on_event or _quiet
    stop = stop or threading.Event()
    setup = _prepare(config, augment=False, on_event=on_event)
    data, classes = setup.data, len(setup.data.classes)
    diagnostics = Diagnostics(num_classes=classes, phase_learning_rates={}, config=setup.config)
    hints = diagnostics.check_data(data.report(), data.train_files, data.validation_files)
    if stop.is_set():
        nan = math.nan
        return SetupCheck(num_classes=classes, expected_loss=math.log(classes), first_batch_loss=nan,
                          initial_loss=nan, regularized_loss=nan, expected_penalty=nan,
                          logit_spread=nan, batches=0, hints=_emit_hints(hints, on_event), stopped=True)
    size = setup.config.data.batch_size
    images, labels = _load(data, _stratified(data, batches * size, setup.config.training.seed),
                           setup.image_size)
    on_event(Log(f"Measuring the untrained model's loss on {len(images)} images ..."))
    plain = _build(setup, _no_regularization(setup.config))
    probabilities = np.asarray(plain.model.predict(images, batch_size=size, verbose=0))
    losses = _cross_entropy(labels, probabilities)
    first_loss = float(losses[:size].mean())
    initial = float(losses.mean())
    logs = np.log(np.clip(probabilities, 1e-7, 1.0))
    spread = float(np.mean(np.std(logs - logs.mean(axis=1, keepdims=True), axis=1)))

    strong = replace(_no_regularization(setup.config), l2=STRONG_L2)
    regularized_model = _build(setup, strong)
    kernels = [layer.kernel for layer in head_layers(regularized_model.model)]
    expected_penalty = STRONG_L2 * float(sum(np.sum(np.square(np.asarray(k))) for k in kernels))
    probabilities = np.asarray(regularized_model.model.predict(images, batch_size=size, verbose=0))
    penalty = float(sum(np.asarray(l) for l in regularized_model.model.losses)) if \
        regularized_model.model.losses else 0.0
    regularized = float(_cross_entropy(labels, probabilities).mean()) + penalty

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
    _emit_hints(hints, on_event)
    return SetupCheck(num_classes=classes, expected_loss=math.log(classes), first_batch_loss=first_loss,
                      initial_loss=initial, regularized_loss=regularized,
                      expected_penalty=expected_penalty, logit_spread=spread, batches=batches,
                      hints=hints)


# -- overfit_tiny_subset ----------------------------------------------------------------------
def overfit_tiny_subset(config: Config, *, images: int = 20, max_epochs: int = 150,
                        on_event: EventCallback | None = None,
                        stop: threading.Event | None = None) -> OverfitResult:
    """Trains on ``images`` training images (spread over the classes) until they are
    memorized: no regularization, no augmentation, the layers trainable that the run's last
    phase trains, at the run's first learning rate, for at most ``max_epochs``."""
    from training.engine.optim import build_optimizer
    from training.engine.recipe import phase_learning_rate

    on_event = on_event or _quiet
    stop = stop or threading.Event()
    setup = _prepare(config, augment=False, on_event=on_event)
    config = setup.config
    x, y = _load(setup.data, _stratified(setup.data, images, config.training.seed), setup.image_size)
    classifier = _build(setup, _no_regularization(config), head_dropout=0.0)
    last_phase = "fine_tune" if config.training.fine_tune_epochs > 0 else "head"
    _set_trainable(classifier, config, last_phase)
    rate = phase_learning_rate(config, _first_phase(config))
    model = classifier.model
    model.compile(optimizer=build_optimizer(config.optimizer, rate),
                  loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
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
        result.hints = _emit_hints([_overfit_failed(result, config)], on_event)
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
    rounded_rate = hint_texts.rounded_rate
    losses = [l for l in result.losses if math.isfinite(l)]
    start = losses[0] if losses else math.nan
    key = "optimizer.learning_rate" if _first_phase(config) == "head" else "training.fine_tune_learning_rate"
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


# -- lr_range_test ------------------------------------------------------------------------
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
        backbone both worked (steepest 0.006, a tenth of the minimum 1.0).

    Raises:
        ValueError: ``steps`` < 10 or ``0 < min_lr < max_lr`` violated.
    """
    from training.engine.optim import build_optimizer

    if steps < 10:
        raise ValueError(f"`steps` must be >= 10. Received: steps={steps}")
    if not 0 < min_lr < max_lr:
        raise ValueError(f"`min_lr` must be > 0 and < `max_lr`. Received: min_lr={min_lr}, max_lr={max_lr}")
    on_event = on_event or _quiet
    stop = stop or threading.Event()
    setup = _prepare(config, augment=True, on_event=on_event)
    config, data = setup.config, setup.data
    phase = _first_phase(config)
    throwaway = _throwaway_model(setup, model, phase)
    schedule = ExponentialRange(min_lr, max_lr, steps)
    throwaway.compile(optimizer=build_optimizer(config.optimizer, schedule),
                      loss=keras.losses.CategoricalCrossentropy(
                          label_smoothing=config.regularization.label_smoothing))
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
    _suggest(result)
    if not stopped:
        result.hints = _emit_hints(_range_hints(result, config), on_event)
    return result


def _throwaway_model(setup: _Setup, model: keras.Model | None, phase: str) -> keras.Model:
    if model is None:
        classifier = _build(setup, setup.config.regularization)
        _set_trainable(classifier, setup.config, phase)
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
    """Fills the suggested, minimum-loss and steepest rates from the smoothed curve."""
    losses = np.asarray(result.losses)
    if len(losses) < 5:
        return
    rates = np.asarray(result.learning_rates)
    lowest = int(np.argmin(losses))
    result.min_loss_learning_rate = float(rates[lowest])
    suggestion = rates[lowest] / 10
    # The first steps are noise (the smoothing has barely started, the rates change
    # nothing yet): like fastai's lr_find, look for the steepest descent after them.
    skip = max(3, len(losses) // 10)
    if lowest - skip >= 2:
        window = slice(skip, lowest + 1)
        slopes = np.gradient(losses[window], np.log10(rates[window]))
        result.steepest_learning_rate = float(rates[skip + int(np.argmin(slopes))])
        suggestion = min(suggestion, result.steepest_learning_rate)
    result.suggested_learning_rate = float(f"{suggestion:.2g}")


def _range_hints(result: LRRangeResult, config: Config) -> list[Hint]:
    losses = result.losses
    if len(losses) < 5:
        return [Hint(id="lr_range_inconclusive", severity="warning",
                     title="Learning-rate range test inconclusive",
                     message=("The loss diverged within the first few steps, at the lowest rates "
                              "of the range: lower `min_lr`, and check the setup with "
                              "`python main.py check`."),
                     evidence={"steps": len(losses)})]
    start, lowest = losses[0], min(losses)
    if lowest > 0.9 * start:
        return [Hint(id="lr_range_inconclusive", severity="warning",
                     title="Learning-rate range test inconclusive",
                     message=(f"The smoothed loss never fell by 10 % at any rate ({start:.3f} -> at "
                              f"best {lowest:.3f}): no rate in the range makes progress, so the "
                              "problem is elsewhere. Run `python main.py check` and "
                              "`python main.py overfit`."),
                     evidence={"first_loss": round(start, 4), "lowest_loss": round(lowest, 4),
                               "steps": len(losses)})]
    suggested = result.suggested_learning_rate
    key = "optimizer.learning_rate" if result.phase == "head" else "training.fine_tune_learning_rate"
    current = config.optimizer.learning_rate if result.phase == "head" else fine_tune_learning_rate(config)
    if suggested and (current / suggested >= 10 or suggested / current >= 10):
        return [Hint(id="lr_range_suggestion", severity="info",
                     title=f"Suggested learning rate: {suggested:.2g}",
                     message=(f"The loss fell fastest near {result.steepest_learning_rate or suggested:.2g} "
                              f"and was lowest at {result.min_loss_learning_rate:.2g}. The suggested "
                              f"{suggested:.2g} (the smaller of the first and a tenth of the second) "
                              f"is {max(current / suggested, suggested / current):.0f} times "
                              f"{'lower' if suggested < current else 'higher'} than the configured "
                              f"{current:.2g}."),
                     evidence={"suggested": suggested, "min_loss_rate": result.min_loss_learning_rate,
                               "steepest_rate": result.steepest_learning_rate, "configured": current},
                     fixes=[{key: hint_texts.rounded_rate(suggested)}])]
    return []

"""What the sanity tools share: the config resolved and the data prepared as a run does,
a fresh model, and small batches of decoded images."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Callable

import keras
import numpy as np

from models.classifier import build_classifier
from models.registry import check_image_size, get_spec
from models.weights import ensure_imagenet_weights
from training.config import Config
from training.data.augment import build_augmenter
from training.data.images import ImageLoadError, load_image
from training.data.pipeline import prepare_data
from training.data.sample import resolve_data_dir
from training.engine.precision import decide_for_run, reset_precision, use_precision
from training.engine.recipe import fine_tune_learning_rate, resolve_mode
from training.events import Event, Hint, Log

EventCallback = Callable[[Event], None]


@dataclass
class Setup:
    config: Config
    image_size: int
    data: Any                              # training.data.pipeline.DataBundle
    precision: Any = None                  # training.engine.precision.Decision


def keeps_float32_after(tool: Callable) -> Callable:
    """A sanity tool builds its models in the run's precision (``build``); the engine process
    goes back to float32 when the tool ends, as after a run."""
    @functools.wraps(tool)
    def wrapped(*args, **kwargs):
        try:
            return tool(*args, **kwargs)
        finally:
            reset_precision()
    return wrapped


def prepare(config: Config, *, augment: bool, on_event: EventCallback) -> Setup:
    """Resolves the config as the engine's ``TrainingSession.start`` does and prepares the
    data (with the config's augmentation only when ``augment``)."""
    config = Config.from_dict(config.to_dict())
    spec = get_spec(config.model.backbone)
    image_size = config.data.image_size or spec.default_size
    check_image_size(spec.name, image_size, config.model.weights)
    config.data.image_size = image_size
    config.training = resolve_mode(config).training
    config.training.fine_tune_learning_rate = fine_tune_learning_rate(config)
    config.data.dir = str(resolve_data_dir(config.data.dir))
    if config.data.validation_dir:
        config.data.validation_dir = str(resolve_data_dir(config.data.validation_dir))
    keras.utils.set_random_seed(config.training.seed)
    on_event(Log(f"Scanning {config.data.dir} ..."))
    augmenter = (build_augmenter(config.augmentation, image_size=image_size, seed=config.training.seed)
                 if augment else None)
    data = prepare_data(config.data, image_size, augmenter=augmenter, seed=config.data.seed)
    # The precision and XLA of the run (``training.mixed_precision``, ``training.jit_compile``);
    # the tools augment in the input pipeline, wherever the run would.
    precision = decide_for_run(replace(config, training=replace(config.training, augment_in="input_pipeline")))
    on_event(Log(precision.describe()))
    for warning in precision.warnings:
        on_event(Log(warning, level="warning"))
    return Setup(config, image_size, data, precision)


def build(setup: Setup, regularization: Any, head_dropout: float | None = None):
    """A freshly initialized classifier; the same config and seed give the same weights."""
    config = setup.config
    if config.model.weights == "imagenet":
        ensure_imagenet_weights(config.model.backbone, setup.image_size)
    model_cfg = config.model
    if head_dropout is not None:
        model_cfg = replace(model_cfg, head=replace(model_cfg.head, dropout=head_dropout))
    keras.utils.set_random_seed(config.training.seed)
    if setup.precision is not None:
        use_precision(setup.precision)
    return build_classifier(model_cfg, regularization, image_size=setup.image_size,
                            num_classes=len(setup.data.classes), seed=config.training.seed)


def no_regularization(config: Config):
    return replace(config.regularization, l1=0.0, l2=0.0, max_norm=0.0, label_smoothing=0.0)


def _labels_by_path(data: Any) -> dict[str, int]:
    labels: dict[str, int] = {}
    for scan in (data.scan, data.validation_scan):
        if scan is not None:
            labels.update({str(p): int(l) for p, l in zip(scan.files, scan.labels)})
    return labels


def load(data: Any, files: list[str], image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decoded images (float32, 0-255) and one-hot labels; undecodable files are skipped."""
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


def stratified(data: Any, count: int, seed: int) -> list[str]:
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


def emit_hints(hints: list[Hint], on_event: EventCallback) -> list[Hint]:
    for hint in hints:
        on_event(hint)
    return hints


def quiet(event: Event) -> None:
    pass

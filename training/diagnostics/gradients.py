"""The gradient-norm probe: how strongly each part of the network is being trained.

Once an epoch, ``GradientProbe`` computes the gradient of the loss on one fixed batch
and reports, per layer group, the root-mean-square gradient per parameter (groups of very
different sizes then compare), plus the global L2 norm (the quantity ``clipnorm``-style
clipping looks at). The groups are the head and up to three depth slices of the
backbone's trainable layers (``backbone_bottom``, ``backbone_middle``, ``backbone_top``).
``Diagnostics.observe_gradients`` reads them.

The forward pass runs in training mode, as ``fit`` does: BatchNormalization layers that
train use the batch's statistics and dropout is on, so the numbers describe the gradients
the optimizer really gets. (In inference mode a from-scratch MobileNetV2 showed a bottom
group 10^5 times weaker than in training, an artefact of its still-unfit moving
statistics.) The moving statistics and the dropout seed states that such a pass advances
are saved before and put back after, so probing never changes the run it measures. Cost:
one forward and backward pass of one batch per epoch.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from training.data.images import ImageLoadError, load_image
from training.diagnostics.monitor import Diagnostics
from training.events import Event

PROBE_BATCH_SIZE = 32
GROUP_NAMES = ("backbone_bottom", "backbone_middle", "backbone_top")


class GradientProbe(keras.callbacks.Callback):
    """Per-group gradient norms on one fixed batch at the end of every epoch.

    Args:
        images: float32 or uint8 images (N, size, size, 3), 0-255, as the model takes them.
        labels: one-hot labels (N, num_classes).
        diagnostics: receives the norms; its hints are passed to ``emit``.
        emit: the run's event callback.
        backbone: the nested backbone model, split into depth groups; without it every
            trainable weight counts as "head".
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, diagnostics: Diagnostics,
                 emit: Callable[[Event], None], *, backbone: keras.Model | None = None):
        super().__init__()
        self.images = np.asarray(images, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.diagnostics = diagnostics
        self.emit = emit
        self.backbone = backbone
        self.history: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.model.stop_training or not len(self.images):
            return  # stopped or diverged (the bridge said why), or no batch to measure on
        norms = self.measure()
        self.history.append(norms)
        for hint in self.diagnostics.observe_gradients(epoch + 1, norms):
            self.emit(hint)

    def measure(self) -> dict[str, float]:
        """{"total": global L2 norm, "<group>": RMS gradient per parameter, ...}."""
        variables = list(self.model.trainable_variables)
        if not variables:
            return {}
        gradients = batch_gradients(self.model, self.images, self.labels, variables)
        norms: dict[str, float] = {}
        squares = {id(v): float(np.sum(np.square(g))) for v, g in zip(variables, gradients)}
        norms["total"] = math.sqrt(sum(squares.values()))
        for name, group in layer_groups(self.model, self.backbone).items():
            members = [v for v in group if id(v) in squares]
            size = sum(int(np.prod(v.shape)) for v in members)
            if size:
                norms[name] = math.sqrt(sum(squares[id(v)] for v in members) / size)
        return norms


def layer_groups(model: keras.Model, backbone: keras.Model | None) -> dict[str, list]:
    """Trainable variables by group: up to three backbone depth slices, then "head"."""
    groups: dict[str, list] = {}
    backbone_ids: set[int] = set()
    if backbone is not None:
        layers = [layer for layer in backbone.layers if layer.trainable_weights]
        backbone_ids = {id(v) for layer in layers for v in layer.trainable_weights}
        count = len(layers)
        names = {0: (), 1: ("backbone_top",), 2: ("backbone_bottom", "backbone_top")}.get(
            count, GROUP_NAMES)
        for index, name in enumerate(names):
            chosen = layers[index * count // len(names):(index + 1) * count // len(names)]
            groups[name] = [v for layer in chosen for v in layer.trainable_weights]
    head = [v for v in model.trainable_variables if id(v) not in backbone_ids]
    if head:
        groups["head"] = head
    return groups


def _side_effect_variables(model: keras.Model) -> list:
    """What a training-mode forward pass writes: BatchNorm moving statistics, seed states."""
    return [v for v in model.non_trainable_variables
            if "moving_" in v.path or "seed_generator_state" in v.path]


def batch_gradients(model: keras.Model, images: np.ndarray, labels: np.ndarray,
                    variables: list) -> list[np.ndarray]:
    """The training loss's gradients for ``variables`` on one batch (training mode), leaving
    BatchNorm statistics and seed states as they were."""
    touched = _side_effect_variables(model)
    saved = [np.array(v.numpy()) for v in touched]
    try:
        return _training_gradients(model, images, labels, variables)
    finally:
        for variable, value in zip(touched, saved):
            variable.assign(value)


def _training_gradients(model: keras.Model, images: np.ndarray, labels: np.ndarray,
                        variables: list) -> list[np.ndarray]:
    with tf.GradientTape() as tape:
        predictions = model(images, training=True)
        loss = model.loss(labels, predictions) if callable(model.loss) else \
            keras.losses.categorical_crossentropy(labels, predictions)
        loss = tf.reduce_mean(loss)
        if model.losses:
            loss = loss + tf.add_n([tf.cast(l, loss.dtype) for l in model.losses])
    gradients = tape.gradient(loss, variables)
    return [np.zeros(v.shape, np.float32) if g is None else np.asarray(g) for v, g in zip(variables, gradients)]


def fixed_batch(data: Any, image_size: int, size: int = PROBE_BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A small fixed batch of validation images (spread over the file list) and their
    one-hot labels, decoded as the pipeline decodes them; files that fail are skipped.

    Args:
        data: a ``training.data.pipeline.DataBundle``.
    """
    labels_by_path: dict[str, int] = {}
    for scan in (data.scan, data.validation_scan):
        if scan is not None:
            labels_by_path.update({str(p): int(l) for p, l in zip(scan.files, scan.labels)})
    files = list(data.validation_files)
    step = max(1, len(files) // size)
    images, labels = [], []
    for path in files[::step][:size]:
        try:
            images.append(load_image(path, image_size))
        except ImageLoadError:
            continue
        labels.append(labels_by_path[path])
    onehot = np.eye(len(data.classes), dtype=np.float32)[labels]
    if not images:  # nothing decodable: the probe then measures nothing
        return np.zeros((0, image_size, image_size, 3), np.float32), onehot.reshape(0, len(data.classes))
    return np.stack(images).astype(np.float32), onehot

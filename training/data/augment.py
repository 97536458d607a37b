"""Training-time augmentation built from Keras preprocessing layers.

``build_augmenter`` turns an ``AugmentationConfig`` into one function that maps a batch
``(images, labels)`` to an augmented batch: float32 images in 0-255 of shape
(B, H, W, 3) and one-hot float32 labels (B, C). It runs inside ``tf.data`` (the layers
are called with ``training=True``), every layer has its own seed derived from the run's
seed, and outputs are clipped to [0, 255].

Called with a ``key`` (the epoch and the batch's index in it, as the training pipeline
does), the augmentation of a batch is a pure function of (run seed, key, images): every
random draw of every layer takes a stateless seed folded from them, and no seed-generator
state changes. The pipeline can then augment several batches at once
(``num_parallel_calls``) and still give exactly what a sequential map gives, and a resumed
run repeats an uninterrupted one. Called without a key (previews, a plain ``map``), the
layers draw from their seed generators in call order, as Keras layers always do.

What each strength means (0 always means off):

=================  ==========================================================================
horizontal_flip    RandomFlip("horizontal")
vertical_flip      RandomFlip("vertical")
rotation           RandomRotation(s): up to +-s of a full turn (0.05 = +-18 degrees)
zoom               RandomZoom(+-s): in or out by up to s of the side
translation        RandomTranslation(+-s): shift by up to s of the width and height
random_crop        RandomZoom(-s, 0) then RandomTranslation(s/2): a window of (1-s)..1 of
                   the side at a random place, scaled back up (crops and scales, per image)
brightness         RandomBrightness(s): add up to +-s*255
contrast           RandomContrast(s): contrast factor in [1-s, 1+s]
saturation         RandomSaturation: saturation times (1-s)/(1+s) .. (1+s)/(1-s)
                   (s=1: from grey to fully saturated)
hue                RandomHue(2s): rotate the hue by up to +-s of the colour circle
                   (tf.image.random_hue's max_delta; 0.5 = any hue)
gaussian_noise     GaussianNoise(stddev=s*255)
cutout             RandomErasing: one noise-filled patch covering up to s of each image
randaugment        RandAugment(factor=s), 2 random operations per image
mixup              MixUp(alpha=s): blends image pairs and their labels
cutmix             CutMix(factor=s): pastes a patch of another image, mixing labels by area
=================  ==========================================================================

Geometric layers fill uncovered pixels by reflection (no black corners).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import numpy as np

from training.config import AugmentationConfig

Augmenter = Callable[[Any, Any], tuple[Any, Any]]

_FILL = "reflect"
# Offsets that give every layer its own random stream from one run seed.
_SEED_STRIDE = 7919


# The augmentations whose Keras layers compile under XLA (TensorFlow 2.21, Keras 3.15;
# tests/test_step_augmentation.py compiles each). The others use ops without an XLA kernel
# (ImageProjectiveTransformV3 for rotation, zoom, translation and crops; the gamma sampler of
# MixUp; RandAugment and CutMix) and cannot run inside an XLA-compiled training step.
XLA_AUGMENTATIONS = frozenset({"horizontal_flip", "vertical_flip", "brightness", "contrast", "saturation",
                               "hue", "gaussian_noise", "cutout"})


def active_augmentations(aug_cfg: AugmentationConfig) -> list[str]:
    """Names of the augmentations that are on, in the order they are applied."""
    order = ["horizontal_flip", "vertical_flip", "rotation", "zoom", "translation", "random_crop",
             "brightness", "contrast", "saturation", "hue", "randaugment", "gaussian_noise",
             "cutout", "mixup", "cutmix"]
    return [name for name in order if getattr(aug_cfg, name)]


def build_augmenter(aug_cfg: AugmentationConfig, *, image_size: int,
                    seed: int) -> Augmenter | None:
    """A batch function ``(images, labels) -> (images, labels)``; None when all is off.

    Args:
        aug_cfg: which augmentations and how strong.
        image_size: height and width of the images it will see.
        seed: the run's seed; the same seed gives the same augmentations.
    """
    if image_size < 1:
        raise ValueError(f"`image_size` must be >= 1. Received: image_size={image_size}")
    names = active_augmentations(aug_cfg)
    if not names:
        return None
    seeds = iter(range(seed, seed + _SEED_STRIDE * 4 * len(names), _SEED_STRIDE))
    image_layers, mixing_layers = [], []
    for name in names:
        layers = _layers_for(name, float(getattr(aug_cfg, name)), seeds)
        (mixing_layers if name in ("mixup", "cutmix") else image_layers).extend(layers)
    return _Augmenter(image_layers, mixing_layers)


class _Augmenter:
    """Applies image layers, then label-mixing layers, then clips to the pixel range.

    MixUp and CutMix, when both are on, are applied one after the other.
    """

    # The training pipeline may call it with a key and map it in parallel (see the module doc).
    stateless = True

    def __init__(self, image_layers: list, mixing_layers: list):
        self.image_layers = image_layers
        self.mixing_layers = mixing_layers
        self._draws = _Draws()
        for layer in image_layers + mixing_layers:
            _key_seed_generators(getattr(layer, "layer", layer), self._draws)

    def reseed(self, epoch: int) -> None:
        """Restarts every layer's random stream at a point given by its seed and ``epoch``.

        Only calls without a key draw from these streams."""
        for layer in self.image_layers + self.mixing_layers:
            inner = getattr(layer, "layer", layer)  # _InUnitRange wraps a Keras layer
            for variable in inner.variables:
                if "seed_generator_state" in variable.path:
                    seed = int(variable.numpy()[0])
                    variable.assign(np.array([seed, (epoch << 20) & 0xFFFFFFFF], dtype=variable.dtype))

    def __call__(self, images, labels, key=None):
        """Augments one batch.

        Args:
            images: float32 (B, H, W, 3) in 0-255.
            labels: one-hot float32 (B, C).
            key: optional (epoch, batch index) integers or integer tensors. With it, the
                result depends on (seed, key, images) alone; without it, on the call order.
        """
        from keras import ops

        with self._draws.keyed(key):
            for layer in self.image_layers:
                images = layer(images, training=True)
            for layer in self.mixing_layers:
                mixed = layer({"images": images, "labels": labels}, training=True)
                images, labels = mixed["images"], mixed["labels"]
        return ops.clip(images, 0.0, 255.0), labels


class _Draws:
    """The key of the batch being augmented (or None) and how many seeds it has drawn.

    Under ``tf.data`` a call runs once, to trace the map function: the draw numbers are
    then constants of the graph, and the key a tensor that varies per batch.
    """

    def __init__(self):
        self.key = None
        self.count = 0
        self._lock = threading.Lock()  # one call at a time: the key belongs to that call

    @contextmanager
    def keyed(self, key) -> Iterator[None]:
        with self._lock:
            self.key, self.count = key, 0
            try:
                yield
            finally:
                self.key, self.count = None, 0

    def next_seed(self, layer_seed: int):
        """A stateless seed (2 integers) from the layer's seed, the draw number and the key."""
        import tensorflow as tf

        number, self.count = self.count, self.count + 1
        epoch, batch = self.key
        seed = tf.constant([layer_seed, number], dtype=tf.int64)
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(epoch, tf.int64))
        return tf.random.experimental.stateless_fold_in(seed, tf.cast(batch, tf.int64))


def _key_seed_generators(layer, draws: _Draws) -> None:
    """Makes every seed generator of ``layer`` (and of its sub-layers, e.g. RandAugment's)
    draw stateless seeds while ``draws`` holds a key."""
    from keras.random import SeedGenerator

    keyed = _keyed_seed_generator_class()
    for inner in [layer, *layer._flatten_layers(include_self=False)]:
        for name, value in list(vars(inner).items()):
            if isinstance(value, SeedGenerator) and not isinstance(value, keyed):
                # Not setattr: Keras would track the replacement as new layer state.
                object.__setattr__(inner, name, keyed(value, draws))


@functools.cache
def _keyed_seed_generator_class() -> type:
    from keras.random import SeedGenerator

    class KeyedSeedGenerator(SeedGenerator):
        """Draws stateless seeds while its augmenter has a key.

        It shares the state variable of the generator it replaces, so without a key it
        draws exactly what that generator would (and ``reseed`` still restarts it).
        """

        def __init__(self, original: SeedGenerator, draws: _Draws):  # no super(): shares the state
            self.name = original.name
            self.backend = original.backend
            self._initial_seed = original._initial_seed
            self.state = original.state
            self._layer_seed = int(np.asarray(original.state.numpy())[0])
            self._draws = draws

        def next(self, ordered=True):
            if self._draws.key is None:
                return super().next(ordered=ordered)
            return self._draws.next_seed(self._layer_seed)

    return KeyedSeedGenerator


class _InUnitRange:
    """Calls a layer on images scaled from 0-255 to 0-1 and scales the result back."""

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, images, training: bool = True):
        return self.layer(images / 255.0, training=training) * 255.0


def _layers_for(name: str, strength: float, seeds) -> list:
    from keras import layers

    s = strength
    if name == "horizontal_flip":
        return [layers.RandomFlip("horizontal", seed=next(seeds))]
    if name == "vertical_flip":
        return [layers.RandomFlip("vertical", seed=next(seeds))]
    if name == "rotation":
        return [layers.RandomRotation(s, fill_mode=_FILL, seed=next(seeds))]
    if name == "zoom":
        return [layers.RandomZoom(s, fill_mode=_FILL, seed=next(seeds))]
    if name == "translation":
        return [layers.RandomTranslation(s, s, fill_mode=_FILL, seed=next(seeds))]
    if name == "random_crop":
        return [layers.RandomZoom((-s, 0.0), fill_mode=_FILL, seed=next(seeds)),
                layers.RandomTranslation(s / 2, s / 2, fill_mode=_FILL, seed=next(seeds))]
    if name == "brightness":
        return [layers.RandomBrightness(s, value_range=(0, 255), seed=next(seeds))]
    if name == "contrast":
        return [layers.RandomContrast(s, value_range=(0, 255), seed=next(seeds))]
    if name == "saturation":
        # Keras's factor f scales saturation by f / (1 - f): 0.5 is no change. It clips the
        # saturation channel to value_range, which for saturation must be (0, 1).
        return [layers.RandomSaturation((0.5 - s / 2, 0.5 + s / 2), value_range=(0, 1),
                                        seed=next(seeds))]
    if name == "hue":
        # Keras shifts the hue by up to factor/2 of the circle.
        return [layers.RandomHue((0.0, min(1.0, 2 * s)), value_range=(0, 255), seed=next(seeds))]
    if name == "randaugment":
        return [layers.RandAugment(value_range=(0, 255), factor=s, seed=next(seeds))]
    if name == "gaussian_noise":
        # GaussianNoise takes a stddev in [0, 1]: apply it to images scaled to [0, 1].
        return [_InUnitRange(layers.GaussianNoise(s, seed=next(seeds)))]
    if name == "cutout":
        return [layers.RandomErasing(factor=(1.0, 1.0), scale=(s / 2, s), value_range=(0, 255),
                                     seed=next(seeds))]
    if name == "mixup":
        return [layers.MixUp(alpha=s, seed=next(seeds))]
    if name == "cutmix":
        return [layers.CutMix(factor=s, seed=next(seeds))]
    raise ValueError(f"Unknown augmentation {name!r}.")


def preview_augmentation(aug_cfg: AugmentationConfig, images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Applies the training augmentation to uint8 images (N, H, W, 3), as one batch.

    MixUp and CutMix mix the given images with each other. Returns uint8 of the same
    shape; with every augmentation off, an unchanged copy.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"`images` must have shape (N, size, size, 3). Received: shape={images.shape}")
    count = len(images)
    augmenter = build_augmenter(aug_cfg, image_size=images.shape[1], seed=seed)
    if augmenter is None or count == 0:
        return images.astype(np.uint8, copy=True)
    labels = np.eye(count, dtype=np.float32)
    augmented, _ = augmenter(images.astype(np.float32), labels)
    from keras import ops

    return np.clip(np.rint(ops.convert_to_numpy(augmented)), 0, 255).astype(np.uint8)


def with_only(name: str, strength: float | bool) -> AugmentationConfig:
    """A config with every augmentation off except ``name`` (handy for previews and tests)."""
    off = {f.name: (False if isinstance(f.default, bool) else 0.0)
           for f in dataclasses.fields(AugmentationConfig)}
    off[name] = strength
    return AugmentationConfig(**off)

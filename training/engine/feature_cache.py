"""The feature cache: a frozen backbone's head phase trained on features computed once.

In the head phase only the head learns and the frozen backbone computes the same features
from the same image every epoch (its BatchNorm layers are frozen, hence in inference mode).
With ``training.feature_cache: auto`` the phase computes them once, the output of
``avg_pool`` (the tensor that feeds the head), and ``fit`` trains a head-only model on them.
That model *shares* the classifier's head layers, so training it trains the classifier.

Exact, not approximate: the cached epochs replay the batches of the end-to-end run. The
training features are kept by image index and each epoch takes the run's own order
(``DataBundle.train_order``, a function of (seed, epoch)), drops the images that failed to
decode, and batches as the image pipeline does; validation keeps its fixed order. Dropout
and the head's BatchNorm draw from the same layers, the optimizer is the classifier's own
(so the resume checkpoint holds its state), and the callbacks that save (best.keras,
snapshots, the resume checkpoint) save the whole classifier (``saved_model``).

With augmentation on, every epoch sees other images. ``auto`` then computes
``AUGMENTED_COPIES`` copies: copy k is epoch k's augmented images exactly (the pipeline is
run as that epoch would run it), and later epochs reuse copy ``epoch % AUGMENTED_COPIES``
in that epoch's own order. That costs ``AUGMENTED_COPIES`` passes through the backbone
instead of one per head epoch, so it is used only when the phase has more epochs; the
first ``AUGMENTED_COPIES`` epochs are still exactly the end-to-end ones.

The cache is computed with the backbone called in inference mode (``training=False``). A
frozen backbone computes the same features under ``fit``'s ``training=True`` (measured,
EfficientNetB0's stochastic-depth Dropout layers included: docs/facts.md#feature-cache).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.config import Config
from training.data.augment import active_augmentations
from training.events import EventCallback, Log

# Augmented copies of the training features ``auto`` computes when augmentation is on.
# Three keeps the first three epochs (where a head learns most) exact and the backbone
# passes few; it pays off from four head epochs (the default is five).
AUGMENTED_COPIES = 3
# Training and validation features together (float32, labels included) stay below this;
# beyond it the head phase runs end to end.
CACHE_LIMIT_BYTES = 1_000_000_000
# The layer whose output feeds the head (``models.classifier.build_classifier``).
FEATURES_LAYER = "avg_pool"


@dataclass(frozen=True)
class Decision:
    """Whether a phase trains on cached features, how many copies, and why (for the log)."""
    use: bool
    copies: int
    reason: str


@dataclass(frozen=True)
class CacheShape:
    """What the cache would hold: images per split, features per image, classes."""
    train_images: int
    validation_images: int
    feature_size: int
    num_classes: int

    def bytes(self, copies: int) -> int:
        rows = copies * self.train_images + self.validation_images
        return 4 * rows * (self.feature_size + self.num_classes)


def plan_feature_cache(config: Config, phase: str, *, frozen: bool, epochs: int,
                       shape: CacheShape) -> Decision:
    """Decides whether ``phase`` trains its head on cached backbone features.

    Args:
        config: the run's config (``training.feature_cache``, augmentation).
        phase: ``head`` or ``fine_tune``; only a head phase is ever cached.
        frozen: whether only the head trains in this phase (every weight below it frozen).
        epochs: the phase's planned epochs (the plan, not what a resume has left, so a
            resumed run decides as the uninterrupted one did).
        shape: the sizes of what would be cached.
    """
    def no(reason: str) -> Decision:
        return Decision(False, 0, f"Feature cache not used: {reason}; the head phase runs the "
                                  "backbone on every image every epoch.")

    if config.training.feature_cache == "off":
        return no("`training.feature_cache` is off")
    if phase != "head" or not frozen:
        return no("the backbone trains in this phase")
    augmented = bool(active_augmentations(config.augmentation))
    copies = AUGMENTED_COPIES if augmented else 1
    if augmented and epochs <= copies:
        return no(f"augmentation is on and the phase's {epochs} epochs would cost no more backbone "
                  f"passes than the {copies} augmented copies the cache computes")
    size = shape.bytes(copies)
    if size > CACHE_LIMIT_BYTES:
        return no(f"the features would take {size / 1e9:.1f} GB, over the cache's "
                  f"{CACHE_LIMIT_BYTES / 1e9:.1f} GB")
    images = f"{shape.train_images} training and {shape.validation_images} validation images"
    if not augmented:
        return Decision(True, 1, (
            f"Feature cache: the backbone is frozen and augmentation is off, so the head phase "
            f"computes the backbone's features of the {images} once ({_megabytes(size)}) and "
            "trains the head on them: the same training as running the frozen backbone every "
            "epoch, many times faster."))
    return Decision(True, copies, (
        f"Feature cache: augmentation is on, so the head phase computes {copies} augmented copies "
        f"of the features of the {images} ({copies} backbone passes instead of {epochs}, "
        f"{_megabytes(size)}). Epochs 1-{copies} train on exactly the augmented images an "
        "end-to-end run sees; later epochs reuse those copies in a new order."))


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


# -- Keras from here on -------------------------------------------------------------------
@dataclass
class FitInputs:
    """What a phase's ``fit`` trains and on what."""
    model: Any          # keras.Model
    train: Any          # tf.data.Dataset
    validation: Any     # tf.data.Dataset
    cached: bool = False


@dataclass
class _Features:
    """Cached training features by (copy, image index), and validation features in order."""
    train: np.ndarray              # (copies * count, feature_size)
    train_labels: np.ndarray       # (copies * count, num_classes)
    ok: np.ndarray                 # (count,) bool: the image decoded
    validation: np.ndarray
    validation_labels: np.ndarray

    @property
    def count(self) -> int:
        return len(self.ok)


def fit_inputs(classifier: Any, config: Config, phase: str, data: Any, callbacks: list, *,
               emit: EventCallback, stop: threading.Event, epochs: tuple[int, int],
               scope: Any = contextlib.nullcontext) -> FitInputs:
    """The model and datasets of a phase's ``fit``: the head on cached features when
    ``plan_feature_cache`` says so (the log says why), else the classifier end to end.

    Call it after the phase's model is compiled (and a resume's checkpoint restored). The
    callbacks that save are pointed at the whole classifier.

    Args:
        classifier: a ``models.classifier.Classifier`` set up for ``phase``.
        data: the run's ``training.data.pipeline.DataBundle``.
        epochs: the phase's first epoch (0-based, over the whole run) and its epoch count.
        scope: the run's distribution strategy's ``scope`` (``training.engine.distribute``): the
            head-only model trains under it, as the classifier does. The features are computed
            outside it, by this process alone.
    """
    model = classifier.model
    end_to_end = FitInputs(model, data.train, data.validation)
    if phase != "head":
        return end_to_end
    with scope():
        head = head_model(model)
    decision = _decide(config, phase, head, model, data, epochs[1])
    emit(Log(decision.reason))
    if not decision.use:
        return end_to_end
    features = compute_features(model, data, decision.copies, first_epoch=epochs[0], emit=emit, stop=stop)
    if features is None:
        return end_to_end  # stopped: the stop flag ends the end-to-end fit within a batch
    with scope():
        head.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"],
                     jit_compile=model.jit_compile)
    for callback in callbacks:
        if hasattr(callback, "saved_model"):
            callback.saved_model = model
    batch_size = data.batch_size  # the global batch, as the image pipeline's
    return FitInputs(head, _train_dataset(features, data.train_order, epochs[0], batch_size),
                     _validation_dataset(features, batch_size), cached=True)


def head_model(model: Any) -> Any | None:
    """A model from the features (``avg_pool``'s output) to the classifier's output that
    shares the classifier's head layers; None for a model without that layer."""
    import keras

    try:
        pool = model.get_layer(FEATURES_LAYER)
    except ValueError:
        return None
    return keras.Model(pool.output, model.output, name="head_on_features")


def _decide(config: Config, phase: str, head: Any, model: Any, data: Any, epochs: int) -> Decision:
    if head is None or data.train_order is None:
        return Decision(False, 0, "Feature cache not used: the model has no feature layer to cache; "
                                  "the head phase runs the backbone every epoch.")
    trained = {id(v) for v in model.trainable_variables}
    frozen = trained == {id(v) for v in head.trainable_variables}
    shape = CacheShape(train_images=data.train_count, validation_images=data.validation_count,
                       feature_size=int(head.inputs[0].shape[-1]), num_classes=len(data.classes))
    return plan_feature_cache(config, phase, frozen=frozen, epochs=epochs, shape=shape)


def compute_features(model: Any, data: Any, copies: int, *, first_epoch: int,
                     emit: EventCallback, stop: threading.Event) -> _Features | None:
    """Runs the backbone (inference mode) over ``copies`` epochs of the training pipeline,
    from ``first_epoch`` on, and once over validation. None when stopped or when nothing
    decoded."""
    import keras

    extractor = keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output)
    augment = _step_augmenter(data)
    started = time.monotonic()
    count, order = data.train_count, data.train_order
    train, labels, ok = [], [], np.ones(count, dtype=bool)
    for copy in range(copies):
        epoch = first_epoch + copy
        order.set_epoch(epoch)
        indices = order.indices()     # this epoch's order, as the pipeline will draw it
        data.start_epoch(epoch)       # the pipeline's order and augmentation for that epoch
        batches = _run(extractor, data.train, stop,
                       augment=None if augment is None else functools.partial(augment, epoch=epoch))
        if batches is None:
            return None
        # Files that failed to decode were dropped from the batches: the rest keep the order.
        failed = set(data.decode_failures)
        ok = np.array([path not in failed for path in data.train_files], dtype=bool)
        kept = indices[ok[indices]]
        if len(kept) != len(batches[0]):  # the pipeline's order is not what it said
            emit(Log("Feature cache not used: the training pipeline did not yield its images in "
                     "the epoch's order; the head phase runs the backbone every epoch.",
                     level="warning"))
            return None
        by_index = np.zeros((count, batches[0].shape[1]), np.float32)
        by_label = np.zeros((count, batches[1].shape[1]), np.float32)
        by_index[kept], by_label[kept] = batches
        train.append(by_index)
        labels.append(by_label)
    validation = _run(extractor, data.validation, stop)
    if validation is None:
        return None
    emit(Log(f"Features computed in {time.monotonic() - started:.1f} s; the head trains on them."))
    return _Features(train=np.concatenate(train), train_labels=np.concatenate(labels), ok=ok,
                     validation=validation[0], validation_labels=validation[1])


def _step_augmenter(data: Any):
    """With augmentation in the training step (the pipeline leaves images as decoded): a
    compiled ``(images, labels, epoch, batch) -> (images, labels)`` that augments a batch as
    the training step would; else None."""
    if not data.augment_in_step:
        return None
    import tensorflow as tf

    augmenter = data.augmenter
    compiled = tf.function(lambda images, labels, epoch, batch: augmenter(images, labels, key=(epoch, batch)))

    def augment(images, labels, batch: int, *, epoch: int):
        return compiled(images, labels, tf.constant(epoch, tf.int64), tf.constant(batch, tf.int64))

    return augment


def _run(extractor: Any, dataset: Any, stop: threading.Event,
         augment: Any = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Features and labels of every batch of ``dataset`` (each batch augmented first by
    ``augment(images, labels, batch_index)`` when given); None when stopped or empty."""
    features, labels = [], []
    for batch, (images, batch_labels) in enumerate(dataset):
        if stop.is_set():
            return None
        if augment is not None:
            images, batch_labels = augment(images, batch_labels, batch)
        features.append(np.asarray(extractor.predict_on_batch(images), dtype=np.float32))
        labels.append(np.asarray(batch_labels, dtype=np.float32))
    if not features:
        return None
    return np.concatenate(features), np.concatenate(labels)


def _train_dataset(features: _Features, order: Any, first_epoch: int, batch_size: int):
    """Each pass: the epoch's order (``order``, set as each epoch begins), images that
    failed to decode left out, rows of copy ``(epoch - first_epoch) % copies``."""
    import tensorflow as tf

    copies = len(features.train) // features.count

    def epoch_rows() -> np.ndarray:
        epoch = order.epoch
        indices = order.indices()
        copy = (epoch - first_epoch) % copies
        return (copy * features.count + indices[features.ok[indices]]).astype(np.int64)

    rows = tf.data.Dataset.from_tensors(0).flat_map(
        lambda _: tf.data.Dataset.from_tensor_slices(
            tf.numpy_function(epoch_rows, [], tf.int64, stateful=True)))
    return _gather(rows.batch(batch_size), features.train, features.train_labels)


def _validation_dataset(features: _Features, batch_size: int):
    import tensorflow as tf

    rows = tf.data.Dataset.range(len(features.validation)).batch(batch_size)
    return _gather(rows, features.validation, features.validation_labels)


def _gather(rows, values: np.ndarray, labels: np.ndarray):
    """Batches of rows -> (features, labels). The arrays stay in NumPy: a tensor constant
    of a gigabyte would be copied into the dataset's graph."""
    import tensorflow as tf

    def take(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return values[index], labels[index]

    def batch(index):
        x, y = tf.numpy_function(take, [index], [tf.float32, tf.float32], stateful=False)
        x.set_shape((None, values.shape[1]))
        y.set_shape((None, labels.shape[1]))
        return x, y

    return rows.map(batch).prefetch(tf.data.AUTOTUNE)

"""Augmentation inside the training step: the Keras layers run where the model runs.

With ``training.augment_in`` "training_step" (``auto`` on a GPU; ``training.engine.precision``
decides), the input pipeline only decodes, caches and batches, and each training batch is
augmented by the run's augmenter (``training.data.augment.build_augmenter``) inside the
model's ``train_step``, on the accelerator. The CPU then cannot starve a fast GPU.

The augmenter is called with the same key the input pipeline would give it, (epoch, index of
the batch in its epoch), kept in two variables that ``on_epoch_begin`` resets and each step
advances. Its draws are stateless functions of (seed, key), so without XLA a batch is
augmented exactly as the pipeline would augment it (tests/test_step_augmentation.py), and a
resumed run still repeats an uninterrupted one. Under XLA, TensorFlow's stateless random ops
pick another generator: the augmentations differ from a run without XLA, but a seed still
repeats them on that device (docs/facts.md#augmentation-placement).

The saved model never holds the augmentation: ``train_step`` is replaced on the model object
for the length of one ``fit`` (``augmenting``) and removed after it; evaluation and
prediction never augment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keras


class StepAugmentation(keras.callbacks.Callback):
    """Keeps the key of the batch being trained and augments it inside ``train_step``.

    Args:
        augmenter: a keyed (``stateless``) augmenter from ``build_augmenter``.
    """

    def __init__(self, augmenter: Any):
        super().__init__()
        import tensorflow as tf

        if not getattr(augmenter, "stateless", False):
            raise ValueError("Augmentation inside the training step needs a keyed augmenter "
                             "(training.data.augment.build_augmenter).")
        self.augmenter = augmenter
        # Under a distribution strategy (made in its scope) every replica advances the step; the
        # first replica's update counts, once a step.
        once = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="augmentation_epoch", aggregation=once)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="augmentation_step", aggregation=once)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.assign(epoch)
        self.step.assign(0)

    def augment(self, images: Any, labels: Any) -> tuple[Any, Any]:
        """The batch augmented with the current key; advances the key to the next batch.

        Under a distribution strategy each replica augments its share of the batch with a key
        of its own, (epoch, step x replicas + replica): one replica, the pipeline's key.
        """
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        batch = self.step.value()
        if context is not None and context.num_replicas_in_sync > 1:
            replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
            batch = batch * context.num_replicas_in_sync + replica
        images, labels = self.augmenter(images, labels, key=(self.epoch.value(), batch))
        self.step.assign_add(1)
        return images, labels

    @contextmanager
    def augmenting(self, model: keras.Model) -> Iterator[None]:
        """Within the block, ``model``'s training steps augment their batch first."""
        train_step = type(model).train_step

        def augmented_train_step(data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            x, y = self.augment(x, y)
            return train_step(model, keras.utils.pack_x_y_sample_weight(x, y, sample_weight))

        # Not setattr: Keras would try to track the function as model state.
        object.__setattr__(model, "train_step", augmented_train_step)
        model.train_function = None  # made again from the new step
        try:
            yield
        finally:
            object.__delattr__(model, "train_step")
            model.train_function = None

"""TensorBoard logs of a run, in ``RUN_DIR/tensorboard/`` (Keras's TensorBoard callback).

Written for every run: per-epoch scalars (loss, accuracy, their validation twins and the
learning rate) and per-batch scalars (``batch_loss``, ``batch_accuracy``; the first batch of
each phase, then at most 4 a second: see ``RunTensorBoard``), in ``train/`` and
``validation/`` as Keras writes them. Batch summaries are stepped by the run's global step,
so the phases and a resumed run continue one curve instead of starting again at 0. With
``training.tensorboard_histograms``, each epoch also writes a histogram of every trainable
weight (Keras's ``histogram_freq``) and of its gradient on a fixed batch of validation images
(``gradients/``). View them with ``tensorboard --logdir RUN_DIR/tensorboard`` (or the runs
root, for all runs side by side).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from training.diagnostics.gradients import batch_gradients

TENSORBOARD_DIR = "tensorboard"


class RunTensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback, its batch summaries stepped by the run's global step and
    written at most every ``BATCH_SECONDS``.

    Writing a batch's scalars costs about a millisecond on the CPU (measured: 1.3 ms for loss
    and accuracy on 2 busy cores), which would slow a GPU step of ~10 ms by a tenth: the first
    batch of each fit and then one every ``BATCH_SECONDS`` are written, each at its own step.
    """

    BATCH_SECONDS = 0.25

    def __init__(self, log_dir: Path, run_state: Any, *, histograms: bool):
        super().__init__(log_dir=str(log_dir), histogram_freq=1 if histograms else 0, update_freq="batch",
                         write_graph=False, profile_batch=0)
        self.run_state = run_state
        self._written_at = -math.inf
        self._writing = False

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        self._written_at = -math.inf

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        # Keras counts from 0 at every fit (a phase, a resume), and also counts the extra
        # batch-begin that finds a dataset of unknown length exhausted: step by the run's
        # global step instead (advanced at each batch's end), so batch N is step N.
        self._writing = time.monotonic() - self._written_at >= self.BATCH_SECONDS
        if self._writing:
            self._global_train_batch = self.run_state.global_step
            super().on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._writing:
            self._written_at = time.monotonic()
            super().on_train_batch_end(batch, logs)


class GradientHistograms(keras.callbacks.Callback):
    """A histogram of each trainable weight's gradient on a fixed batch, once an epoch."""

    def __init__(self, log_dir: Path, images: np.ndarray, labels: np.ndarray):
        super().__init__()
        self.log_dir, self.images, self.labels = log_dir, images, labels
        self.saved_model: keras.Model | None = None  # the whole classifier when the head trains on features
        self._writer = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import tensorflow as tf

        model = self.model if self.saved_model is None else self.saved_model
        if len(self.images) == 0 or not model.trainable_variables:
            return
        variables = model.trainable_variables
        gradients = batch_gradients(model, self.images, self.labels, variables)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir / "gradients"))
        with self._writer.as_default():
            for variable, gradient in zip(variables, gradients):
                tf.summary.histogram(variable.path, gradient, step=epoch)
        self._writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def tensorboard_callbacks(run_dir: Path, run_state: Any, *, histograms: bool,
                          probe_batch: tuple[np.ndarray, np.ndarray] | None = None) -> list:
    """The TensorBoard callbacks of a phase's ``fit``.

    Args:
        probe_batch: images and one-hot labels for the gradient histograms (with ``histograms``).
    """
    log_dir = Path(run_dir) / TENSORBOARD_DIR
    callbacks: list = [RunTensorBoard(log_dir, run_state, histograms=histograms)]
    if histograms and probe_batch is not None:
        callbacks.append(GradientHistograms(log_dir, *probe_batch))
    return callbacks

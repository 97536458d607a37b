"""Engine speed against a plain Keras script on the same data, in the same process.

    .venv/bin/python benchmarks/engine_overhead.py [--backbone MobileNetV2] [--size 96] [--epochs 6]

Both train the same frozen backbone plus a softmax head on the built-in sample with
augmentation off. "Plain" is what a person would write: image_dataset_from_directory,
cache, prefetch, model.fit. The figure is steady-state training images/s (the first epoch,
which includes tracing, is left out), and the ratio engine / plain; runs alternate so that
machine noise hits both.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from models.backbones import build_backbone
from models.preprocess import Preprocess
from models.registry import get_spec
from training.api import run_training
from training.config import Config
from training.data.sample import ensure_builtin_sample


class EpochTimer(keras.callbacks.Callback):
    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size
        self.rates: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.images = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self.end = time.perf_counter()
        self.images += self.batch_size

    def on_epoch_end(self, epoch, logs=None):
        self.rates.append(self.images / (self.end - self.start))


def plain_keras(data_dir: Path, backbone: str, size: int, epochs: int, batch: int) -> float:
    train, validation = keras.utils.image_dataset_from_directory(
        data_dir, image_size=(size, size), batch_size=batch, label_mode="categorical",
        validation_split=0.2, subset="both", seed=1337)
    num_classes = len(train.class_names)
    train = train.cache().prefetch(tf.data.AUTOTUNE)
    validation = validation.cache().prefetch(tf.data.AUTOTUNE)
    base = build_backbone(backbone, size, "none")
    base.trainable = False
    inputs = keras.Input((size, size, 3))
    x = Preprocess(get_spec(backbone).preprocess)(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer(batch)
    model.fit(train, validation_data=validation, epochs=epochs, callbacks=[timer], verbose=0)
    return statistics.median(timer.rates[1:])


def engine(data_dir: Path, backbone: str, size: int, epochs: int, batch: int) -> float:
    config = Config().with_overrides({
        "data.dir": str(data_dir), "data.image_size": size, "data.batch_size": batch,
        "model.backbone": backbone, "model.weights": "none", "training.head_epochs": epochs,
        "training.fine_tune_epochs": 0, "augmentation.horizontal_flip": False,
        "augmentation.rotation": 0.0, "augmentation.zoom": 0.0, "augmentation.translation": 0.0})
    rates: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        run_training(config, run_dir=Path(folder) / "run",
                     on_event=lambda e: rates.append(e.images_per_second) if e.type == "epoch" else None)
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", default="MobileNetV2")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    data_dir = ensure_builtin_sample()
    results: dict[str, list[float]] = {"plain": [], "engine": []}
    for _ in range(args.rounds):
        for name, fn in (("plain", plain_keras), ("engine", engine)):
            results[name].append(fn(data_dir, args.backbone, args.size, args.epochs, args.batch))
            print(f"{name:>6}: {results[name][-1]:7.1f} images/s", flush=True)
    plain, ours = statistics.median(results["plain"]), statistics.median(results["engine"])
    print(f"{args.backbone} {args.size}px frozen, batch {args.batch}: plain {plain:.1f} img/s, "
          f"engine {ours:.1f} img/s, ratio engine/plain {ours / plain:.2f}")


if __name__ == "__main__":
    main()

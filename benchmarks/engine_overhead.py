"""Engine speed against a plain Keras script: seconds per epoch, side by side (issue 13, item 1).

    .venv/bin/python benchmarks/engine_overhead.py [--quick] [--backbone MobileNetV2] [--size 96]

Both train the same backbone (random weights: nothing is downloaded) and a softmax head on
the same folder of JPEGs, at the same size and batch, with the engine's default
augmentation (horizontal flip, rotation 0.05, zoom 0.1, translation 0.1), each in a fresh
process, alternately, ``--rounds`` times:

- engine: ``python main.py train --quiet`` headless; seconds per epoch from its metrics.csv;
- plain: what a person would write: ``image_dataset_from_directory``, ``cache()``, the same
  Keras augmentation layers in a parallel ``map``, ``prefetch``, ``model.fit``.

Two cases: ``frozen`` (the backbone frozen, only the head trains: the engine's head phase,
``training.mode: head_only``, feature cache off so that both really run the backbone) and
``full`` (every layer trains: ``from_scratch``). The figure is the median of the epochs after
the first (which traces and decodes), and the ratio plain seconds / engine seconds (>= 1:
the engine is as fast or faster; the target is >= 0.97).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    AUGMENTATION,
    EpochSeconds,
    bench_folder,
    median,
    plain_augmentation,
    python,
    result,
)


def plain_worker(data_dir: str, backbone: str, size: int, epochs: int, batch: int, frozen: bool) -> list[float]:
    """The plain Keras script (run in its own process by ``--plain-worker``)."""
    import keras
    import tensorflow as tf

    from models.backbones import build_backbone
    from models.preprocess import add_preprocessing
    from models.registry import get_spec

    keras.utils.set_random_seed(1337)
    train, validation = keras.utils.image_dataset_from_directory(
        data_dir, image_size=(size, size), batch_size=batch, label_mode="categorical",
        validation_split=0.2, subset="both", seed=1337)
    classes = len(train.class_names)
    augment = plain_augmentation()
    train = (train.cache().shuffle(1000, seed=1337)
             .map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
    validation = validation.cache().prefetch(tf.data.AUTOTUNE)
    base = build_backbone(backbone, size, "none")
    base.trainable = not frozen
    inputs = keras.Input((size, size, 3))
    x = add_preprocessing(inputs, get_spec(backbone).preprocess)
    x = base(x, training=False) if frozen else base(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", metrics=["accuracy"])
    timer = EpochSeconds()
    model.fit(train, validation_data=validation, epochs=epochs, callbacks=[timer], verbose=0)
    return timer.seconds


def engine_seconds(data_dir: Path, backbone: str, size: int, epochs: int, batch: int, frozen: bool) -> list[float]:
    sets = {"data.dir": str(data_dir), "data.image_size": size, "data.batch_size": batch,
            "model.backbone": backbone, "model.weights": "none",
            "training.mode": "head_only" if frozen else "from_scratch",
            "training.head_epochs": epochs, "training.fine_tune_epochs": 0,
            **{f"augmentation.{k}": v for k, v in AUGMENTATION.items()}}
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        args = ["main.py", "train", "--out", str(run), "--quiet"]
        for key, value in sets.items():
            args += ["--set", f"{key}={json.dumps(value)}"]
        if frozen:
            args += ["--set", "training.feature_cache=\"off\""]
        done = python(*args)
        if done.returncode != 0 and "feature_cache" in done.stderr:  # an engine without the cache
            args = args[:-2]
            done = python(*args)
        if done.returncode != 0:
            raise RuntimeError(f"the engine run failed: {done.stderr[-2000:]}")
        lines = (run / "metrics.csv").read_text().splitlines()
        header = lines[0].split(",")
        column = header.index("seconds")
        return [float(line.split(",")[column]) for line in lines[1:]]


def plain_seconds(data_dir: Path, backbone: str, size: int, epochs: int, batch: int, frozen: bool) -> list[float]:
    done = python(__file__, "--plain-worker", json.dumps([str(data_dir), backbone, size, epochs, batch, frozen]))
    if done.returncode != 0:
        raise RuntimeError(f"the plain script failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data, 3 epochs, 1 round")
    parser.add_argument("--backbone", default="MobileNetV2")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cases", default="frozen,full")
    parser.add_argument("--plain-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_worker:
        print(json.dumps(plain_worker(*json.loads(args.plain_worker))))
        return
    if args.quick:
        args.images, args.epochs, args.rounds, args.size = 500, 3, 1, 64
    data_dir = bench_folder(args.images, args.size)
    for case in args.cases.split(","):
        frozen = case == "frozen"
        figures: dict[str, list[float]] = {"plain": [], "engine": []}
        for _ in range(args.rounds):
            for name, measure in (("plain", plain_seconds), ("engine", engine_seconds)):
                seconds = measure(data_dir, args.backbone, args.size, args.epochs, args.batch, frozen)
                figures[name].append(median(seconds[1:]))
                print(f"{case:>6} {name:>6}: {figures[name][-1]:.2f} s/epoch  (epochs: "
                      f"{', '.join(f'{s:.2f}' for s in seconds)})", flush=True)
        plain, ours = median(figures["plain"]), median(figures["engine"])
        print(f"{args.backbone} {args.size}px {case}, {args.images} images, batch {args.batch}: plain "
              f"{plain:.2f} s/epoch, engine {ours:.2f} s/epoch, ratio plain/engine {plain / ours:.2f}")
        result("engine_overhead", case=case, backbone=args.backbone, size=args.size, images=args.images,
               plain_seconds=plain, engine_seconds=ours, ratio=plain / ours)


if __name__ == "__main__":
    main()

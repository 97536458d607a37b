"""Does the input ever starve the model? Data-only throughput against training throughput
(issue 13, item 2).

    .venv/bin/python benchmarks/input_pipeline.py [--quick] [--sizes 64 128 224] [--before /tmp/head]
    .venv/bin/python benchmarks/input_pipeline.py --memory [--quick]

For each image size, each figure in a fresh process, alternately, ``--rounds`` times, on a
folder of ``--images`` JPEGs at 256 px with the engine's default augmentation (horizontal
flip, rotation 0.05, zoom 0.1, translation 0.1), batch ``--batch``:

- engine data: the engine's training dataset (``training.data.pipeline.make_dataset``),
  images per second over whole passes once the in-memory cache is full (the first pass,
  which decodes, is not counted);
- plain data: what a person would write: ``image_dataset_from_directory``, ``cache()``, the
  same Keras augmentation layers in a parallel ``map``, ``prefetch``; same counting;
- model: MobileNetV2 (random weights, every layer trains) training on in-memory batches of
  that size, images per second of ``fit`` after the first (tracing) epoch;
- data / model: engine data over model; the target is >= 2 (the input never starves it).

``--before PATH`` adds the engine data figure of another checkout (e.g. a worktree of the
previous commit) measured the same way, for a before/after.

``--memory`` streams a folder whose decoded images exceed a small cache limit (20 MB) for a
few epochs and prints the process's resident memory after each: it must stay flat.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import AUGMENTATION, ROOT, bench_folder, median, plain_augmentation, python, result

SEED = 1337


def _passes_per_second(dataset, passes: int) -> list[float]:
    """Images per second of each of ``passes`` whole passes over ``dataset``."""
    rates = []
    for _ in range(passes):
        start, count = time.perf_counter(), 0
        for images, _labels in dataset:
            count += int(images.shape[0])
        rates.append(count / (time.perf_counter() - start))
    return rates


def engine_worker(data_dir: str, size: int, batch: int, passes: int) -> list[float]:
    """The engine's training dataset: one pass to fill the cache, then ``passes`` measured."""
    from training.config import AugmentationConfig
    from training.data.augment import build_augmenter
    from training.data.pipeline import make_dataset
    from training.data.scan import scan_folder

    scan = scan_folder(data_dir)
    augmenter = build_augmenter(AugmentationConfig(**AUGMENTATION), image_size=size, seed=SEED)
    dataset = make_dataset([str(f) for f in scan.files], scan.labels, len(scan.classes), size, batch,
                           shuffle=True, seed=SEED, augmenter=augmenter)
    _passes_per_second(dataset, 1)
    return _passes_per_second(dataset, passes)


def plain_worker(data_dir: str, size: int, batch: int, passes: int) -> list[float]:
    """``image_dataset_from_directory`` + ``cache()`` + the same layers in a parallel map."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    dataset = keras.utils.image_dataset_from_directory(
        data_dir, image_size=(size, size), batch_size=batch, label_mode="categorical", seed=SEED)
    augment = plain_augmentation()
    dataset = (dataset.cache().map(lambda x, y: (augment(x, training=True), y),
                                   num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    _passes_per_second(dataset, 1)
    return _passes_per_second(dataset, passes)


def model_worker(size: int, batch: int, steps: int, epochs: int) -> list[float]:
    """MobileNetV2 from scratch (every layer trains) on in-memory batches: images/s per epoch."""
    import keras
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import EpochSeconds

    keras.utils.set_random_seed(SEED)
    model = keras.applications.MobileNetV2(input_shape=(size, size, 3), weights=None, classes=5)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    labels = np.eye(5, dtype="float32")[rng.integers(0, 5, batch)]
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat(steps)
    timer = EpochSeconds()
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
    return [steps * batch / seconds for seconds in timer.seconds[1:]]


def memory_worker(data_dir: str, size: int, batch: int, limit: int, epochs: int) -> dict:
    """Resident memory after each pass over a folder larger than the cache limit."""
    from training.config import AugmentationConfig
    from training.data.augment import build_augmenter
    from training.data.pipeline import make_dataset
    from training.data.scan import scan_folder

    scan = scan_folder(data_dir)
    augmenter = build_augmenter(AugmentationConfig(**AUGMENTATION), image_size=size, seed=SEED)
    dataset = make_dataset([str(f) for f in scan.files], scan.labels, len(scan.classes), size, batch,
                           shuffle=True, seed=SEED, augmenter=augmenter, cache_bytes=limit)
    before = _rss_mb()
    after = []
    for _ in range(epochs):
        _passes_per_second(dataset, 1)
        after.append(round(_rss_mb(), 1))
    return {"images": len(scan.files), "decoded_mb": round(len(scan.files) * size * size * 3 / 1e6, 1),
            "limit_mb": limit / 1e6, "rss_before_mb": round(before, 1), "rss_after_each_pass_mb": after}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _run_worker(*args: str, root: Path = ROOT) -> object:
    """One worker in a fresh process (``root`` is the checkout whose ``training`` it imports)."""
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(root)}
    done = python(str(Path(__file__).resolve()), "--worker", *args, "--root", str(root), env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("WORKER ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"worker {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("WORKER "):])


def _table(args: argparse.Namespace) -> None:
    data_dir = str(bench_folder(args.images, 256))
    print(f"{args.images} JPEGs (256 px), batch {args.batch}, default augmentation, "
          f"{args.rounds} round(s), {os.cpu_count()} CPU(s)")
    header = "| px | engine data img/s | plain data img/s | model img/s | data/model |"
    if args.before:
        header += " engine before img/s |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for size in args.sizes:
        figures: dict[str, list[float]] = {"engine": [], "plain": [], "model": [], "before": []}
        common = [str(size), str(args.batch)]
        for _ in range(args.rounds):
            figures["engine"] += _run_worker("engine", data_dir, *common, str(args.passes))
            if args.before:
                figures["before"] += _run_worker("engine", data_dir, *common, str(args.passes),
                                                 root=Path(args.before))
            figures["plain"] += _run_worker("plain", data_dir, *common, str(args.passes))
            figures["model"] += _run_worker("model", "-", *common, str(args.steps), str(args.epochs))
        engine, plain, model = (median(figures[k]) for k in ("engine", "plain", "model"))
        row = f"| {size} | {engine:.0f} | {plain:.0f} | {model:.1f} | {engine / model:.1f} |"
        if args.before:
            row += f" {median(figures['before']):.0f} |"
        print(row, flush=True)
        result("input_pipeline", size=size, engine_images_per_second=round(engine, 1),
               plain_images_per_second=round(plain, 1), model_images_per_second=round(model, 2),
               data_over_model=round(engine / model, 2),
               **({"engine_before_images_per_second": round(median(figures["before"]), 1)}
                  if args.before else {}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, passes and steps")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    parser.add_argument("--images", type=int, default=None, help="default 2000 (--quick: 500)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (--quick: 1)")
    parser.add_argument("--before", default=None, help="another checkout to measure the engine data of")
    parser.add_argument("--memory", action="store_true", help="resident memory while streaming")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--root", default=str(ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        sys.path.insert(0, args.root)  # the checkout whose engine is measured
        return _worker(args.worker)
    args.images = args.images or (500 if args.quick else 2000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.passes, args.steps, args.epochs = (2, 4, 2) if args.quick else (3, 10, 3)
    if args.memory:
        images = 600 if args.quick else 2000
        report = _run_worker("memory", str(bench_folder(images, 256)), "224", str(args.batch),
                             str(20_000_000), str(3 if args.quick else 5))
        print(json.dumps(report))
        result("input_pipeline_memory", **report)
        return 0
    _table(args)
    return 0


def _worker(spec: list[str]) -> int:
    kind, *rest = spec
    if kind == "engine":
        figure = engine_worker(rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
    elif kind == "plain":
        figure = plain_worker(rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
    elif kind == "model":
        figure = model_worker(int(rest[1]), int(rest[2]), int(rest[3]), int(rest[4]))
    else:
        figure = memory_worker(rest[0], int(rest[1]), int(rest[2]), int(rest[3]), int(rest[4]))
    print("WORKER " + json.dumps(figure), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GPU speed in one command: the engine against a plain Keras script, float32 against mixed
precision, XLA on and off (issue 13).

    .venv/bin/python benchmarks/gpu.py                # on a GPU machine: the full table
    .venv/bin/python benchmarks/gpu.py --quick        # anywhere: a smoke test (CPU fallback)

EfficientNetB0 and ResNet50 at 224 px, random weights (``weights: none``: nothing is
downloaded), every layer training, on ~2000 generated JPEGs (the built-in shapes, 5 classes;
made once under ``$FINETUNE_STUDIO_BENCH_DATA`` or ``~/.cache/finetune-studio/bench``),
batch 64, the engine's default augmentation. Each measurement runs in a fresh process:

- engine: ``training.api.run_training`` headless, with ``training.mixed_precision`` and
  ``training.jit_compile`` set to "on" or "off", and augmentation in the input pipeline or
  (without XLA: rotation and zoom have no XLA kernel) in the training step
  (``training.augment_in``, ``--augment-in``);
- plain: what a person would write: ``image_dataset_from_directory``, ``cache()``, the same
  Keras augmentation layers in a parallel ``map``, ``prefetch``, a ``keras.applications``
  backbone, ``keras.mixed_precision.set_global_policy`` and ``compile(jit_compile=...)``,
  ``model.fit``.

The figure is training images per second of whole epochs (validation included, as in both
the engine and a plain ``fit``), median over the epochs after the first (which traces,
compiles and decodes). The table gives the ratios engine / plain (>= 0.97 is the target),
mixed / float32 and XLA on / off, and is written to ``benchmarks/results/gpu-<date>.md``.

``--quick`` (32 px, 100 images, 1 epoch, batch 16) only proves that the script works: it
runs on a CPU (where mixed precision and XLA are slow by nature) and its figures mean
nothing. On the 2-core development machine (no GPU) all 8 EfficientNetB0 measurements of
``--quick`` ran (engine and plain, float32 and mixed_float16, XLA off and on: 0.6-2.5
images/s, 1-4 minutes each, XLA the slowest); ResNet50 goes through the same code. On a GPU
the full table is 20 fresh processes of 3 epochs each (per backbone and precision: plain and
the engine with XLA on; plain, the engine augmenting in the pipeline and in the training step
with XLA off; ``--backbones``, ``--precisions``, ``--xla``, ``--contenders`` and ``--augment-in``
narrow it; ``--epochs 2`` halves it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import AUGMENTATION, bench_folder, plain_augmentation

PRECISIONS = {"float32": "off", "mixed_float16": "on"}   # policy -> training.mixed_precision


# -- the two contenders, each in its own process ----------------------------------------------------
def device_name() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"CPU ({os.cpu_count()} cores)"
    details = tf.config.experimental.get_device_details(gpus[0])
    capability = ".".join(str(part) for part in details.get("compute_capability", ()))
    return f"{details.get('device_name', gpus[0].name)} (compute {capability})"


def engine_worker(job: dict) -> dict:
    from training.api import run_training
    from training.config import Config
    from training.events import DataReport, EpochEnd, Failed

    config = Config().with_overrides({
        "data.dir": job["data"], "data.image_size": job["size"], "data.batch_size": job["batch"],
        "model.backbone": job["backbone"], "model.weights": "none", "training.mode": "from_scratch",
        "training.head_epochs": 0, "training.fine_tune_epochs": job["epochs"],
        "training.mixed_precision": PRECISIONS[job["policy"]], "training.jit_compile": "on" if job["xla"] else "off",
        "training.augment_in": job.get("augment_in", "input_pipeline"),
        **{f"augmentation.{key}": value for key, value in AUGMENTATION.items()}})
    epochs, failures, train_images = [], [], 0

    def on_event(event):
        nonlocal train_images
        if isinstance(event, EpochEnd):
            epochs.append(event.seconds)
        elif isinstance(event, Failed):
            failures.append(event.message)
        elif isinstance(event, DataReport):
            train_images = sum(event.train_counts.values())

    with tempfile.TemporaryDirectory() as folder:
        run_training(config, run_dir=Path(folder) / "run", on_event=on_event)
    if failures:
        raise RuntimeError(failures[0])
    return {"seconds": epochs, "train_images": train_images}


def plain_worker(job: dict) -> dict:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(1337)
    keras.mixed_precision.set_global_policy(job["policy"])
    size, batch = job["size"], job["batch"]
    train, validation = keras.utils.image_dataset_from_directory(
        job["data"], image_size=(size, size), batch_size=batch, label_mode="categorical",
        validation_split=0.2, subset="both", seed=1337)
    classes, train_images = len(train.class_names), len(train.file_paths)
    # float32 augmentation in tf.data whatever the policy: the model casts its inputs itself.
    augment = plain_augmentation(dtype="float32")
    train = (train.cache().shuffle(1000, seed=1337)
             .map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
    validation = validation.cache().prefetch(tf.data.AUTOTUNE)
    application = {"EfficientNetB0": keras.applications.EfficientNetB0,
                   "ResNet50": keras.applications.ResNet50}[job["backbone"]]
    preprocess = {"EfficientNetB0": lambda x: x,  # EfficientNet rescales inside the model
                  "ResNet50": keras.applications.resnet50.preprocess_input}[job["backbone"]]
    inputs = keras.Input((size, size, 3))
    x = application(include_top=False, weights=None, input_shape=(size, size, 3))(preprocess(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(classes, activation="softmax", dtype="float32")(x)  # softmax in float32
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=job["xla"])
    timer = epoch_timer()
    model.fit(train, validation_data=validation, epochs=job["epochs"], callbacks=[timer], verbose=0)
    return {"seconds": timer.seconds, "train_images": train_images}


def epoch_timer():
    """A Keras callback whose ``seconds`` are the wall times of whole epochs."""
    import keras

    class EpochSeconds(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self._started = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._started)

    return EpochSeconds()


def worker(job: dict) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    measured = (engine_worker if job["contender"] == "engine" else plain_worker)(job)
    seconds = measured["seconds"]
    steady = seconds[1:] or seconds
    return {**job, "device": device_name(), "epoch_seconds": seconds,
            "images_per_second": measured["train_images"] / statistics.median(steady)}


def measure(job: dict, timeout: float) -> dict:
    """``worker(job)`` in a fresh Python: a clean policy, XLA cache and GPU memory each time."""
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return {**job, "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(lines[-1][len("RESULT "):])


# -- the table ---------------------------------------------------------------------------------------
def key(row: dict, **changes) -> tuple:
    merged = {**row, **changes}
    return (merged["backbone"], merged["contender"], merged["policy"], merged["xla"],
            merged.get("augment_in", "input_pipeline"))


def table(rows: list[dict]) -> str:
    by_key = {key(row): row.get("images_per_second") for row in rows}

    def ratio(row: dict, **other) -> str:
        mine, theirs = by_key.get(key(row)), by_key.get(key(row, **other))
        return f"{mine / theirs:.2f}" if mine and theirs else "-"

    lines = ["| backbone | contender | augmentation in | precision | XLA | images/s | engine / plain "
             "| mixed / float32 | XLA on / off |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        speed = f"{row['images_per_second']:.1f}" if "images_per_second" in row else f"failed: {row['error']}"
        lines.append(" | ".join([
            f"| {row['backbone']}", row["contender"], row.get("augment_in", "input_pipeline").replace("_", " "),
            row["policy"], "on" if row["xla"] else "off", speed,
            ratio(row, contender="plain", augment_in="input_pipeline") if row["contender"] == "engine" else "",
            ratio(row, policy="float32") if row["policy"] != "float32" else "",
            ratio(row, xla=False) if row["xla"] else ""]) + " |")
    return "\n".join(lines)


def report(rows: list[dict], args: argparse.Namespace) -> str:
    devices = sorted({row["device"] for row in rows if "device" in row}) or ["unknown"]
    return "\n".join([
        f"# GPU benchmark, {date.today().isoformat()}{' (--quick: a smoke test, figures mean nothing)' if args.quick else ''}",
        "",
        f"Device: {', '.join(devices)}. {args.images} images ({args.size} px, 5 classes, 80 % trained), "
        f"batch {args.batch}, {args.epochs} epochs, every layer training from random weights, default "
        "augmentation. images/s: training images per second of whole epochs (validation included), "
        "median of the epochs after the first. Command: `python benchmarks/gpu.py"
        + (" --quick" if args.quick else "") + "`.",
        "",
        table(rows),
        ""])


def jobs(args: argparse.Namespace, xla: bool) -> list[tuple[str, str]]:
    """(contender, where augmentation runs) pairs. The default augmentation (rotation, zoom,
    translation) cannot compile under XLA, so the engine never augments in an XLA training step."""
    pairs = []
    for contender in args.contenders.split(","):
        places = args.augment_in.split(",") if contender == "engine" else ["input_pipeline"]
        pairs += [(contender, place) for place in places if not (xla and place == "training_step")]
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="32 px, 100 images, 1 epoch: a smoke test")
    parser.add_argument("--backbones", default="EfficientNetB0,ResNet50")
    parser.add_argument("--precisions", default="float32,mixed_float16")
    parser.add_argument("--xla", default="off,on")
    parser.add_argument("--contenders", default="plain,engine")
    parser.add_argument("--augment-in", default="input_pipeline,training_step",
                        help="where the engine augments (training.augment_in); the plain script maps on the CPU")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per measurement")
    parser.add_argument("--out", help="the report's path (default benchmarks/results/gpu-<date>.md)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    if args.quick:
        args.size, args.images, args.epochs, args.batch = 32, 100, 1, 16
    data = bench_folder(args.images, args.size)
    rows = []
    for backbone in args.backbones.split(","):
        for policy in args.precisions.split(","):
            for xla in (value == "on" for value in args.xla.split(",")):
                for contender, augment_in in jobs(args, xla):
                    job = {"contender": contender, "backbone": backbone, "policy": policy, "xla": xla,
                           "augment_in": augment_in,
                           "data": str(data), "size": args.size, "batch": args.batch, "epochs": args.epochs}
                    row = measure(job, args.timeout)
                    rows.append(row)
                    print("RESULT " + json.dumps({"benchmark": "gpu", **{k: v for k, v in row.items()
                                                                       if k != "data"}}), flush=True)
                    figure = (f"{row['images_per_second']:.1f} images/s" if "images_per_second" in row
                              else f"failed: {row['error']}")
                    print(f"{backbone:>14} {contender:>6} {augment_in:>14} {policy:>13} "
                          f"XLA {'on ' if xla else 'off'}: {figure}", flush=True)
    text = report(rows, args)
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / (
        f"gpu-{date.today().isoformat()}{'-quick' if args.quick else ''}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print("\n" + text + f"\nwritten to {out}")
    return 0 if all("images_per_second" in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The feature cache against running the frozen backbone every epoch (issue 13, item 3).

    .venv/bin/python benchmarks/feature_cache.py [--quick] [--size 96] [--epochs 6] [--rounds 2] [--images N]

The engine's head phase (``training.mode: head_only``) on MobileNetV2 at 96 px and the
built-in sample (or ``--images N`` generated JPEGs: per-epoch costs of Keras weigh less on a
bigger folder, so the ratio grows with it), headless (``python main.py train --quiet``), each run in a fresh process,
``training.feature_cache`` ``auto`` and ``off`` alternately, ``--rounds`` times. The
backbone has random weights (ImageNet's cannot be downloaded offline); the time per epoch
is the same, and a frozen random backbone still computes features a head can learn from.

Per run: the median seconds of the epochs after the first (metrics.csv, validation
included), the whole run's wall-clock seconds (start-up and the one feature pass
included) and the last epoch's validation accuracy. Cases: ``exact`` (augmentation off:
features computed once) and, without ``--quick``, ``augmented`` (the default augmentation:
a few augmented copies). The figures: off/auto seconds per epoch (target >= 20) and the
accuracies side by side (exact: equal; augmented: within noise).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_folder, median, python, result

QUIET = {"augmentation.horizontal_flip": "false", "augmentation.rotation": "0", "augmentation.zoom": "0",
         "augmentation.translation": "0"}


def run_once(data_dir: Path, run_dir: Path, *, cache: str, size: int, epochs: int,
             augmented: bool) -> dict[str, float]:
    settings = {"data.dir": f'"{data_dir}"', "model.backbone": '"MobileNetV2"', "model.weights": '"none"',
                "training.mode": '"head_only"', "training.head_epochs": str(epochs),
                "training.fine_tune_epochs": "0", "data.image_size": str(size),
                "training.feature_cache": f'"{cache}"', **({} if augmented else QUIET)}
    args = ["main.py", "train", "--out", str(run_dir), "--quiet"]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    started = time.perf_counter()
    done = python(*args, env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"main.py train failed ({done.returncode}): {done.stderr[-2000:]}")
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    seconds = [float(row["seconds"]) for row in rows]
    return {"epoch_seconds": median(seconds[1:]), "first_epoch_seconds": seconds[0], "run_seconds": wall,
            "val_accuracy": float(rows[-1]["val_accuracy"]), "images_per_second": median(
                [float(row["images_per_second"]) for row in rows[1:]])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the exact case, 4 epochs, one round")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=0, help="generated images instead of the built-in sample")
    args = parser.parse_args()
    epochs, rounds = (4, 1) if args.quick else (args.epochs, args.rounds)
    cases = ["exact"] if args.quick else ["exact", "augmented"]

    from training.data.sample import ensure_builtin_sample

    data_dir = bench_folder(args.images, args.size) if args.images else ensure_builtin_sample()
    print(f"{'case':<10} {'cache':<5} {'s/epoch':>8} {'img/s':>8} {'epoch 1 s':>9} {'run s':>7} {'val acc':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            runs: dict[str, list[dict[str, float]]] = {"auto": [], "off": []}
            for round_ in range(rounds):
                for cache in ("off", "auto") if round_ % 2 == 0 else ("auto", "off"):
                    figures = run_once(data_dir, Path(tmp) / f"{case}-{cache}-{round_}", cache=cache,
                                       size=args.size, epochs=epochs, augmented=case == "augmented")
                    runs[cache].append(figures)
                    print(f"{case:<10} {cache:<5} {figures['epoch_seconds']:>8.3f} "
                          f"{figures['images_per_second']:>8.0f} {figures['first_epoch_seconds']:>9.2f} "
                          f"{figures['run_seconds']:>7.1f} {figures['val_accuracy']:>8.3f}", flush=True)
            off = median([r["epoch_seconds"] for r in runs["off"]])
            auto = median([r["epoch_seconds"] for r in runs["auto"]])
            result("feature_cache", case=case, size=args.size, images=args.images or "sample", head_epochs=epochs, rounds=rounds,
                   off_epoch_seconds=off, cached_epoch_seconds=auto, speedup=off / auto,
                   off_run_seconds=median([r["run_seconds"] for r in runs["off"]]),
                   cached_run_seconds=median([r["run_seconds"] for r in runs["auto"]]),
                   off_val_accuracy=median([r["val_accuracy"] for r in runs["off"]]),
                   cached_val_accuracy=median([r["val_accuracy"] for r in runs["auto"]]))


if __name__ == "__main__":
    main()

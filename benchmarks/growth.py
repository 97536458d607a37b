"""How a run's epoch time grows with the number of images and their size (issue 13, item 6).

    .venv/bin/python benchmarks/growth.py [--quick]

For 1,000 and 10,000 JPEGs at 64, 128 and 224 px (``--quick``: 1,000 at 64 and 128): one
headless ``main.py train`` of a frozen MobileNetV2 head (random weights, default
augmentation, batch 32, 2 epochs, feature cache as configured by default), reporting the
first epoch (it decodes every image and traces the model) and the second (images from the
in-memory cache), and images/s. The 100k-file scan is ``benchmarks/scan_large_folder.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_folder, python, result


def epoch_seconds(data_dir: Path, size: int, epochs: int = 2) -> list[float]:
    sets = {"data.dir": str(data_dir), "data.image_size": size, "data.batch_size": 32,
            "model.backbone": "MobileNetV2", "model.weights": "none", "training.mode": "head_only",
            "training.head_epochs": epochs, "training.fine_tune_epochs": 0}
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        args = ["main.py", "train", "--out", str(run), "--quiet"]
        for key, value in sets.items():
            args += ["--set", f"{key}={json.dumps(value)}"]
        done = python(*args)
        if done.returncode != 0:
            raise RuntimeError(f"the run failed: {done.stderr[-2000:]}")
        lines = (run / "metrics.csv").read_text().splitlines()
        column = lines[0].split(",").index("seconds")
        return [float(line.split(",")[column]) for line in lines[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", help="IMAGESxPX,... (default: 1000 and 10000 at 64, 128 and 224)")
    args = parser.parse_args()
    cases = [(1000, 64), (1000, 128)] if args.quick else [
        (count, size) for count in (1000, 10000) for size in (64, 128, 224)]
    if args.cases:
        cases = [tuple(int(part) for part in case.split("x")) for case in args.cases.split(",")]
    print(f"{'images':>7} {'px':>4} {'epoch 1 s':>10} {'epoch 2 s':>10} {'img/s (2)':>10}")
    for count, size in cases:
        seconds = epoch_seconds(bench_folder(count, size), size)
        train_images = int(count * 0.8)
        rate = train_images / seconds[1]
        print(f"{count:>7} {size:>4} {seconds[0]:>10.1f} {seconds[1]:>10.1f} {rate:>10.0f}", flush=True)
        result("growth", images=count, size=size, first_epoch_seconds=seconds[0],
               second_epoch_seconds=seconds[1], images_per_second=rate)


if __name__ == "__main__":
    main()

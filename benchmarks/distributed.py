"""The cost of tf.distribute: seconds per training step with and without a strategy (issue 15).

    .venv/bin/python benchmarks/distributed.py [--quick] [--backbone MobileNetV2] [--size 64] [--rounds 2]

The engine trains the same model (random weights, from scratch) on the same folder, at the same
global batch, in a fresh process per case, the cases alternating, ``--rounds`` times:

- ``off``: no strategy, one device (``training.distributed: off``);
- ``mirrored x1``: MirroredStrategy over one device: the wrapper alone;
- ``mirrored x2``: MirroredStrategy over two devices, each on half of every batch.

Without a GPU the devices are logical CPU devices (``tf.config.set_logical_device_configuration``)
sharing the same cores: the figure is the strategy's overhead, never a speed-up. On a machine
with GPUs, ``mirrored`` uses them all: ``x1`` runs on a machine with one GPU (the wrapper's cost
there), ``x2`` on one with two.

A step's time is the epoch's training time (metrics.csv's images per second) over its steps,
the median of the epochs after the first (which traces and decodes); the ratio is case / off
(1.0: no overhead).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_folder, median, python, result

CASES = (("off", 1), ("mirrored", 1), ("mirrored", 2))


def worker(data_dir: str, backbone: str, size: int, epochs: int, batch: int, setting: str,
           devices: int) -> list[float] | None:
    """One case in this process: milliseconds per step of each epoch; None when the machine has
    GPUs, but fewer than ``devices``."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus and len(gpus) != devices and setting == "mirrored":
        return None
    if not gpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    from training.config import Config
    from training.engine.run import run_training

    config = Config().with_overrides({
        "data.dir": data_dir, "data.image_size": size, "data.batch_size": batch // devices,
        "model.backbone": backbone, "model.weights": "none", "training.mode": "from_scratch",
        "training.head_epochs": 0, "training.fine_tune_epochs": epochs, "training.distributed": setting})
    with tempfile.TemporaryDirectory() as folder:
        run = run_training(config, run_dir=Path(folder) / "run", on_event=lambda event: None)
        if run.stop_reason != "completed":
            raise SystemExit(f"{setting} x{devices}: {run.error}")
        summary = json.loads((Path(folder) / "run" / "summary.json").read_text())
    images, steps = summary["train_images"], summary["steps_per_epoch"]
    assert summary["distribution"]["global_batch_size"] == batch, summary["distribution"]
    return [1000.0 * images / row["images_per_second"] / steps for row in run.history]


def measure(data_dir: Path, args: argparse.Namespace) -> dict[tuple[str, int], list[float]]:
    steps: dict[tuple[str, int], list[float]] = {case: [] for case in CASES}
    for _ in range(args.rounds):
        for setting, devices in CASES:
            done = python(__file__, "--worker", str(data_dir), args.backbone, str(args.size), str(args.epochs),
                          str(args.batch), setting, str(devices), env={"TF_CPP_MIN_LOG_LEVEL": "2"})
            lines = [line for line in done.stdout.splitlines() if line.startswith("STEP_MS ")]
            if done.returncode != 0 or not lines:
                raise SystemExit(f"{setting} x{devices} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
            measured = json.loads(lines[-1][len("STEP_MS "):])
            if measured is not None:
                steps[(setting, devices)] += measured[1:]  # after the first epoch
    return {case: values for case, values in steps.items() if values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data, one round: checks that it runs")
    parser.add_argument("--backbone", default="MobileNetV2")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32, help="the global batch (each of 2 devices: half)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        data_dir, backbone, size, epochs, batch, setting, devices = args.worker
        print("STEP_MS " + json.dumps(worker(data_dir, backbone, int(size), int(epochs), int(batch), setting,
                                             int(devices))), flush=True)
        return
    if args.quick:
        args.backbone, args.size, args.images, args.epochs, args.rounds = "SmallCNN", 32, 100, 2, 1
    data_dir = bench_folder(args.images, max(args.size, 32))
    steps = measure(data_dir, args)
    off = median(steps[("off", 1)])
    for (setting, devices), values in steps.items():
        step = median(values)
        result("distributed", case=f"{setting} x{devices}", backbone=args.backbone, size=args.size,
               global_batch=args.batch, step_ms=round(step, 2), off_step_ms=round(off, 2),
               ratio=round(step / off, 3), epochs_measured=len(values))


if __name__ == "__main__":
    main()

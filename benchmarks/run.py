"""Every speed measurement of issue 13 in one command, and one table.

    .venv/bin/python benchmarks/run.py [--quick] [--only NAME,NAME]

Runs each benchmark script in its own process, one after the other (never two at once: they
would measure each other), collects the ``RESULT {json}`` line(s) each prints, and prints
one table: engine/plain ratios (frozen and fully trained), cached/uncached head epochs,
data-only against model throughput, the window's stalls and the GUI-attached ratio,
start-up times, growth with images and size, the 100k-file scan. ``--quick`` passes
``--quick`` to each (small data, one round: it checks that everything runs, the figures
are rough). Run it on a quiet machine: the figures are ratios measured side by side, but a
busy machine still skews them. A script that fails is reported and the rest go on.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import python, read_results

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["engine_overhead", "feature_cache", "input_pipeline", "gui_responsiveness", "startup",
              "growth", "scan_large_folder", "distributed", "gpu"]


def describe(row: dict) -> str:
    name = row["benchmark"]
    if name == "engine_overhead":
        return (f"{row['case']:>6}: plain {row['plain_seconds']:.2f} s/epoch, engine "
                f"{row['engine_seconds']:.2f} s/epoch -> plain/engine {row['ratio']:.2f} (target >= 0.97)")
    if name == "growth":
        return (f"{row['images']:>6} images at {row['size']:>3} px: epoch 1 {row['first_epoch_seconds']:.1f} s, "
                f"epoch 2 {row['second_epoch_seconds']:.1f} s ({row['images_per_second']:.0f} img/s)")
    if name == "scan":
        return (f"{row['files']} files, verify={row['verify']}: {row['seconds']:.1f} s, "
                f"peak {row['peak_mb']:.0f} MB")
    if name == "gui_attached":
        return f"epoch seconds headless / in the window with live plots: {row['ratio']:.2f} (target >= 0.95)"
    if name == "gui_stalls":
        return f"{row['mode']:>8}: max stall {row['max_stall_ms']:.0f} ms, p99 {row['p99_stall_ms']:.0f} ms"
    if name == "feature_cache":
        return (f"{row['case']:>10} ({row.get('images', 'sample')} images): head epoch "
                f"{row['off_epoch_seconds']:.3f} s end to end, "
                f"{row['cached_epoch_seconds']:.3f} s on cached features -> {row['speedup']:.0f}x (target >= 20); "
                f"val accuracy {row['off_val_accuracy']:.3f} / {row['cached_val_accuracy']:.3f}")
    if name == "input_pipeline":
        return (f"{row['size']:>4} px: data {row['engine_images_per_second']:.0f} img/s (plain "
                f"{row['plain_images_per_second']:.0f}), model {row['model_images_per_second']:.0f} img/s -> "
                f"data/model {row['data_over_model']:.1f} (target >= 2)")
    if name == "startup":
        return f"{row['what']}: {row['median_seconds']:.2f} s (median; target <= {row['target_seconds']:.0f} s)"
    if name == "time_to_window":
        return f"window shown after {row['median_seconds']:.2f} s (median; max {row['max_seconds']:.2f}; target <= 2)"
    if name == "distributed":
        return (f"{row['case']:>11}: {row['step_ms']:.1f} ms a step at global batch {row['global_batch']} "
                f"({row['backbone']} {row['size']} px) -> {row['ratio']:.2f} x the step without a strategy")
    shown = {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items() if k != "benchmark"}
    return ", ".join(f"{k} {v}" for k, v in shown.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated names of " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else [
        name for name in BENCHMARKS if name != "gpu" or shutil.which("nvidia-smi")]  # hours on a CPU
    table: list[tuple[str, str]] = []
    for name in names:
        script = HERE / f"{name}.py"
        if not script.is_file():
            table.append((name, "missing"))
            continue
        started = time.perf_counter()
        print(f"== {name} ...", file=sys.stderr, flush=True)
        done = python(str(script), *(["--quick"] if args.quick else []),
                      env={"QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}, timeout=4 * 3600)
        rows = read_results(done.stdout)
        if done.returncode != 0 or not rows:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            table.append((name, f"failed (exit {done.returncode}): {' | '.join(tail)}"))
        table += [(row["benchmark"], describe(row)) for row in rows]
        print(f"   {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    width = max(len(name) for name, _ in table)
    print(f"\n{'benchmark':<{width}}  figures")
    for name, text in table:
        print(f"{name:<{width}}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

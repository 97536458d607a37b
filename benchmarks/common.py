"""What the benchmarks share: their data, a plain Keras script to compare with, and the one
line each prints for ``benchmarks/run.py`` (``RESULT {json}``).

Every figure is a ratio or a rate measured side by side in the same session, never a
wall-clock threshold.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("FINETUNE_STUDIO_BENCH_DATA", Path.home() / ".cache" / "finetune-studio" / "bench"))


def bench_folder(images: int, size: int, classes: int = 5, fmt: str = "jpg") -> Path:
    """A class-per-folder tree of ``images`` JPEGs at ``size`` px (made once, then reused)."""
    from training.data.sample import make_shapes_dataset

    folder = CACHE / f"shapes-{images}-{size}px-{fmt}"
    marker = folder / ".complete"
    if not marker.exists():
        make_shapes_dataset(folder, classes=classes, per_class=images // classes, size=size, fmt=fmt,
                            seed=1, colour_hint=0.5)
        marker.write_text("ok")
    return folder


# The engine's default augmentation (training.config's defaults), for the plain scripts.
AUGMENTATION = {"horizontal_flip": True, "rotation": 0.05, "zoom": 0.1, "translation": 0.1}


def plain_augmentation(**options):
    """The engine's default augmentation as a person writes it: Keras layers in a Sequential
    (``options`` go to every layer, e.g. ``dtype="float32"`` under mixed precision)."""
    import keras

    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", **options),
        keras.layers.RandomRotation(AUGMENTATION["rotation"], fill_mode="reflect", **options),
        keras.layers.RandomZoom(AUGMENTATION["zoom"], fill_mode="reflect", **options),
        keras.layers.RandomTranslation(AUGMENTATION["translation"], AUGMENTATION["translation"],
                                       fill_mode="reflect", **options)])


def result(name: str, **figures: Any) -> None:
    """The line ``benchmarks/run.py`` reads."""
    print("RESULT " + json.dumps({"benchmark": name, **figures}), flush=True)


def read_results(output: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("RESULT "):]) for line in output.splitlines() if line.startswith("RESULT ")]


def python(*args: str, env: dict[str, str] | None = None, timeout: float = 3600) -> subprocess.CompletedProcess:
    """Runs ``.venv``'s python (this interpreter) in the repository root, capturing its output."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class EpochSeconds:
    """A Keras callback: seconds of each epoch, validation included (as metrics.csv counts)."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self.start)

        return _Timer()

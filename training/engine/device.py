"""What the run computes on, and the versions that produced it (for summary.json)."""

from __future__ import annotations

import os
import platform
import sys

import keras
import numpy
import tensorflow as tf


def describe_device() -> str:
    """e.g. "GPU: NVIDIA H100 (float32)" or "CPU: 2 threads"."""
    gpus = tf.config.list_physical_devices("GPU")
    precision = keras.mixed_precision.global_policy().name
    if gpus:
        names = []
        for gpu in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
            except (RuntimeError, ValueError):
                names.append(gpu.name)
        return f"GPU: {', '.join(names)} ({precision})"
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or 1
    return f"CPU: {threads} threads ({precision})"


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "executable": sys.executable,
    }

"""What the run computes on, and the versions that produced it (for summary.json)."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass

import keras
import numpy
import tensorflow as tf


@dataclass(frozen=True)
class GpuInfo:
    """One GPU TensorFlow sees.

    Attributes:
        name: e.g. "NVIDIA H100 80GB HBM3" (TensorFlow's own device name when the driver
            gives none).
        compute_capability: (major, minor) of an NVIDIA GPU, e.g. (9, 0); None when
            unknown (another vendor, or no details from the driver).
    """

    name: str
    compute_capability: tuple[int, int] | None = None

    def describe(self) -> str:
        """e.g. "NVIDIA H100, compute 9.0"."""
        if self.compute_capability is None:
            return self.name
        major, minor = self.compute_capability
        return f"{self.name}, compute {major}.{minor}"


def list_gpus() -> list[GpuInfo]:
    """The GPUs TensorFlow can use, in its order (a run computes on the first)."""
    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except (RuntimeError, ValueError):
            details = {}
        capability = details.get("compute_capability")
        gpus.append(GpuInfo(name=details.get("device_name") or gpu.name,
                            compute_capability=tuple(capability) if capability else None))
    return gpus


def describe_device(policy: str | None = None) -> str:
    """e.g. "GPU: NVIDIA H100 (mixed_float16)" or "CPU: 2 threads (float32)".

    Args:
        policy: the dtype policy the run computes in; default: Keras's global policy now.
    """
    gpus = list_gpus()
    precision = policy or keras.mixed_precision.global_policy().name
    if gpus:
        return f"GPU: {', '.join(gpu.name for gpu in gpus)} ({precision})"
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

"""The ImageNet weights a run needs, downloaded once with progress reported as log events."""

from __future__ import annotations

import threading

from models.weights import (
    ensure_imagenet_weights,
    imagenet_weights_cached,
    imagenet_weights_filename,
    keras_cache_dir,
)
from training.engine.errors import StopRequested
from training.events import EventCallback, Log


def fetch_imagenet_weights(backbone: str, image_size: int, emit: EventCallback,
                           stop: threading.Event) -> None:
    """Downloads the backbone's ImageNet file into Keras's cache unless it is there.

    Raises:
        StopRequested: the stop flag was set during the download.
        models.weights.WeightsUnavailableError: offline, or the download failed.
    """
    if imagenet_weights_cached(backbone, image_size):
        return
    filename = imagenet_weights_filename(backbone, image_size)
    emit(Log(f"Downloading ImageNet weights {filename} into {keras_cache_dir()} ..."))
    reported = [-1]

    def progress(done: int, total: int | None) -> None:
        if stop.is_set():
            raise StopRequested()
        tenth = int(10 * done / total) if total else -1
        if tenth > reported[0]:
            reported[0] = tenth
            emit(Log(f"Downloading {filename}: {done / 1e6:.1f} of {total / 1e6:.1f} MB"))

    ensure_imagenet_weights(backbone, image_size, progress=progress)

"""Exact and near-duplicate images shared by the training and the validation files.

A validation image that is also in the training set (byte for byte, or re-saved, resized,
recompressed, brightened) is scored on something the model has already seen: validation
accuracy then overstates how the model does on new pictures. ``find_cross_duplicates``
finds such pairs cheaply enough to run before every training run:

- exact: only files whose byte sizes occur on both sides are read and hashed (BLAKE2b),
  so a folder without duplicates costs one ``stat`` per file;
- near: each image becomes an 8 x 8 RGB thumbnail (decoded by the app's own decoder at a
  small size, so ``Image.draft`` makes a large JPEG cheap), each channel centred, the
  whole scaled to unit length (so brightness and contrast changes do not matter); two images are near-duplicates when their thumbnails correlate at least
  ``NEAR_DUPLICATE_MIN_CORRELATION``. All correlations across the split are one matrix
  product (BLAS), in chunks.

A 64-bit difference hash (dHash) was tried first and dropped: on images with flat
backgrounds its bits follow noise (a JPEG re-save of a shapes image moved 17 of 64 bits
while two different shapes were 5 bits apart), and an isoluminant image (a red shape on a
gray of the same brightness) has no grayscale structure to hash. Numbers in docs/hints.md.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

import numpy as np

from training.data.errors import CheckStopped
from training.data.images import ImageLoadError, load_image

# 1 - correlation of the 8 x 8 thumbnails, measured (docs/hints.md). Copies of 64-96 px
# and larger images, re-saved as JPEG quality 75-90, halved, doubled or brightened 10 %:
# <= 0.0031. Different images: >= 0.0084 on the near-identical "easy" synthetic shapes
# (1000 images at 64 px), >= 0.017 on the built-in sample, >= 0.02 on easy shapes at
# 32 px, >= 0.46 on photo-like images. 0.005 leaves ~1.6x on both sides of the worst
# cases. Not caught: crops and shifts, and JPEG re-saves of images as tiny as 32 px
# (their 8 x 8 JPEG blocks are a quarter of the picture: up to 0.011).
NEAR_DUPLICATE_MIN_CORRELATION = 0.995
# A thumbnail flatter than this (standard deviation in gray levels) is a blank or
# single-colour image: its correlation is noise, so it gets the exact check only.
MIN_THUMBNAIL_STD = 3.0
# Thumbnails decode every image once: measured ~0.3-0.6 ms a small PNG or VGA JPEG, 7-13 ms
# a 12-megapixel JPEG even drafted down to 1/8 (docs/hints.md). The near-duplicate check
# is skipped (exact checks still run) when the first files project a total above this
# budget, so that a run on a huge folder of photos does not wait minutes for its first
# batch: ~20k VGA-sized files fit, ~3k 12-megapixel ones do.
NEAR_DUPLICATE_SECONDS_BUDGET = 20.0
# Exact duplicates are first matched on size and the first 64 KB; only those candidates
# are read whole (uncompressed formats such as BMP share one size per resolution).
_HEAD_BYTES = 65536
# Pillow releases the GIL while it decodes, so two threads use both cores.
_THREADS = 2
_DECODE_SIZE = 32
_THUMBNAIL = 8
_CHUNK = 1024
_PROBE_FILES = 64
# Thumbnails are made in blocks so that a caller can stop the check and see its progress.
_BLOCK = 256

Progress = Callable[[int, int], None]


@dataclass
class DuplicateReport:
    """Pairs (training file, validation file) that hold the same picture."""
    exact: list[tuple[str, str]] = field(default_factory=list)
    near: list[tuple[str, str, float]] = field(default_factory=list)  # (..., correlation)
    near_checked: bool = True
    files: int = 0
    seconds: float = 0.0
    projected_seconds: float = 0.0   # when skipped: how long thumbnails would have taken

    @property
    def validation_files_affected(self) -> int:
        return len({v for _, v in self.exact} | {v for _, v, _ in self.near})


def find_cross_duplicates(train_files: list[str], validation_files: list[str], *,
                          seconds_budget: float = NEAR_DUPLICATE_SECONDS_BUDGET,
                          min_correlation: float = NEAR_DUPLICATE_MIN_CORRELATION,
                          on_progress: Progress | None = None,
                          stop: threading.Event | None = None) -> DuplicateReport:
    """Training/validation pairs of identical or nearly identical images.

    Unreadable files are left out silently (the data pipeline reports them). A validation
    file that is an exact copy is not listed again as a near copy. When decoding the
    thumbnails would take longer than ``seconds_budget`` (projected from the first files),
    ``near_checked`` is False and ``projected_seconds`` says how long it would have taken.

    Args:
        on_progress: called with (thumbnails made, thumbnails to make) now and then.
        stop: when set, the check ends at the next block of thumbnails.

    Raises:
        CheckStopped: ``stop`` was set.
    """
    started = time.monotonic()
    report = DuplicateReport(files=len(train_files) + len(validation_files))
    report.exact = exact_duplicates(train_files, validation_files)
    if train_files and validation_files:
        exact_validation = {v for _, v in report.exact}
        candidates = [v for v in validation_files if v not in exact_validation]
        thumbnails = _thumbnails_within_budget(list(train_files) + candidates, seconds_budget,
                                               on_progress=on_progress, stop=stop)
        if isinstance(thumbnails, float):
            report.near_checked, report.projected_seconds = False, thumbnails
        else:
            paths, vectors = thumbnails
            train_set = set(train_files)
            is_train = np.array([p in train_set for p in paths], dtype=bool)
            report.near = _matches(paths, vectors, is_train, min_correlation)
    report.seconds = time.monotonic() - started
    return report


def exact_duplicates(train_files: list[str], validation_files: list[str]) -> list[tuple[str, str]]:
    """Byte-identical pairs. Files are narrowed down by size, then by a digest of their
    first 64 KB, and only the remaining candidates are read whole."""
    train, validation = _narrow(train_files, validation_files, _size)
    train, validation = _narrow(train, validation, _head_digest)
    train_digests: dict[bytes, str] = {}
    for path in train:
        digest = _digest(path)
        if digest is not None:
            train_digests.setdefault(digest, path)
    pairs = []
    for path in validation:
        digest = _digest(path)
        if digest is not None and digest in train_digests:
            pairs.append((train_digests[digest], path))
    return sorted(pairs, key=lambda pair: pair[1])


def _narrow(train: list[str], validation: list[str], key) -> tuple[list[str], list[str]]:
    """The files of each side whose ``key`` also occurs on the other side."""
    train_keys = {path: key(path) for path in train}
    validation_keys = {path: key(path) for path in validation}
    shared = (set(train_keys.values()) & set(validation_keys.values())) - {None}
    return ([p for p, k in train_keys.items() if k in shared],
            [p for p, k in validation_keys.items() if k in shared])


def near_duplicates(train_files: list[str], validation_files: list[str], *,
                    min_correlation: float = NEAR_DUPLICATE_MIN_CORRELATION
                    ) -> list[tuple[str, str, float]]:
    """(training file, validation file, correlation) for each validation image whose most
    similar training image has a thumbnail correlation of at least ``min_correlation``."""
    paths, vectors = thumbnail_vectors(list(train_files) + list(validation_files))
    train_set = set(train_files)
    is_train = np.array([p in train_set for p in paths], dtype=bool)
    return _matches(paths, vectors, is_train, min_correlation)


def _matches(paths: list[str], vectors: np.ndarray, is_train: np.ndarray,
             min_correlation: float) -> list[tuple[str, str, float]]:
    train_paths = [p for p, t in zip(paths, is_train) if t]
    validation_paths = [p for p, t in zip(paths, is_train) if not t]
    train_vectors, validation_vectors = vectors[is_train], vectors[~is_train]
    if not len(train_vectors) or not len(validation_vectors):
        return []
    pairs = []
    for start in range(0, len(validation_vectors), _CHUNK):
        similarity = validation_vectors[start:start + _CHUNK] @ train_vectors.T
        nearest = similarity.argmax(axis=1)
        for row, column in enumerate(nearest):
            value = float(similarity[row, column])
            if value >= min_correlation:
                pairs.append((train_paths[column], validation_paths[start + row], value))
    return sorted(pairs, key=lambda pair: (-pair[2], pair[1]))


def thumbnail_vector(path: str) -> np.ndarray | None:
    """The image's 8 x 8 RGB thumbnail, each channel centred, as a unit vector (192
    floats); None for an unreadable or flat image."""
    from PIL import Image

    try:
        pixels = load_image(path, _DECODE_SIZE)
    except (ImageLoadError, OSError, ValueError):
        return None
    small = Image.fromarray(pixels, "RGB").resize((_THUMBNAIL, _THUMBNAIL), Image.BOX)
    channels = np.asarray(small, dtype=np.float32).reshape(-1, 3)
    vector = (channels - channels.mean(axis=0)).ravel()
    norm = float(np.linalg.norm(vector))
    if norm < MIN_THUMBNAIL_STD * np.sqrt(vector.size):
        return None
    return vector / norm


def thumbnail_vectors(paths: list[str]) -> tuple[list[str], np.ndarray]:
    """The readable, non-flat ``paths`` and their thumbnail vectors (N x 192, float32)."""
    result = _thumbnails_within_budget(paths, float("inf"))
    assert not isinstance(result, float)
    return result


def _thumbnails_within_budget(paths: list[str], seconds_budget: float, *,
                              on_progress: Progress | None = None, stop: threading.Event | None = None
                              ) -> tuple[list[str], np.ndarray] | float:
    """Thumbnails of ``paths``; or, when the first files project a total time above
    ``seconds_budget``, that projected time (nothing more is decoded).

    Raises:
        CheckStopped: ``stop`` was set (checked between blocks of ``_BLOCK`` files).
    """
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        vectors = list(pool.map(thumbnail_vector, paths[:_PROBE_FILES]))
        if len(paths) > _PROBE_FILES:
            projected = (time.monotonic() - started) * len(paths) / _PROBE_FILES
            if projected > seconds_budget:
                return projected
        for start in range(_PROBE_FILES, len(paths), _BLOCK):
            if on_progress is not None:
                on_progress(start, len(paths))
            if stop is not None and stop.is_set():
                raise CheckStopped()
            vectors += list(pool.map(thumbnail_vector, paths[start:start + _BLOCK], chunksize=8))
    if on_progress is not None:
        on_progress(len(paths), len(paths))
    kept = [(path, vector) for path, vector in zip(paths, vectors) if vector is not None]
    if not kept:
        return [], np.zeros((0, 3 * _THUMBNAIL * _THUMBNAIL), dtype=np.float32)
    return [p for p, _ in kept], np.stack([v for _, v in kept])


def _size(path: str) -> int | None:
    """The byte size of a regular file; None for anything else (a FIFO's size is 0 too)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _head_digest(path: str) -> bytes | None:
    try:
        with _open_regular(path) as handle:
            return hashlib.blake2b(handle.read(_HEAD_BYTES)).digest()
    except OSError:
        return None


def _digest(path: str) -> bytes | None:
    try:
        with _open_regular(path) as handle:
            return hashlib.file_digest(handle, "blake2b").digest()
    except OSError:
        return None


def _open_regular(path: str) -> BinaryIO:
    """``open(path, "rb")`` that never blocks: a file swapped for a FIFO since it was listed
    opens at once (non-blocking) and is refused, as is a device.

    Raises:
        OSError: cannot be opened, or not a regular file.
    """
    handle = open(path, "rb", opener=_open_nonblocking)
    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
        handle.close()
        raise OSError(f"{path} is not a regular file")
    return handle


def _open_nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))

"""Exact and near-duplicate images shared by the training and the validation files.

A validation image that is also in the training set (byte for byte, or re-saved, resized,
recompressed) is scored on something the model has already seen: validation accuracy
then overstates how the model does on new pictures. ``find_cross_duplicates`` finds such
pairs cheaply enough to run before every training run:

- exact: only files whose byte sizes occur on both sides are read and hashed (BLAKE2b),
  so a folder without duplicates costs one ``stat`` per file;
- near: a 64-bit difference hash (dHash, Krawetz 2013) of each image's grayscale 9 x 8
  thumbnail, decoded with the app's own decoder at a small size (``Image.draft`` makes a
  large JPEG cheap), compared across the split by Hamming distance in numpy.

Measured on this machine (2 cores): see ``docs/hints.md`` ("data_leakage").
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from training.images import ImageLoadError, load_image

# Two different images of the built-in shapes and of noise photos were never closer than
# 14 bits; a copy that was re-encoded as JPEG (quality 75), resized by half or brightened
# by 10 % stayed within 2 bits (docs/hints.md). 6 leaves margin on both sides.
NEAR_DUPLICATE_MAX_BITS = 6
# A thumbnail this flat (gray-level standard deviation) hashes to noise or to all zeros:
# blank or single-colour images would all "match" each other, so they get exact checks only.
MIN_THUMBNAIL_STD = 3.0
# Perceptual hashing decodes every image once: ~1.3 ms a small PNG, ~6 ms a 12-megapixel
# JPEG drafted down (docs/hints.md). Above this many files it is skipped (exact checks
# still run) so that a run on a huge folder does not wait minutes before its first batch.
MAX_FILES_FOR_NEAR_DUPLICATES = 20_000
# Decoding releases the GIL in Pillow, so a couple of threads help on two cores.
_THREADS = 2
_THUMBNAIL = 32


@dataclass
class DuplicateReport:
    """Pairs (training file, validation file) that hold the same picture."""
    exact: list[tuple[str, str]] = field(default_factory=list)
    near: list[tuple[str, str, int]] = field(default_factory=list)  # (..., Hamming distance)
    near_checked: bool = True
    files: int = 0
    seconds: float = 0.0

    @property
    def validation_files_affected(self) -> int:
        return len({v for _, v in self.exact} | {v for _, v, _ in self.near})


def find_cross_duplicates(train_files: list[str], validation_files: list[str], *,
                          max_files: int = MAX_FILES_FOR_NEAR_DUPLICATES,
                          max_bits: int = NEAR_DUPLICATE_MAX_BITS) -> DuplicateReport:
    """Training/validation pairs of identical or nearly identical images.

    Unreadable files are left out silently (the data pipeline reports them). A
    validation file that is an exact copy is not also listed as a near copy.
    """
    import time

    started = time.monotonic()
    report = DuplicateReport(files=len(train_files) + len(validation_files))
    report.exact = exact_duplicates(train_files, validation_files)
    report.near_checked = report.files <= max_files
    if report.near_checked and train_files and validation_files:
        exact_validation = {v for _, v in report.exact}
        candidates = [v for v in validation_files if v not in exact_validation]
        report.near = near_duplicates(train_files, candidates, max_bits=max_bits)
    report.seconds = time.monotonic() - started
    return report


def exact_duplicates(train_files: list[str], validation_files: list[str]) -> list[tuple[str, str]]:
    """Byte-identical pairs; only files whose sizes occur on both sides are read."""
    train_sizes = _sizes(train_files)
    validation_sizes = _sizes(validation_files)
    shared = set(train_sizes) & set(validation_sizes)
    if not shared:
        return []
    train_digests: dict[bytes, str] = {}
    for size in shared:
        for path in train_sizes[size]:
            digest = _digest(path)
            if digest is not None:
                train_digests.setdefault(digest, path)
    pairs = []
    for size in shared:
        for path in validation_sizes[size]:
            digest = _digest(path)
            if digest is not None and digest in train_digests:
                pairs.append((train_digests[digest], path))
    return sorted(pairs, key=lambda pair: pair[1])


def near_duplicates(train_files: list[str], validation_files: list[str], *,
                    max_bits: int = NEAR_DUPLICATE_MAX_BITS) -> list[tuple[str, str, int]]:
    """(training file, validation file, distance) for each validation image whose nearest
    training image is within ``max_bits`` of its 64-bit difference hash."""
    train_paths, train_hashes = _hashes(train_files)
    validation_paths, validation_hashes = _hashes(validation_files)
    if not len(train_hashes) or not len(validation_hashes):
        return []
    pairs = []
    # Chunks keep the distance matrix small (1024 x N uint8) whatever the folder size.
    for start in range(0, len(validation_hashes), 1024):
        block = validation_hashes[start:start + 1024]
        distances = np.bitwise_count(block[:, None] ^ train_hashes[None, :])
        nearest = distances.argmin(axis=1)
        for row, column in enumerate(nearest):
            distance = int(distances[row, column])
            if distance <= max_bits:
                pairs.append((train_paths[column], validation_paths[start + row], distance))
    return sorted(pairs, key=lambda pair: (pair[2], pair[1]))


def difference_hash(path: str) -> int | None:
    """The 64-bit dHash of an image (bit set where a pixel is brighter than its right
    neighbour in the 9 x 8 grayscale thumbnail), or None for a flat or unreadable image."""
    from PIL import Image

    try:
        pixels = load_image(path, _THUMBNAIL)
    except (ImageLoadError, OSError, ValueError):
        return None
    gray = Image.fromarray(pixels, "RGB").convert("L").resize((9, 8), Image.BOX)
    values = np.asarray(gray, dtype=np.int16)
    if float(values.std()) < MIN_THUMBNAIL_STD:
        return None
    bits = (values[:, 1:] > values[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def _hashes(paths: list[str]) -> tuple[list[str], np.ndarray]:
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        hashes = list(pool.map(difference_hash, paths, chunksize=32))
    kept = [(path, value) for path, value in zip(paths, hashes) if value is not None]
    return [p for p, _ in kept], np.array([v for _, v in kept], dtype=np.uint64)


def _sizes(paths: list[str]) -> dict[int, list[str]]:
    by_size: dict[int, list[str]] = defaultdict(list)
    for path in paths:
        try:
            by_size[os.stat(path).st_size].append(path)
        except OSError:
            continue
    return by_size


def _digest(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "blake2b").digest()
    except OSError:
        return None

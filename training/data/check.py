"""What a run would find wrong with its data, found before it starts (no TensorFlow).

``check_data`` repeats the data work of a run on a scan, so that the window can list the
problems while the settings are still being chosen:

- every image a run would read is decoded by the pipeline's own decoder, at the run's
  image size (``decode_problem``): a file that fails here is exactly one the run skips.
  A header check is not enough: ``Image.verify()`` (0.04 ms an image) finds a truncated
  PNG but not a truncated JPEG, whose plugin has no verify. A full decode costs, measured
  on 2 cores: 0.3-0.5 ms a 64 px PNG, 5-7 ms a 640 x 480 JPEG, 11-12 ms a 640 x 480 PNG,
  80-90 ms a 12-megapixel JPEG even drafted down; two threads share the work (Pillow
  releases the GIL while it decodes);
- classes with fewer validation images than the run's data hints ask for
  (``small_classes``);
- copies of training images among the validation images, found by the same function, on
  the same files, as the run's ``data_leakage`` hint (``duplicates.find_cross_duplicates``).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from training.data.duplicates import DuplicateReport, find_cross_duplicates
from training.data.errors import CheckStopped, DataError
from training.data.images import ImageLoadError, load_image
from training.data.pipeline import plan_data, test_images
from training.data.scan import ScanResult
from training.data.split import SplitPlan

if TYPE_CHECKING:
    from training.config import DataConfig

# (stage, done, total): stage "decode" (images decoded) or "duplicates" (thumbnails made).
CheckProgress = Callable[[str, int, int], None]
# A decoded file's (byte size, modification time in ns) and its problem (None: fine). A
# later check trusts the problem while the file's size and time are the same.
Decoded = Mapping[str, tuple[tuple[int, int] | None, str | None]]

_THREADS = 2
# Decoded in blocks: the caller sees progress and can stop between two blocks.
_BLOCK = 32


@dataclass(frozen=True)
class SmallClass:
    """A class with fewer validation images than the data hints ask for.

    ``needed``: the images the class needs in all, with the current validation share, to
    reach the minimum; None when the validation images are a folder of their own.
    """
    name: str
    train_images: int
    validation_images: int
    minimum: int
    needed: int | None


@dataclass(frozen=True)
class DuplicateGroup:
    """A training image and the validation images that show the same picture."""
    train_file: str
    copies: tuple[tuple[str, str], ...]  # (validation file, "identical" or "near")


@dataclass(frozen=True)
class DataCheck:
    """What ``check_data`` found.

    ``broken``: (path, reason) for the files a run would skip beyond the scan's own skipped
    list (it failed to decode, or the validation folder's scan skipped it). ``decoded``:
    every decoded file's problem, for a later check at the same image size.
    ``plan_problem``: why the split cannot be planned ("" when it can); then there are no
    small classes or duplicates to report.
    """
    files: int
    broken: tuple[tuple[str, str], ...]
    small_classes: tuple[SmallClass, ...]
    duplicates: DuplicateReport | None
    plan_problem: str = ""
    seconds: float = 0.0
    decoded: Decoded = field(default_factory=dict, repr=False)
    # The held-out test images (``data.test_split`` or ``data.test_dir``): compared with the
    # training images like the validation images, since a copy would inflate the test score.
    test_files: frozenset[str] = frozenset()

    def held_out_role(self, path: str) -> str:
        """"test" or "validation": which held-out set a copy of a training image is in."""
        return "test" if path in self.test_files else "validation"

    @property
    def duplicate_groups(self) -> list[DuplicateGroup]:
        return duplicate_groups(self.duplicates) if self.duplicates is not None else []


def check_data(scan: ScanResult, data: DataConfig, image_size: int, *, min_validation_per_class: int,
               known: Decoded | None = None, on_progress: CheckProgress | None = None,
               stop: threading.Event | None = None) -> DataCheck:
    """Decodes, plans and compares the images of ``scan`` as a run with ``data`` would.

    Args:
        scan: the data folder's ``scan_folder`` result.
        data: the run's ``DataConfig`` (split, validation folder, seed).
        image_size: the size a run decodes at.
        min_validation_per_class: the fewest validation images a class should have.
        known: files already decoded at this size (a previous check's ``decoded``): those
            unchanged since are not decoded again.
        on_progress: called with (stage, done, total) now and then.
        stop: when set, the check ends between two blocks of images.

    Raises:
        CheckStopped: ``stop`` was set.
    """
    started = time.monotonic()
    try:
        plan, validation_scan = plan_data(scan, data, seed=data.seed)
        problem = ""
    except DataError as error:
        plan, validation_scan, problem = None, None, str(error)
    tests: list[str] = []
    if plan is not None:
        try:
            tests = list(test_images(scan, plan, data)[0])
        except DataError as error:
            problem = str(error)
    in_scan = set(map(str, scan.files))
    paths = list(scan.files) + (list(validation_scan.files) if validation_scan is not None else []) + [
        path for path in tests if path not in in_scan]  # a test folder's images are decoded too
    decoded = decode_problems(paths, image_size, known=known, stop=stop,
                              on_progress=None if on_progress is None else partial(on_progress, "decode"))
    broken = [(path, decoded[path][1]) for path in paths if decoded[path][1]]
    if validation_scan is not None:
        broken += validation_scan.skipped
    small: list[SmallClass] = []
    report = None
    if plan is not None:
        validation_folder = validation_scan is not None
        small = small_classes(plan, min_validation_per_class, None if validation_folder else data.validation_split)
        train_files = [scan.files[i] for i in plan.train_index]
        validation_files = (list(validation_scan.files) if validation_folder
                            else [scan.files[i] for i in plan.validation_index])
        report = find_cross_duplicates(
            train_files, validation_files + tests, stop=stop,
            on_progress=None if on_progress is None else partial(on_progress, "duplicates"))
    return DataCheck(files=len(paths), broken=tuple(broken), small_classes=tuple(small), duplicates=report,
                     plan_problem=problem, seconds=time.monotonic() - started, decoded=decoded,
                     test_files=frozenset(map(str, tests)))


def decode_problem(path: str, image_size: int) -> str | None:
    """Why a run would skip ``path``, or None: the pipeline's own decode, at its size.

    Like the pipeline, any exception counts as a failure (nothing escapes into tf.data).
    """
    try:
        load_image(path, image_size)
    except ImageLoadError as error:
        return error.reason
    except Exception as error:  # noqa: BLE001 - the pipeline skips a file on any exception too
        return f"cannot decode ({type(error).__name__}: {error})"
    return None


def decode_problems(paths: list[str], image_size: int, *, known: Decoded | None = None,
                    on_progress: Callable[[int, int], None] | None = None,
                    stop: threading.Event | None = None) -> dict[str, tuple[tuple[int, int] | None, str | None]]:
    """(file stamp, ``decode_problem``) of each path; a path in ``known`` whose file has
    the same size and modification time keeps its problem without a new decode.

    Raises:
        CheckStopped: ``stop`` was set.
    """
    known = known or {}
    result = {}
    for path in paths:
        stamp = file_stamp(path)
        if stamp is not None and path in known and known[path][0] == stamp:
            result[path] = known[path]
    pending = [path for path in paths if path not in result]
    decode = partial(_stamped_problem, image_size=image_size)
    with ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="data-check") as pool:
        for start in range(0, len(pending), _BLOCK):
            if stop is not None and stop.is_set():
                raise CheckStopped()
            if on_progress is not None:
                on_progress(len(result), len(paths))
            block = pending[start:start + _BLOCK]
            result.update(zip(block, pool.map(decode, block)))
    if on_progress is not None:
        on_progress(len(paths), len(paths))
    return result


def file_stamp(path: str) -> tuple[int, int] | None:
    """(byte size, modification time in ns) of a file; None when it cannot be looked at."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_size, info.st_mtime_ns


def _stamped_problem(path: str, image_size: int) -> tuple[tuple[int, int] | None, str | None]:
    # The stamp is taken before the decode: a file that changes meanwhile is decoded again next time.
    return file_stamp(path), decode_problem(path, image_size)


def small_classes(plan: SplitPlan, minimum: int, validation_split: float | None) -> list[SmallClass]:
    """The classes of ``plan`` with fewer than ``minimum`` validation images.

    Args:
        validation_split: the share held back; None when validation is a folder of its own.
    """
    found = []
    for name in plan.classes:
        train, held = plan.train_counts.get(name, 0), plan.validation_counts.get(name, 0)
        if held >= minimum:
            continue
        needed = None
        if validation_split:
            needed = max(math.ceil(minimum / validation_split - 1e-9), minimum + 1)
        found.append(SmallClass(name=name, train_images=train, validation_images=held, minimum=minimum,
                                needed=needed))
    return found


def duplicate_groups(report: DuplicateReport) -> list[DuplicateGroup]:
    """The report's pairs gathered by training image, in the order of the first copy."""
    copies: dict[str, list[tuple[str, str]]] = {}
    for train, validation in report.exact:
        copies.setdefault(train, []).append((validation, "identical"))
    for train, validation, _ in report.near:
        copies.setdefault(train, []).append((validation, "near"))
    return [DuplicateGroup(train, tuple(pairs)) for train, pairs in copies.items()]

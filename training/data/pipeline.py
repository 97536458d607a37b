"""Turning a scan into tf.data pipelines.

``prepare_data`` scans, splits and builds the training and validation datasets. The test
images (``data.test_split`` or ``data.test_dir``) are listed in the bundle but never enter
a pipeline: no run trains on them or chooses its best epoch by them (``test_images``).
The pipeline decodes with ``training.data.images.load_image``, the same decoder prediction
and the GUI use, and never raises inside tf.data: a file that fails to decode is
dropped on its own (before batching) and recorded, so the run goes on without it.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from training.data.errors import DataError
from training.data.images import ImageLoadError, load_image
from training.data.scan import ScanResult, scan_classes, scan_folder, usable_folder
from training.data.split import SplitPlan, counts_by_class, plan_split
from training.files import display_path

if TYPE_CHECKING:
    import tensorflow as tf

    from training.config import DataConfig
    from training.events import DataReport

# Decoded uint8 images are cached in memory up to this many bytes (training + validation).
CACHE_LIMIT_BYTES = 1_500_000_000

Augmenter = Callable[[Any, Any], tuple[Any, Any]]
# Images decoded (or read from the cache) per Python call.
_DECODE_CHUNK = 16


@dataclass
class DataBundle:
    """The datasets of a run and everything known about where they came from.

    ``decode_failures`` fills while the pipelines run (files that passed the scan but
    failed to decode); ``describe_failures`` gives their reasons. Because a failed file
    is dropped, an epoch may have fewer batches than ``steps_per_epoch``: do not pass
    ``steps_per_epoch`` to ``fit``.
    """
    train: tf.data.Dataset
    validation: tf.data.Dataset
    classes: list[str]
    train_count: int
    validation_count: int
    train_counts: dict[str, int]
    validation_counts: dict[str, int]
    steps_per_epoch: int
    validation_steps: int
    scan: ScanResult
    validation_scan: ScanResult | None
    class_weight: dict[int, float] | None
    decode_failures: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # scan and split warnings together
    train_files: list[str] = field(default_factory=list)
    validation_files: list[str] = field(default_factory=list)
    validation_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    train_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    train_order: EpochOrder | None = None
    augmenter: Augmenter | None = None
    # The size the pipelines batch at: ``data.batch_size``, times the replicas of a distributed run.
    batch_size: int = 0
    # True: ``train`` is not augmented; the engine augments inside the training step.
    augment_in_step: bool = False
    # The held-out test set: listed for a later evaluation, never in a pipeline.
    test_files: list[str] = field(default_factory=list)
    test_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    test_counts: dict[str, int] = field(default_factory=dict)
    test_scan: ScanResult | None = None  # the scan of ``data.test_dir``, when one is used

    @property
    def test_count(self) -> int:
        return len(self.test_files)

    def start_epoch(self, epoch: int) -> None:
        """Fixes the order and the augmentation of the coming epoch (0-based) from the seed,
        so that a resumed run repeats an uninterrupted one batch for batch."""
        if self.train_order is not None:
            self.train_order.set_epoch(epoch)
        if self.augmenter is not None and hasattr(self.augmenter, "reseed"):
            self.augmenter.reseed(epoch)

    def report(self) -> DataReport:
        """The ``DataReport`` event for this bundle (scan results of every folder)."""
        from training.events import DataReport

        scans = [s for s in (self.scan, self.validation_scan, self.test_scan) if s is not None]
        # Paths are for people (printed, shown, written as JSON): a file name that is not
        # UTF-8 shows its odd bytes as escapes rather than breaking every one of those.
        return DataReport(
            root=display_path(self.scan.root),
            classes=list(self.classes),
            train_counts=dict(self.train_counts),
            validation_counts=dict(self.validation_counts),
            skipped=[{"path": display_path(p), "reason": r} for s in scans for p, r in s.skipped],
            ignored=[{"path": display_path(p), "reason": r} for s in scans for p, r in s.ignored],
            warnings=list(self.warnings),
            test_counts=dict(self.test_counts),
            test_dir=None if self.test_scan is None else display_path(self.test_scan.root),
        )



# -- the pipeline -----------------------------------------------------------------------
class _FailureRecorder:
    """Collects decode failures from tf.data's worker threads, each path once."""

    def __init__(self, failures: list | None):
        self.failures = failures if failures is not None else []
        self._seen: set[str] = set(self.failures)
        self._lock = threading.Lock()

    def add(self, path: str) -> None:
        with self._lock:
            if path not in self._seen:
                self._seen.add(path)
                self.failures.append(path)


class EpochOrder:
    """Which images an epoch visits, in what order: a function of (seed, epoch) alone.

    A resumed run therefore sees exactly the batches an uninterrupted one would. The
    engine calls ``set_epoch`` as each epoch begins; used on its own, every new pass over
    the dataset takes the next epoch's order.
    """

    def __init__(self, count: int, seed: int, shuffle: bool):
        self.count, self.seed, self.shuffle = count, seed, shuffle
        self.epoch = 0
        self._lock = threading.Lock()

    def set_epoch(self, epoch: int) -> None:
        with self._lock:
            self.epoch = epoch

    def indices(self) -> np.ndarray:
        return self.next_pass()[0]

    def next_pass(self) -> tuple[np.ndarray, np.int64]:
        """The order of the coming pass, and its epoch (which also keys its augmentation)."""
        with self._lock:
            epoch, self.epoch = self.epoch, self.epoch + 1
        if not self.shuffle:
            return np.arange(self.count, dtype=np.int64), np.int64(epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.count).astype(np.int64)
        return order, np.int64(epoch)


class _ImageCache:
    """Decoded images by index, in memory up to a byte budget (failures are remembered too)."""

    def __init__(self, limit_bytes: int):
        self.limit_bytes = limit_bytes
        self.used = 0
        self._images: dict[int, np.ndarray | None] = {}
        self._lock = threading.Lock()

    def get(self, index: int) -> tuple[bool, np.ndarray | None]:
        with self._lock:
            return (index in self._images), self._images.get(index)

    def put(self, index: int, image: np.ndarray | None) -> None:
        size = 0 if image is None else image.nbytes
        with self._lock:
            if index not in self._images and self.used + size <= self.limit_bytes:
                self._images[index] = image
                self.used += size


def make_dataset(files, labels, num_classes: int, image_size: int, batch_size: int, *,
                 shuffle: bool, seed: int, augmenter: Augmenter | None = None, cache: bool = True,
                 failures: list | None = None, order: EpochOrder | None = None,
                 cache_bytes: int | None = None, parallel_augmentation: bool = True) -> tf.data.Dataset:
    """A batched dataset of (float32 images in 0-255, one-hot float32 labels).

    Files that fail to decode are dropped one by one before batching, and their paths
    appended to ``failures`` (if given). Decoded uint8 images are cached in memory when
    ``cache``, up to ``cache_bytes`` (default ``CACHE_LIMIT_BYTES``); beyond it they are
    decoded again every pass. The order of each pass comes from ``order`` (made here when
    not given): a full permutation per epoch when ``shuffle``.

    An augmenter that is ``stateless`` (``training.data.augment.build_augmenter``'s) is
    called with the key (epoch, batch index) and mapped in parallel: its output is the
    same as a sequential map's (``parallel_augmentation=False``), batch for batch. Any
    other augmenter is mapped sequentially, so its random draws keep a fixed order.
    """
    import tensorflow as tf

    paths = [os.fsencode(f) for f in files]
    labels = np.asarray(labels, dtype=np.int32)
    if len(paths) != len(labels):
        raise ValueError(f"`files` and `labels` must have the same length. "
                         f"Received: {len(paths)} files and {len(labels)} labels")
    order = order or EpochOrder(len(paths), seed, shuffle)

    def one_pass(_):
        indices, epoch = tf.numpy_function(order.next_pass, [], [tf.int64, tf.int64], stateful=True)
        epoch.set_shape(())
        return tf.data.Dataset.from_tensor_slices(indices).map(lambda index: (index, epoch))

    decode = _decode_function(paths, labels, image_size, _FailureRecorder(failures),
                              _ImageCache((CACHE_LIMIT_BYTES if cache_bytes is None else cache_bytes)
                                          if cache else 0))
    dataset = tf.data.Dataset.from_tensors(0).flat_map(one_pass)
    # Images are read in chunks, one Python call each: the per-call cost (the GIL, the
    # tensor conversions) dominated reading a cached 64 px image one by one.
    dataset = dataset.batch(_DECODE_CHUNK)
    dataset = dataset.map(lambda indices, epochs: (*decode(indices), epochs),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.unbatch().filter(lambda image, label, ok, epoch: ok)
    dataset = dataset.batch(batch_size, drop_remainder=False)
    # The batch's index in its pass; with the epoch, it keys the batch's augmentation.
    dataset = dataset.enumerate()
    dataset = dataset.map(lambda step, batch: (tf.cast(batch[0], tf.float32),
                                               tf.one_hot(batch[1], num_classes, dtype=tf.float32),
                                               (batch[3][0], step)),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = _augment(dataset, augmenter, parallel_augmentation)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _augment(dataset: tf.data.Dataset, augmenter: Augmenter | None, parallel: bool) -> tf.data.Dataset:
    """(images, labels, key) batches -> augmented (images, labels) batches.

    A stateless augmenter gives the same batch for the same (seed, key) whatever the map's
    parallelism, so a seed repeats a run and a resumed run its uninterrupted twin. Measured
    on 2 cores at 128 px with the default augmentation: see docs/facts.md#input-pipeline.
    """
    import tensorflow as tf

    if augmenter is None:
        return dataset.map(lambda images, labels, key: (images, labels))
    if not getattr(augmenter, "stateless", False):
        # Sequential: the layers' seed generators then draw in a fixed order.
        return dataset.map(lambda images, labels, key: augmenter(images, labels))
    return dataset.map(lambda images, labels, key: augmenter(images, labels, key=key),
                       num_parallel_calls=tf.data.AUTOTUNE if parallel else None,
                       deterministic=True if parallel else None)


def _decode_function(paths: list[bytes], labels: np.ndarray, image_size: int,
                     recorder: _FailureRecorder, cache: _ImageCache):
    """A tf.data function: a chunk of indices -> (uint8 images, labels, decoded?) of the chunk."""
    import tensorflow as tf

    blank = np.zeros((image_size, image_size, 3), dtype=np.uint8)

    def load_one(index: int) -> np.ndarray | None:
        cached, image = cache.get(index)
        if not cached:
            image = None
            try:
                image = load_image(paths[index], image_size)
            except ImageLoadError as error:
                recorder.add(error.path)
            except Exception:  # noqa: BLE001 - nothing may escape into tf.data: it would end the epoch
                recorder.add(os.fsdecode(paths[index]))
            cache.put(index, image)
        return image

    def load(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images = [load_one(int(index)) for index in indices]
        ok = np.array([image is not None for image in images], dtype=bool)
        # A chunk is never empty: tf.data's batch makes none.
        return np.stack([blank if image is None else image for image in images]), labels[indices], ok

    def decode(indices):
        images, chunk_labels, ok = tf.numpy_function(load, [indices], [tf.uint8, tf.int32, tf.bool],
                                                     stateful=False)
        images.set_shape((None, image_size, image_size, 3))
        chunk_labels.set_shape((None,))
        ok.set_shape((None,))
        return images, chunk_labels, ok

    return decode


def describe_failures(paths: list[str]) -> list[tuple[str, str]]:
    """(path, reason) for files that failed to decode, by decoding them once more."""
    described = []
    for path in paths:
        try:
            load_image(path)
            reason = "could not be decoded during training"
        except ImageLoadError as error:
            reason = error.reason
        described.append((path, reason))
    return described


# -- everything together ----------------------------------------------------------------
def plan_data(scan: ScanResult, data_cfg: DataConfig, seed: int) -> tuple[SplitPlan, ScanResult | None]:
    """Which images of ``scan`` a run with ``data_cfg`` trains, validates and tests on.

    ``prepare_data`` builds its pipelines from this plan, and the window shows its counts.
    A test folder (``data.test_dir``) is scanned and checked here; its images are counted
    in ``plan.test_counts`` and listed by ``test_images``.

    Returns:
        The split plan, and the scan of ``data_cfg.validation_dir`` (None when the scan
        itself is split).

    Raises:
        DataError: no validation images (a split of 0 without a validation folder, or
            every class a single image), or a validation or test folder that does not
            match or overlaps the training folder.
    """
    plan, validation_scan, _ = _plan_with_folders(scan, data_cfg, seed)
    return plan, validation_scan


def test_images(scan: ScanResult, plan: SplitPlan, data_cfg: DataConfig) -> tuple[list[str], np.ndarray]:
    """The test images of a run: held out by ``data.test_split`` or found in ``data.test_dir``.

    No run trains on them or chooses its best epoch by them; they are for an evaluation
    after training.

    Args:
        scan: the data folder's scan, as ``plan`` was made from it.
        plan: ``plan_data(scan, data_cfg, seed)[0]``.
        data_cfg: the run's data settings.

    Returns:
        The test files (as str) and their class indices into ``scan.classes``; both empty
        when the run has no test set.

    Raises:
        DataError: the test folder is unusable, overlaps the training or validation
            folder, or does not hold the training folder's classes.
    """
    test_dir = _folder_setting(data_cfg.test_dir)
    test_scan = None if test_dir is None else _scan_test_folder(test_dir, scan, data_cfg)
    return _test_set(scan, plan, test_scan)


def prepare_data(data_cfg: DataConfig, image_size: int, *, augmenter: Augmenter | None = None,
                 seed: int, cache_bytes: int = CACHE_LIMIT_BYTES,
                 augment_in_step: bool = False, batch_size: int | None = None) -> DataBundle:
    """Scans ``data_cfg.dir`` (and the validation and test folders), splits and builds the pipelines.

    With ``augment_in_step`` the training pipeline leaves the images as decoded and the
    bundle only carries ``augmenter``, for the training step to apply
    (``training.engine.step_augmentation``). ``batch_size`` is the size the pipelines batch at
    (default ``data_cfg.batch_size``; a distributed run's global batch).

    The test images are listed in the bundle (``test_files``, ``test_labels``) and go into
    no pipeline. Decoded images stay in memory up to ``cache_bytes`` (validation first);
    the rest are decoded again every epoch, with memory bounded by the pipeline's buffers
    (docs/facts.md#input-pipeline).

    Raises:
        DataError: a folder is unusable, the validation or test classes do not match, or
            no image is left for validation.
    """
    scan = scan_folder(data_cfg.dir)
    plan, validation_scan, test_scan = _plan_with_folders(scan, data_cfg, seed)
    files, labels = np.asarray(scan.files, dtype=object), np.asarray(scan.labels, dtype=np.int64)
    warnings = list(scan.warnings)
    if validation_scan is not None:
        warnings += [f"Validation folder: {w}" for w in validation_scan.warnings]
        validation = (np.asarray(validation_scan.files, dtype=object),
                      np.asarray(validation_scan.labels, dtype=np.int64))
    else:
        validation = files[plan.validation_index], labels[plan.validation_index]
    if test_scan is not None:
        warnings += [f"Test folder: {w}" for w in test_scan.warnings]
    warnings += plan.warnings
    bundle = _bundle(data_cfg, image_size, None if augment_in_step else augmenter, seed, scan,
                     validation_scan, scan.classes, (files[plan.train_index], labels[plan.train_index]),
                     validation, warnings, cache_bytes, batch_size or data_cfg.batch_size)
    bundle.augmenter, bundle.augment_in_step = augmenter, augment_in_step and augmenter is not None
    bundle.test_files, bundle.test_labels = _test_set(scan, plan, test_scan)
    bundle.test_counts, bundle.test_scan = dict(plan.test_counts), test_scan
    return bundle


def _plan_with_folders(scan: ScanResult, data_cfg: DataConfig,
                       seed: int) -> tuple[SplitPlan, ScanResult | None, ScanResult | None]:
    """``plan_data``, and the scan of the test folder too."""
    validation_dir = _folder_setting(data_cfg.validation_dir)
    validation_scan = test_scan = None
    if validation_dir is not None:
        validation_scan = _scan_other_folder(validation_dir, scan, "validation")
    elif data_cfg.validation_split <= 0:
        raise DataError(_no_validation_message(scan.root, data_cfg))
    test_dir = _folder_setting(data_cfg.test_dir)
    if test_dir is not None:
        test_scan = _scan_test_folder(test_dir, scan, data_cfg)
    plan = plan_split(scan.classes, scan.labels, data_cfg.validation_split, seed,
                      validation_labels=None if validation_scan is None else validation_scan.labels,
                      test_split=data_cfg.test_split,
                      test_labels=None if test_scan is None else test_scan.labels)
    if plan.validation_count == 0:
        raise DataError(
            f"No images are left for validation in {display_path(scan.root)}: every class has a single "
            "image. Add images (at least 2 per class, better 20 or more), or set `data.validation_dir`.")
    return plan, validation_scan, test_scan


def _folder_setting(value: str | None) -> str | None:
    # A blank folder (e.g. "" in a hand-written config) means none, as null does.
    return value if (value or "").strip() else None


def _test_set(scan: ScanResult, plan: SplitPlan, test_scan: ScanResult | None) -> tuple[list[str], np.ndarray]:
    if test_scan is not None:
        # Same classes in the same order (checked by the scan), so its labels index scan.classes.
        return [str(f) for f in test_scan.files], np.asarray(test_scan.labels, dtype=np.int64)
    labels = np.asarray(scan.labels, dtype=np.int64)
    return [str(scan.files[i]) for i in plan.test_index], labels[plan.test_index]


def _scan_test_folder(folder: str, train: ScanResult, data_cfg: DataConfig) -> ScanResult:
    """The scan of ``data.test_dir``: the training folder's classes, apart from the images
    that train or validate."""
    root = usable_folder(folder, "test folder (`data.test_dir`)")
    _check_apart(root, Path(train.root), "the training folder (`data.dir`)",
                 "its images would also be trained on")
    validation_dir = _folder_setting(data_cfg.validation_dir)
    if validation_dir is not None:
        _check_apart(root, usable_folder(validation_dir, "validation folder (`data.validation_dir`)"),
                     "the validation folder (`data.validation_dir`)",
                     "the best epoch would be chosen on its images")
    return _scan_other_folder(str(root), train, "test")


def _check_apart(test_root: Path, other: Path, what: str, consequence: str) -> None:
    test_real, other_real = Path(os.path.realpath(test_root)), Path(os.path.realpath(other))
    if test_real.is_relative_to(other_real) or other_real.is_relative_to(test_real):
        relation = ("is" if test_real == other_real else
                    "is inside" if test_real.is_relative_to(other_real) else "holds")
        raise DataError(
            f"The test folder {display_path(test_root)} (`data.test_dir`) {relation} {what} "
            f"{display_path(other)}: {consequence}, so they would not test the model on new images. "
            "Keep the test images in a folder of their own, outside the training and validation "
            "folders, or set `data.test_dir` to null and `data.test_split` > 0 (e.g. 0.1) to hold "
            "out part of the training folder instead.")


# What to do instead of a separate folder, by its role.
_SPLIT_EXAMPLE = {"validation": "0.2", "test": "0.1"}


def _scan_other_folder(folder: str, train: ScanResult, role: str) -> ScanResult:
    """The scan of ``data.<role>_dir``, which must hold the training folder's classes."""
    key = f"data.{role}_dir"
    root = usable_folder(folder, f"{role} folder (`{key}`)")
    other = scan_classes(root, verify=True)
    if not other.classes:
        raise DataError(
            f"The {role} folder {display_path(root)} (`{key}`) has no usable images. "
            f"It needs the training folder's class subfolders ({', '.join(map(display_path, train.classes))}), "
            f"each with images. Put {role} images there, or set `{key}` to null "
            f"and `data.{role}_split` > 0 (e.g. {_SPLIT_EXAMPLE[role]}) to split the training folder instead.")
    _check_same_classes(train, other, role)
    return other


def _no_validation_message(root: str, data_cfg: DataConfig) -> str:
    return ("No images are set aside for validation: `data.validation_split` is 0 and no "
            "`data.validation_dir` is given, but the best model is chosen on validation images. "
            f"Received: data.validation_split={data_cfg.validation_split}, "
            f"data.validation_dir={data_cfg.validation_dir!r}. Set `data.validation_split` > 0 "
            f"(e.g. 0.2) to hold back part of {display_path(root)}, or set `data.validation_dir` to a "
            "folder of validation images with the same class subfolders.")


def _bundle(data_cfg, image_size, augmenter, seed, scan, validation_scan, classes,
            train, validation, warnings, cache_bytes: int, batch_size: int) -> DataBundle:
    (train_files, train_labels), (validation_files, validation_labels) = train, validation
    image_bytes = image_size * image_size * 3
    validation_bytes = min(len(validation_files) * image_bytes, cache_bytes)
    failures: list = []
    order = EpochOrder(len(train_files), seed, shuffle=True)
    train_ds = make_dataset(train_files, train_labels, len(classes), image_size, batch_size,
                            shuffle=True, seed=seed, augmenter=augmenter, failures=failures,
                            order=order, cache_bytes=cache_bytes - validation_bytes)
    validation_ds = make_dataset(validation_files, validation_labels, len(classes), image_size,
                                 batch_size, shuffle=False, seed=seed, failures=failures,
                                 cache_bytes=validation_bytes)
    if (len(train_files) + len(validation_files)) * image_bytes > cache_bytes:
        limit = f"{cache_bytes / 1e9:.1f} GB" if cache_bytes >= 1e9 else f"{cache_bytes / 1e6:.3g} MB"
        warnings.append(f"The decoded images would need more than {limit}, "
                        "so only part of them stays in memory and the rest are decoded again every "
                        "epoch (slower). A smaller `data.image_size` makes them fit.")
    return DataBundle(
        train=train_ds, validation=validation_ds, classes=list(classes),
        train_count=len(train_files), validation_count=len(validation_files),
        train_counts=counts_by_class(classes, train_labels), validation_counts=counts_by_class(classes, validation_labels),
        steps_per_epoch=math.ceil(len(train_files) / batch_size),
        validation_steps=math.ceil(len(validation_files) / batch_size),
        scan=scan, validation_scan=validation_scan,
        class_weight=_class_weight(data_cfg.class_weight, train_labels, len(classes)),
        decode_failures=failures, warnings=warnings,
        train_files=[str(f) for f in train_files], validation_files=[str(f) for f in validation_files],
        validation_labels=np.asarray(validation_labels, dtype=np.int64),
        train_labels=np.asarray(train_labels, dtype=np.int64),
        train_order=order, augmenter=augmenter, batch_size=batch_size,
    )


def _check_same_classes(train: ScanResult, other: ScanResult, role: str = "validation") -> None:
    if train.classes == other.classes:
        return
    missing = sorted(map(display_path, set(train.classes) - set(other.classes)))
    extra = sorted(map(display_path, set(other.classes) - set(train.classes)))
    parts = []
    if missing:
        parts.append(f"missing from the {role} folder: {', '.join(missing)}")
    if extra:
        parts.append(f"only in the {role} folder: {', '.join(extra)}")
    raise DataError(
        f"The {role} folder {display_path(other.root)} must have the same class folders "
        f"(with images) as the training folder {display_path(train.root)}; {'; '.join(parts)}. "
        f"Add or rename folders so both match, or set `data.{role}_dir` to null to split the "
        "training folder instead.")


def _class_weight(mode: str, train_labels: np.ndarray, num_classes: int) -> dict[int, float] | None:
    if mode != "balanced":
        return None
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(train_labels)
    weights = compute_class_weight("balanced", classes=present, y=train_labels)
    result = {int(c): 1.0 for c in range(num_classes)}
    result.update({int(c): float(w) for c, w in zip(present, weights)})
    return result

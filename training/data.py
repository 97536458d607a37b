"""Finding the images of a class-per-folder tree and turning them into tf.data pipelines.

``scan_folder`` walks the tree (no TensorFlow needed, so the GUI can call it cheaply);
``prepare_data`` scans, splits and builds the training and validation datasets.

The pipeline decodes with ``training.images.load_image``, the same decoder prediction
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

from training.files import display_path, file_kind, path_problem
from training.images import IMAGE_EXTENSIONS, ImageLoadError, kind_reason, load_image, probe_image
from training.sample import resolve_data_dir

if TYPE_CHECKING:
    import tensorflow as tf

    from training.config import DataConfig
    from training.events import DataReport

# Decoded uint8 images are cached in memory up to this many bytes (training + validation).
CACHE_LIMIT_BYTES = 1_500_000_000

# Names (lower case) that operating systems and tools leave in folders; never images.
_SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})
_SYSTEM_DIRS = frozenset({"__macosx", "@eadir", "$recycle.bin", "system volume information"})

Augmenter = Callable[[Any, Any], tuple[Any, Any]]


class DataError(ValueError):
    """The data folder cannot be used as it is; the message says why and what to do."""


@dataclass(frozen=True)
class ScanResult:
    """What ``scan_folder`` found. ``files`` are absolute paths, ``labels`` index ``classes``."""
    root: str
    classes: list[str]
    files: list[str]
    labels: list[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): unusable
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): by rule
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        tally = np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, tally)}


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
    train_order: EpochOrder | None = None
    augmenter: Augmenter | None = None

    def start_epoch(self, epoch: int) -> None:
        """Fixes the order and the augmentation of the coming epoch (0-based) from the seed,
        so that a resumed run repeats an uninterrupted one batch for batch."""
        if self.train_order is not None:
            self.train_order.set_epoch(epoch)
        if self.augmenter is not None and hasattr(self.augmenter, "reseed"):
            self.augmenter.reseed(epoch)

    def report(self) -> DataReport:
        """The ``DataReport`` event for this bundle (scan results of both folders)."""
        from training.events import DataReport

        scans = [s for s in (self.scan, self.validation_scan) if s is not None]
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
        )


# -- scanning ---------------------------------------------------------------------------
def scan_folder(root: str | os.PathLike, *, verify: bool = True) -> ScanResult:
    """Finds the classes (immediate subfolders) and their images (at any depth).

    Hidden and system files and folders are ignored, files directly in ``root`` are
    ignored, symbolic links to folders are not followed (no loops), only regular files
    are used (a FIFO or a device would block or never end), and with ``verify`` each
    file's header is read (no decoding) so that non-images are skipped early. The walk
    keeps its own stack, so any depth of folders works.

    Raises:
        DataError: ``root`` does not exist, is not a folder, cannot be read, or has
            fewer than two class folders with usable images.
    """
    root_path = _usable_folder(root, "data folder")
    result = _scan(root_path, verify)
    if len(result.classes) < 2:
        raise DataError(_too_few_classes_message(root_path, result.classes, result.ignored))
    return result


def _usable_folder(folder: str | os.PathLike, what: str) -> Path:
    """The absolute path of ``folder`` (``builtin:`` names resolved) once it is known to be
    a folder that can be read; checked without raising anything but ``DataError``
    (``Path.exists()`` raises on a name over 255 bytes or a folder that cannot be entered)."""
    try:
        path = resolve_data_dir(os.fsdecode(folder)).absolute()
    except (OSError, RuntimeError) as error:  # no home folder for "~", a deleted working folder
        raise DataError(f"Cannot use the {what} {display_path(folder)}: {error}.") from None
    problem = path_problem(path, want="folder")
    if problem:
        raise DataError(f"Cannot use the {what}: {problem}. Choose a folder that holds one "
                        "subfolder of images per class, e.g. data/cats/*.jpg.")
    return path


def _scan(root: Path, verify: bool) -> ScanResult:
    """``scan_folder`` without the minimum of two classes."""
    skipped: list[tuple[str, str]] = []
    ignored: list[tuple[str, str]] = []
    warnings: list[str] = []
    classes, files, labels = [], [], []
    for name, folder in _class_dirs(root, ignored):
        found = _class_files(folder, verify, skipped, ignored)
        if not found:
            warnings.append(f"Class folder '{display_path(name)}' has no usable images and was left out.")
            continue
        files += found
        labels += [len(classes)] * len(found)
        classes.append(name)
    return ScanResult(str(root), classes, files, labels, skipped, ignored, warnings)


def _class_dirs(root: Path, ignored: list[tuple[str, str]]) -> list[tuple[str, Path]]:
    """Immediate subfolders of ``root`` that can be classes, sorted by name."""
    try:
        with os.scandir(root) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as error:
        raise DataError(f"Cannot read the folder {display_path(root)}: {error.strerror or error}. "
                        "Check that it exists and that you may read it.") from None
    found = []
    for entry in entries:
        path = os.path.join(root, entry.name)
        rule = _ignore_rule(entry.name, is_dir=_is_dir(entry))
        if rule:
            ignored.append((path, rule))
        elif _is_dir(entry):
            _check_class_name(entry.name, path)
            found.append((entry.name, Path(path)))
        else:
            ignored.append((path, "file directly in the data folder: only files inside a class "
                                  "subfolder are used; move it into the folder of its class"))
    return found


def _check_class_name(name: str, path: str) -> None:
    """A class name is stored in the run folder and shown everywhere, so it must be text:
    a folder name with bytes that are not UTF-8 is refused (its files need not be)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"The class folder {display_path(path)} has a name that is not valid UTF-8 "
                        "text, so it cannot be used as a class name. Rename the folder.") from None


def _class_files(folder: Path, verify: bool, skipped: list, ignored: list) -> list[str]:
    """Usable image files anywhere below one class folder, sorted.

    Top-down like ``os.walk`` (each folder's subfolders, then its files, by name), but with
    an explicit stack: ``os.walk`` recurses in Python 3.11 and fails past ~1,000 levels.
    """
    found: list[str] = []
    pending = [os.fspath(folder)]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as error:
            skipped.append((current, f"cannot read folder: {error.strerror or error}"))
            continue
        folders = [entry for entry in entries if _is_dir(entry)]
        subfolders = []
        for entry in folders:
            path = os.path.join(current, entry.name)
            rule = _ignore_rule(entry.name, is_dir=True)
            # Links to folders are not followed: a link to a parent folder would loop forever.
            if rule is None and entry.is_symlink():
                rule = "symbolic link to a folder (not followed)"
            if rule:
                ignored.append((path, rule))
            else:
                subfolders.append(path)
        for entry in entries:
            if _is_dir(entry):
                continue
            path = os.path.join(current, entry.name)
            rule = _ignore_rule(entry.name, is_dir=False)
            if rule:
                ignored.append((path, rule))
                continue
            reason = _unsupported_reason(path) or _not_regular_reason(entry, path)
            if reason:
                skipped.append((path, reason))
            else:
                found.append(path)
        pending.extend(reversed(subfolders))  # the first subfolder is walked next
    if verify:
        found = _verified(found, skipped)
    return sorted(found)


def _not_regular_reason(entry: os.DirEntry, path: str) -> str | None:
    """None for a regular file (or a link to one); else why it is not read.

    ``DirEntry.is_file`` costs no system call for a plain file: the file type comes with
    the folder listing. A FIFO would block the first read forever, a device never end.
    """
    try:
        if entry.is_file():
            return None
    except OSError:
        pass
    kind = file_kind(path)
    if kind == "file":
        return None
    if kind == "missing" and entry.is_symlink():
        return "broken symbolic link (what it points to does not exist)"
    return kind_reason(kind)


def _verified(paths: list[str], skipped: list) -> list[str]:
    """The paths whose header Pillow reads; the others go to ``skipped`` with the reason.

    Sequential on purpose: on 30,000 small files a pool of 8 threads was 1.8x slower
    (header parsing holds the GIL); see benchmarks/scan_large_folder.py.
    """
    kept = []
    for path in paths:
        reason = probe_image(path)
        if reason:
            skipped.append((path, reason))
        else:
            kept.append(path)
    return kept


def _ignore_rule(name: str, *, is_dir: bool) -> str | None:
    """Why a file or folder is ignored by rule, or None if it is not."""
    lower = name.lower()
    if name.startswith("._"):
        return "macOS metadata file (AppleDouble), not an image"
    if lower == ".ipynb_checkpoints":
        return "Jupyter checkpoint folder"
    if name.startswith("."):
        return "hidden folder" if is_dir else "hidden file"
    if is_dir and lower in _SYSTEM_DIRS:
        return "system folder"
    if not is_dir and lower in _SYSTEM_FILES:
        return "system file"
    return None


def _unsupported_reason(path: str) -> str | None:
    extension = os.path.splitext(path)[1].lower()
    if extension not in IMAGE_EXTENSIONS:
        shown = extension or "no extension"
        return (f"unsupported file type ({shown}); supported: "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
    return None


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows a link: a linked class folder is a class
    except OSError:
        return False


def _too_few_classes_message(root: Path, classes: list[str], ignored: list) -> str:
    loose = sum(1 for path, _ in ignored
                if os.path.dirname(path) == str(root) and os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS)
    message = (f"Found {len(classes)} class folder(s) with usable images in {display_path(root)}: "
               "a classifier needs at least 2. Put each class's images in its own subfolder, e.g. "
               f"{display_path(root / 'cats')}/*.jpg and {display_path(root / 'dogs')}/*.jpg.")
    if loose:
        message += f" {loose} image(s) lie directly in the folder; move them into class subfolders."
    return message


# -- splitting --------------------------------------------------------------------------
def split_stratified(labels, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation images, in the same proportions per class.

    Classes with a single image keep it for training. At least one validation image
    per class is asked for (when the split is > 0), and at least one training image
    per class is kept, so small data sets do not crash the split.

    Returns:
        (train_indices, validation_indices), each an int64 array in a seeded random order.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels, dtype=np.int64)
    indices = np.arange(len(labels), dtype=np.int64)
    if validation_split <= 0 or len(labels) == 0:
        return np.random.default_rng(seed).permutation(indices), np.zeros(0, dtype=np.int64)
    counts = np.bincount(labels)
    splittable = counts[labels] >= 2
    singles, pool = indices[~splittable], indices[splittable]
    pool_classes = int(np.count_nonzero(counts >= 2))
    if pool_classes == 0:
        return np.random.default_rng(seed).permutation(indices), np.zeros(0, dtype=np.int64)
    # sklearn needs room for every class on both sides; a count keeps it from refusing.
    n_validation = math.ceil(validation_split * len(pool))
    n_validation = min(max(n_validation, pool_classes), len(pool) - pool_classes)
    train, validation = train_test_split(pool, test_size=n_validation, random_state=seed,
                                         shuffle=True, stratify=labels[pool])
    train = np.concatenate([train, singles])
    return np.random.default_rng(seed).permutation(train), np.asarray(validation, dtype=np.int64)


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
        with self._lock:
            epoch, self.epoch = self.epoch, self.epoch + 1
        if not self.shuffle:
            return np.arange(self.count, dtype=np.int64)
        return np.random.default_rng([self.seed, epoch]).permutation(self.count).astype(np.int64)


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
                 cache_bytes: int | None = None) -> tf.data.Dataset:
    """A batched dataset of (float32 images in 0-255, one-hot float32 labels).

    Files that fail to decode are dropped one by one before batching, and their paths
    appended to ``failures`` (if given). Decoded uint8 images are cached in memory when
    ``cache``, up to ``cache_bytes`` (default ``CACHE_LIMIT_BYTES``). The order of each pass comes from ``order``
    (made here when not given): a full permutation per epoch when ``shuffle``.
    """
    import tensorflow as tf

    paths = [os.fsencode(f) for f in files]
    labels = np.asarray(labels, dtype=np.int32)
    if len(paths) != len(labels):
        raise ValueError(f"`files` and `labels` must have the same length. "
                         f"Received: {len(paths)} files and {len(labels)} labels")
    order = order or EpochOrder(len(paths), seed, shuffle)
    indices = tf.data.Dataset.from_tensors(0).flat_map(
        lambda _: tf.data.Dataset.from_tensor_slices(
            tf.numpy_function(order.indices, [], tf.int64, stateful=True)))
    decode = _decode_function(paths, labels, image_size, _FailureRecorder(failures),
                              _ImageCache((CACHE_LIMIT_BYTES if cache_bytes is None else cache_bytes)
                                          if cache else 0))
    dataset = indices.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.filter(lambda image, label, ok: ok)
    dataset = dataset.batch(batch_size, drop_remainder=False)
    dataset = dataset.map(lambda images, labels_, ok: (tf.cast(images, tf.float32),
                                                       tf.one_hot(labels_, num_classes, dtype=tf.float32)),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if augmenter is not None:
        # Sequential: the layers' seed generators then draw in a fixed order, so a seed
        # repeats a run. Measured on 2 cores at 128 px (flip, rotation, zoom, translation):
        # 185 images/s sequential, 386 parallel; but during training both cores are busy
        # with the model anyway.
        dataset = dataset.map(augmenter)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _decode_function(paths: list[bytes], labels: np.ndarray, image_size: int,
                     recorder: _FailureRecorder, cache: _ImageCache):
    import tensorflow as tf

    blank = np.zeros((image_size, image_size, 3), dtype=np.uint8)

    def load(index: np.int64) -> tuple[np.ndarray, np.int32, bool]:
        index = int(index)
        cached, image = cache.get(index)
        if not cached:
            image = None
            try:
                image = load_image(paths[index], image_size)
            except ImageLoadError as error:
                recorder.add(error.path)
            except Exception:  # nothing may escape into tf.data: it would end the epoch
                recorder.add(os.fsdecode(paths[index]))
            cache.put(index, image)
        if image is None:
            return blank, labels[index], np.bool_(False)
        return image, labels[index], np.bool_(True)

    def decode(index):
        image, label, ok = tf.numpy_function(load, [index], [tf.uint8, tf.int32, tf.bool],
                                             stateful=False)
        image.set_shape((image_size, image_size, 3))
        label.set_shape(())
        ok.set_shape(())
        return image, label, ok

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
def prepare_data(data_cfg: DataConfig, image_size: int, *, augmenter: Augmenter | None = None,
                 seed: int) -> DataBundle:
    """Scans ``data_cfg.dir`` (and ``data_cfg.validation_dir``), splits and builds the pipelines.

    Raises:
        DataError: a folder is unusable, the validation classes do not match, or no
            image is left for validation.
    """
    scan = scan_folder(data_cfg.dir)
    classes = scan.classes
    files, labels = np.asarray(scan.files, dtype=object), np.asarray(scan.labels, dtype=np.int64)
    warnings = list(scan.warnings)
    validation_scan = None
    # A blank `validation_dir` (e.g. "" in a hand-written config) means none, as null does.
    validation_dir = data_cfg.validation_dir if (data_cfg.validation_dir or "").strip() else None
    if validation_dir is not None:
        validation_scan = _scan_validation_folder(validation_dir, scan)
        warnings += [f"Validation folder: {w}" for w in validation_scan.warnings]
        order = np.random.default_rng(seed).permutation(len(files))
        train_files, train_labels = files[order], labels[order]
        validation_files = np.asarray(validation_scan.files, dtype=object)
        validation_labels = np.asarray(validation_scan.labels, dtype=np.int64)
    else:
        if data_cfg.validation_split <= 0:
            raise DataError(_no_validation_message(scan.root, data_cfg))
        train_index, validation_index = split_stratified(labels, data_cfg.validation_split, seed)
        train_files, train_labels = files[train_index], labels[train_index]
        validation_files, validation_labels = files[validation_index], labels[validation_index]
        warnings += _split_warnings(classes, labels, validation_labels)
    if len(validation_files) == 0:
        raise DataError(
            f"No images are left for validation in {display_path(scan.root)}: every class has a single "
            "image. Add images (at least 2 per class, better 20 or more), or set `data.validation_dir`.")
    return _bundle(data_cfg, image_size, augmenter, seed, scan, validation_scan, classes,
                   (train_files, train_labels), (validation_files, validation_labels), warnings)


def _scan_validation_folder(folder: str, train: ScanResult) -> ScanResult:
    """The scan of ``data.validation_dir``, which must hold the training folder's classes."""
    root = _usable_folder(folder, "validation folder (`data.validation_dir`)")
    validation = _scan(root, verify=True)
    if not validation.classes:
        raise DataError(
            f"The validation folder {display_path(root)} (`data.validation_dir`) has no usable images. "
            f"It needs the training folder's class subfolders ({', '.join(map(display_path, train.classes))}), "
            "each with images. Put validation images there, or set `data.validation_dir` to null "
            "and `data.validation_split` > 0 (e.g. 0.2) to split the training folder instead.")
    _check_same_classes(train, validation)
    return validation


def _no_validation_message(root: str, data_cfg: DataConfig) -> str:
    return ("No images are set aside for validation: `data.validation_split` is 0 and no "
            "`data.validation_dir` is given, but the best model is chosen on validation images. "
            f"Received: data.validation_split={data_cfg.validation_split}, "
            f"data.validation_dir={data_cfg.validation_dir!r}. Set `data.validation_split` > 0 "
            f"(e.g. 0.2) to hold back part of {display_path(root)}, or set `data.validation_dir` to a "
            "folder of validation images with the same class subfolders.")


def _bundle(data_cfg, image_size, augmenter, seed, scan, validation_scan, classes,
            train, validation, warnings) -> DataBundle:
    (train_files, train_labels), (validation_files, validation_labels) = train, validation
    image_bytes = image_size * image_size * 3
    validation_bytes = min(len(validation_files) * image_bytes, CACHE_LIMIT_BYTES)
    failures: list = []
    batch_size = data_cfg.batch_size
    order = EpochOrder(len(train_files), seed, shuffle=True)
    train_ds = make_dataset(train_files, train_labels, len(classes), image_size, batch_size,
                            shuffle=True, seed=seed, augmenter=augmenter, failures=failures,
                            order=order, cache_bytes=CACHE_LIMIT_BYTES - validation_bytes)
    validation_ds = make_dataset(validation_files, validation_labels, len(classes), image_size,
                                 batch_size, shuffle=False, seed=seed, failures=failures,
                                 cache_bytes=validation_bytes)
    if (len(train_files) + len(validation_files)) * image_bytes > CACHE_LIMIT_BYTES:
        warnings.append(f"The decoded images would need more than {CACHE_LIMIT_BYTES / 1e9:.1f} GB, "
                        "so only part of them stays in memory and the rest are decoded again every "
                        "epoch (slower). A smaller `data.image_size` makes them fit.")
    return DataBundle(
        train=train_ds, validation=validation_ds, classes=list(classes),
        train_count=len(train_files), validation_count=len(validation_files),
        train_counts=_counts(classes, train_labels), validation_counts=_counts(classes, validation_labels),
        steps_per_epoch=math.ceil(len(train_files) / batch_size),
        validation_steps=math.ceil(len(validation_files) / batch_size),
        scan=scan, validation_scan=validation_scan,
        class_weight=_class_weight(data_cfg.class_weight, train_labels, len(classes)),
        decode_failures=failures, warnings=warnings,
        train_files=[str(f) for f in train_files], validation_files=[str(f) for f in validation_files],
        train_order=order, augmenter=augmenter,
    )


def _check_same_classes(train: ScanResult, validation: ScanResult) -> None:
    if train.classes == validation.classes:
        return
    missing = sorted(map(display_path, set(train.classes) - set(validation.classes)))
    extra = sorted(map(display_path, set(validation.classes) - set(train.classes)))
    parts = []
    if missing:
        parts.append(f"missing from the validation folder: {', '.join(missing)}")
    if extra:
        parts.append(f"only in the validation folder: {', '.join(extra)}")
    raise DataError(
        f"The validation folder {display_path(validation.root)} must have the same class folders "
        f"(with images) as the training folder {display_path(train.root)}; {'; '.join(parts)}. "
        "Add or rename folders so both match, or set `data.validation_dir` to null to split the "
        "training folder instead.")


def _split_warnings(classes: list[str], labels: np.ndarray, validation_labels: np.ndarray) -> list[str]:
    warnings = []
    counts = np.bincount(labels, minlength=len(classes))
    in_validation = np.bincount(validation_labels, minlength=len(classes))
    for name, total, held in zip(classes, counts, in_validation):
        if total == 1:
            warnings.append(f"Class '{name}' has a single image: it is used for training only, "
                            "so its validation accuracy is not measured. Add more images.")
        elif held == 0:
            warnings.append(f"Class '{name}' has no validation image ({total} images in all); "
                            "its validation accuracy is not measured. Add more images.")
    return warnings


def _counts(classes: list[str], labels: np.ndarray) -> dict[str, int]:
    tally = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    return {name: int(n) for name, n in zip(classes, tally)}


def _class_weight(mode: str, train_labels: np.ndarray, num_classes: int) -> dict[int, float] | None:
    if mode != "balanced":
        return None
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(train_labels)
    weights = compute_class_weight("balanced", classes=present, y=train_labels)
    result = {int(c): 1.0 for c in range(num_classes)}
    result.update({int(c): float(w) for c, w in zip(present, weights)})
    return result

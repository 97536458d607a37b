"""Finding the images of a class-per-folder tree, without TensorFlow (the GUI calls it).

``scan_folder`` walks the tree iteratively (deep trees cannot exhaust the stack), reads
only regular files, and sorts every file into used, skipped (with the reason) or ignored
by rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.data.errors import DataError
from training.data.images import IMAGE_EXTENSIONS, kind_reason, probe_image
from training.data.sample import resolve_data_dir
from training.files import display_path, file_kind, path_problem

# Names (lower case) that operating systems and tools leave in folders; never images.
_SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})
_SYSTEM_DIRS = frozenset({"__macosx", "@eadir", "$recycle.bin", "system volume information"})


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
    root_path = usable_folder(root, "data folder")
    result = scan_classes(root_path, verify)
    if len(result.classes) < 2:
        raise DataError(_too_few_classes_message(root_path, result.classes, result.ignored))
    return result


def usable_folder(folder: str | os.PathLike, what: str) -> Path:
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


def scan_classes(root: Path, verify: bool) -> ScanResult:
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



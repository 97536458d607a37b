"""Classify images with a trained run (``python main.py predict RUN_DIR IMAGE_OR_FOLDER...``).

A run folder may come from elsewhere or be damaged, so nothing in it is trusted blindly:

- ``best.keras`` is opened only through ``models.safe_load`` (checked archive, safe mode).
- The input size is the model's own input shape; ``config.json``'s ``data.image_size`` must
  agree with it (a mismatch, or a value that is missing, not a whole number or out of range,
  means the folder is damaged). Neither may exceed ``MAX_IMAGE_SIZE``, the largest size
  ``train`` accepts, so a crafted file cannot make ``predict`` allocate gigabytes a batch.
  A model whose input size is undefined (``(None, None, 3)``, fully convolutional: this
  app never builds one, but such a model works at any size) is run at the size
  ``config.json`` names, within the same range.
- The class names come from ``training.rundir.labels.read_labels``, and their count must equal
  the model's outputs: a names file that does not belong to the model is refused instead
  of shifting every label.

Inputs: image files and folders. A folder is searched with all its subfolders, walked
with an explicit stack rather than recursion (any depth works), hidden files and folders
skipped, symbolic links to folders not followed (a link loop cannot trap the walk).
A FIFO, device or other non-regular file is never opened: it is reported as skipped, like
an image that cannot be decoded. No image at all is an error, not an empty result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from training.data.images import IMAGE_EXTENSIONS, ImageLoadError, load_image
from training.files import FileReadError, file_kind, path_problem, read_json
from training.inference.tta import probabilities
from training.rundir import BEST_MODEL, CONFIG_FILE
from training.rundir.labels import LABELS_JSON, LABELS_TXT, LabelsError, read_labels

BATCH = 32
RUN_CONFIG = CONFIG_FILE
# The largest `data.image_size` that `train` accepts.
MAX_IMAGE_SIZE = 1024
_DAMAGED = "The run folder is damaged: train again, or restore the folder from a copy."


class PredictError(ValueError):
    """The run folder or the inputs cannot be used; the message says what to do."""


def load_run(run_dir: str | Path):
    """The trained model, class names and input image size of a run folder.

    Raises:
        PredictError: not a run folder, or a damaged or unsafe one; the message says which file.
    """
    run_dir = Path(run_dir)
    problem = path_problem(run_dir, want="folder")
    if problem:
        raise PredictError(f"{problem}. Pass a run folder written by `python main.py train`.")
    model_path, config_path = run_dir / BEST_MODEL, run_dir / RUN_CONFIG
    for name in (BEST_MODEL, RUN_CONFIG, LABELS_TXT):
        other = LABELS_JSON if name == LABELS_TXT else name
        if file_kind(run_dir / name) == "missing" and file_kind(run_dir / other) == "missing":
            raise PredictError(
                f"{run_dir} is not a finished run folder: {name} is missing. Pass a folder "
                "written by `python main.py train` in which at least one epoch completed.")
    configured_size = _configured_image_size(config_path)
    from models.safe_load import UnsafeModelError, load_model_safely

    try:
        model = load_model_safely(model_path)
    except UnsafeModelError as error:
        raise PredictError(str(error)) from None
    image_size = _input_size(model, model_path, configured_size, config_path)
    try:
        classes = read_labels(run_dir, expected=_output_count(model, model_path))
    except LabelsError as error:
        raise PredictError(f"{error} {_DAMAGED}") from None
    return model, classes, image_size


def expand_inputs(items: list[str | Path]) -> list[tuple[Path, str]]:
    """Every image to classify, as ``(path, problem)``; ``problem`` is "" for a usable file.

    Files are taken as given; folders are searched for files with an image extension
    (sorted). A non-regular file (FIFO, device) or a folder that cannot be listed comes
    back with the reason it is skipped.

    Raises:
        PredictError: an input does not exist or cannot be reached, or no image was found.
    """
    found: list[tuple[Path, str]] = []
    folders: list[Path] = []
    for item in items:
        path = _expand_user(item)
        kind = file_kind(path)
        if kind == "folder":
            folders.append(path)
            found += _images_under(path)
        elif kind == "file":
            found.append((path, ""))
        elif kind in ("missing", "unreadable"):
            raise PredictError(f"{path_problem(path)}. Pass image files or folders of images.")
        else:
            found.append((path, _not_regular(kind)))
    if not found:
        where = ", ".join(_shown(folder) for folder in folders) or "the arguments"
        raise PredictError(
            f"no images found in {where}: pass image files or folders holding "
            f"{'/'.join(sorted(IMAGE_EXTENSIONS))} files (folders are searched with their "
            "subfolders; hidden files are skipped).")
    return found


def predict(run_dir: str | Path, items: list[str | Path], top_k: int = 3,
            tta: bool = False) -> list[dict[str, Any]]:
    """Top-k classes with probabilities for every image; unusable images get an ``error``.
    ``tta``: the probabilities are averaged over flipped and cropped views
    (``training.inference.tta``)."""
    model, classes, image_size = load_run(run_dir)
    top_k = max(1, min(top_k, len(classes)))
    results: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], np.ndarray]] = []
    for path, problem in expand_inputs(items):
        item: dict[str, Any] = {"path": str(path)}
        results.append(item)
        if problem:
            item["error"] = problem
            continue
        try:
            pending.append((item, load_image(path, image_size)))
        except ImageLoadError as error:
            item["error"] = error.reason if hasattr(error, "reason") else str(error)
        if len(pending) == BATCH:
            _classify(model, classes, pending, top_k, tta)
            pending = []
    if pending:
        _classify(model, classes, pending, top_k, tta)
    return results


# -- the run folder -----------------------------------------------------------------------------
def _configured_image_size(config_path: Path) -> Any:
    """``data.image_size`` as written in the run's config.json (checked against the model later)."""
    try:
        config = read_json(config_path, what="run's config")
    except FileReadError as error:
        raise PredictError(f"{error} {_DAMAGED}") from None
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict):
        raise PredictError(f"{config_path} is not a run config (a JSON object with a \"data\" "
                           f"section). {_DAMAGED}")
    return data.get("image_size")


def _input_size(model, model_path: Path, configured: Any, config_path: Path) -> int:
    """The model's input size; config.json must name the same one."""
    shape = model.input_shape
    if not (isinstance(shape, tuple) and len(shape) == 4 and shape[-1] == 3):
        raise PredictError(f"{model_path} is not an image classifier of this app: its input is "
                           f"{shape}, not one batch of RGB images (None, size, size, 3).")
    height, width = shape[1], shape[2]
    if height is None and width is None:
        # Fully convolutional: any size works; the run was trained at the configured one.
        return _checked_size(configured, config_path)
    if height != width or not isinstance(height, int) or not 1 <= height <= MAX_IMAGE_SIZE:
        raise PredictError(f"{model_path} expects {height} x {width} px images; this app's models "
                           f"take square images of at most {MAX_IMAGE_SIZE} px. {_DAMAGED}")
    if _checked_size(configured, config_path) != height:
        raise PredictError(f"{config_path}: `data.image_size` is {configured!r} but the model in "
                           f"{model_path.name} takes {height} px images. {_DAMAGED}")
    return height


def _checked_size(value: Any, config_path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IMAGE_SIZE:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise PredictError(f"{config_path}: `data.image_size` must be the model's input size, a "
                           f"whole number of pixels from 1 to {MAX_IMAGE_SIZE}. Received: "
                           f"data.image_size={shown}. {_DAMAGED}")
    return value


def _output_count(model, model_path: Path) -> int:
    shape = model.output_shape
    if not (isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], int)):
        raise PredictError(f"{model_path} is not a classifier of this app: its output is {shape}, "
                           "not one probability per class (None, classes).")
    return shape[1]


# -- the inputs ---------------------------------------------------------------------------------
def _expand_user(item: str | Path) -> Path:
    try:
        return Path(item).expanduser()
    except RuntimeError:  # "~someone" with no such user: take the name literally
        return Path(item)


def _images_under(folder: Path) -> list[tuple[Path, str]]:
    """Files with an image extension under ``folder``, walked with a stack (no recursion limit)."""
    found: list[tuple[Path, str]] = []
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if _is_real_folder(entry):
                        stack.append(Path(entry.path))
                    elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                        kind = file_kind(entry.path)
                        found.append((Path(entry.path), "" if kind == "file" else _not_regular(kind)))
        except OSError as error:  # unreadable, removed meanwhile, or a path too long to open
            found.append((current, f"this folder cannot be listed ({error.strerror or error})"))
    return sorted(found)


def _is_real_folder(entry: os.DirEntry) -> bool:
    # Links to folders are not followed: a link to an ancestor would loop forever.
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _not_regular(kind: str) -> str:
    if kind == "missing":
        return "not a regular file: a broken link, or it was removed"
    article = "an" if kind[0] in "aeiou" else "a"
    return f"not a regular file: it is {article} {kind}"


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 200 else text[:120] + " ... " + text[-40:]


def _classify(model, classes: list[str], pending, top_k: int, tta: bool) -> None:
    scored = probabilities(model, np.stack([image for _, image in pending]), tta=tta)
    for (item, _), row in zip(pending, scored):
        order = np.argsort(row)[::-1][:top_k]
        item["top"] = [{"class": classes[i], "probability": float(row[i])} for i in order]

"""Classify images with a trained run (``python main.py predict RUN_DIR IMAGE_OR_FOLDER...``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training.images import IMAGE_EXTENSIONS, ImageLoadError, load_image
from training.rundir import BEST_MODEL

BATCH = 32


class PredictError(ValueError):
    """The run folder or the inputs cannot be used; the message says what to do."""


def load_run(run_dir: str | Path):
    """The trained model, class names and image size of a run folder."""
    run_dir = Path(run_dir)
    model_path = run_dir / BEST_MODEL
    labels_path = run_dir / "labels.txt"
    config_path = run_dir / "config.json"
    for path in (model_path, labels_path, config_path):
        if not path.is_file():
            raise PredictError(
                f"{run_dir} is not a finished run folder: {path.name} is missing. Pass a folder "
                "written by `python main.py train` in which at least one epoch completed.")
    from models.safe_load import UnsafeModelError, load_model_safely

    try:
        model = load_model_safely(model_path)
    except UnsafeModelError as error:
        raise PredictError(str(error)) from None
    classes = [line for line in labels_path.read_text(encoding="utf-8").splitlines() if line]
    image_size = int(json.loads(config_path.read_text(encoding="utf-8"))["data"]["image_size"])
    return model, classes, image_size


def expand_inputs(items: list[str | Path]) -> list[Path]:
    """Image files as given, and the images inside given folders (sorted, recursive)."""
    paths: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.exists():
            paths.append(path)
        else:
            raise PredictError(f"{path} does not exist. Pass image files or folders of images.")
    return paths


def predict(run_dir: str | Path, items: list[str | Path], top_k: int = 3) -> list[dict[str, Any]]:
    """Top-k classes with probabilities for every image; unreadable images get an ``error``."""
    model, classes, image_size = load_run(run_dir)
    top_k = max(1, min(top_k, len(classes)))
    results: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], np.ndarray]] = []
    for path in expand_inputs(items):
        item: dict[str, Any] = {"path": str(path)}
        results.append(item)
        try:
            pending.append((item, load_image(path, image_size)))
        except ImageLoadError as error:
            item["error"] = error.reason if hasattr(error, "reason") else str(error)
        if len(pending) == BATCH:
            _classify(model, classes, pending, top_k)
            pending = []
    if pending:
        _classify(model, classes, pending, top_k)
    return results


def _classify(model, classes: list[str], pending, top_k: int) -> None:
    batch = np.stack([image for _, image in pending]).astype("float32")
    probabilities = np.asarray(model.predict_on_batch(batch))
    for (item, _), row in zip(pending, probabilities):
        order = np.argsort(row)[::-1][:top_k]
        item["top"] = [{"class": classes[i], "probability": float(row[i])} for i in order]

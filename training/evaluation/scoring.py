"""Scoring images with one model or several (an ensemble, a run's snapshots).

Images are decoded with ``training.data.images.load_image``, as training and ``predict``
decode them, at each model's own input size, and scored in batches of
``training.inference.predict.BATCH`` with ``training.inference.tta.probabilities``: without
TTA exactly what ``predict`` does, so the top class of every image is the one ``predict``
reports. Several models' probabilities are averaged (an ensemble of probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from training.data.images import ImageLoadError, load_image
from training.inference.predict import BATCH
from training.inference.tta import probabilities


@dataclass
class Member:
    """One model of an evaluation: its name (a run folder or a snapshot file), the model, its size."""
    name: str
    model: Any
    image_size: int


@dataclass
class Scored:
    """The images that could be scored, their classes and the (averaged) probabilities.

    ``plain`` holds the probabilities without TTA when ``tta`` was asked for (to report
    both accuracies); ``members`` each model's own probabilities when there are several.
    """
    paths: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    skipped: list[dict[str, str]] = field(default_factory=list)
    plain: np.ndarray | None = None
    members: list[np.ndarray] = field(default_factory=list)


def score_images(members: list[Member], files: list[str], labels: np.ndarray, *, tta: bool = False,
                 on_progress: Callable[[int, int], None] | None = None) -> Scored:
    """Scores ``files`` (class indices ``labels``) with every member; undecodable files are
    skipped (with their reason), as a run drops them."""
    kept_paths, kept_labels, skipped = [], [], []
    per_member: list[list[np.ndarray]] = [[] for _ in members]
    plain_rows: list[list[np.ndarray]] = [[] for _ in members]
    total = len(files)
    for start in range(0, total, BATCH):
        chunk = list(zip(files[start:start + BATCH], labels[start:start + BATCH]))
        images: dict[int, list[np.ndarray]] = {}
        good: list[tuple[str, int]] = []
        for path, label in chunk:
            try:
                decoded = {size: load_image(path, size) for size in {m.image_size for m in members}}
            except ImageLoadError as error:
                skipped.append({"path": str(path), "reason": getattr(error, "reason", str(error))})
                continue
            good.append((str(path), int(label)))
            for size, image in decoded.items():
                images.setdefault(size, []).append(image)
        if good:
            kept_paths += [p for p, _ in good]
            kept_labels += [lab for _, lab in good]
            for index, member in enumerate(members):
                batch = np.stack(images[member.image_size])
                per_member[index].append(probabilities(member.model, batch, tta=tta))
                if tta:
                    plain_rows[index].append(probabilities(member.model, batch, tta=False))
        if on_progress is not None:
            on_progress(min(start + BATCH, total), total)
    num_classes = _num_classes(members)
    member_probabilities = [np.concatenate(rows) if rows else np.zeros((0, num_classes), np.float32)
                            for rows in per_member]
    plain = None
    if tta:
        plain = np.mean([np.concatenate(rows) if rows else np.zeros((0, num_classes), np.float32)
                         for rows in plain_rows], axis=0)
    return Scored(paths=kept_paths, labels=np.asarray(kept_labels, dtype=np.int64),
                  probabilities=np.mean(member_probabilities, axis=0), skipped=skipped, plain=plain,
                  members=member_probabilities if len(members) > 1 else [])


def _num_classes(members: list[Member]) -> int:
    return int(members[0].model.output_shape[-1])

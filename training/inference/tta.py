"""Test-time augmentation: average the class probabilities over several views of an image.

The views are the lectures' standard recipe, multi-crop with horizontal flips: the whole
image, the four corner crops and the centre crop of ``CROP`` of its side (each scaled back
to the model's input size, bilinear), and the mirror image of each: ``VIEWS`` = 12 views.
The model's probabilities are averaged over them (an average of probabilities, not of
logits, as the ensemble does too). Flips suit the photographs this app is for; a task where
left and right differ (text, some medical images) should not use TTA.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CROP = 0.875  # 224 of 256, the crop size of the classic ImageNet 10-crop evaluation
VIEWS = 12
# Views scored a model call: the images of one call are VIEWS x this many.
IMAGES_A_CALL = 8


def _boxes() -> np.ndarray:
    """(y1, x1, y2, x2) of the six crops in normalised coordinates: whole, 4 corners, centre."""
    edge = 1.0 - CROP
    middle = edge / 2
    return np.array([[0, 0, 1, 1],
                     [0, 0, CROP, CROP], [0, edge, CROP, 1], [edge, 0, 1, CROP], [edge, edge, 1, 1],
                     [middle, middle, middle + CROP, middle + CROP]], dtype=np.float32)


def tta_views(images: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) images -> (N * VIEWS, S, S, 3) float32, each image's views together."""
    import tensorflow as tf

    images = np.asarray(images, dtype=np.float32)
    count, size = images.shape[0], images.shape[1]
    boxes = _boxes()
    crops = tf.image.crop_and_resize(images, np.tile(boxes, (count, 1)),
                                     np.repeat(np.arange(count, dtype=np.int32), len(boxes)),
                                     (size, size), method="bilinear").numpy()
    crops = crops.reshape(count, len(boxes), size, size, 3)
    views = np.concatenate([crops, crops[:, :, :, ::-1, :]], axis=1)  # and their mirror images
    return views.reshape(count * VIEWS, size, size, 3)


def probabilities(model: Any, images: np.ndarray, tta: bool = False) -> np.ndarray:
    """The model's class probabilities for uint8 or float (N, S, S, 3) images: (N, classes)
    float32; with ``tta`` the average over ``tta_views``."""
    batch = np.asarray(images, dtype=np.float32)
    if not tta:
        return np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    rows = []
    for start in range(0, len(batch), IMAGES_A_CALL):
        chunk = batch[start:start + IMAGES_A_CALL]
        scored = np.asarray(model.predict_on_batch(tta_views(chunk)), dtype=np.float32)
        rows.append(scored.reshape(len(chunk), VIEWS, -1).mean(axis=1))
    return np.concatenate(rows)

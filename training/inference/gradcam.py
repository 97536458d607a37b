"""Grad-CAM: where in an image the classifier looked for a class (Selvaraju et al. 2017).

The explained feature map is the output of the backbone's last convolutional block. Every
backbone this app builds ends there (``include_top=False``, no pooling): the last layer of
the nested backbone with a 4-D output is its output layer, so the map is the tensor the
classifier's ``avg_pool`` layer takes. For each image the gradient of the class's score
with respect to that map is averaged over the map's positions, one weight per channel;
the heat map is the ReLU of the channels summed with those weights, bilinearly upsampled
to the input size and divided by its maximum. The score is the class's *logit*, the
``predictions`` layer's input to its softmax: the probability's gradient also carries the
other classes' scores, and it vanishes once the model is sure.

The map is coarse: SmallCNN's is 1/8 of the input size, keras.applications backbones'
1/32 (a 2 x 2 map at 64 px, 7 x 7 at 224). At 32 px or less they give a 1 x 1 map, which
says nothing about where: the heat map is then the same everywhere.

Nothing about the model changes: the computation reuses its layers as they are, in
inference mode (Dropout off, BatchNormalization with its moving statistics), and builds
no new graph through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from training.data.images import ImageLoadError, load_image
from training.inference.cache import cached_run, for_model
from training.inference.predict import PredictError

BATCH = 32
DEFAULT_ALPHA = 0.45
_SHOWN_CLASSES = 30


@dataclass(frozen=True)
class _Explainer:
    """The classifier split at the explained feature map.

    ``features`` is a functional model over the classifier's own graph (images -> map);
    ``head`` the layers after the backbone but the last, applied in order; ``scores`` the
    last Dense layer, whose pre-activation output is the logits.
    """

    features: Any
    head: list[Any]
    scores: Any


def grad_cam(model, images: np.ndarray, class_indices: int | Sequence[int] | None = None) -> np.ndarray:
    """Grad-CAM heat maps of ``images`` for the given classes.

    Args:
        model: A classifier built by ``models.classifier.build_classifier`` (or loaded
            from a run): 0-255 RGB images -> preprocessing -> nested backbone -> head.
        images: ``(N, H, W, 3)`` images, 0-255, at the model's input size.
        class_indices: The class to explain per image (one int for all of them, or one per
            image); default: each image's top class.

    Returns:
        float32 ``(N, H, W)`` maps in [0, 1]; a map with no positive evidence is all zeros.

    Raises:
        ValueError: images of the wrong shape, a class index out of range, or a model
            that is not a classifier of this app.
    """
    return _explain(model, images, class_indices)[0]


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """``heatmap`` (H x W, 0-1) coloured blue (0) -> green -> red (1), as the "jet" colour
    map, and blended over ``image`` (uint8 H x W x 3): ``alpha`` is the colour's share."""
    image = np.asarray(image)
    heatmap = np.asarray(heatmap, dtype="float32")
    if image.ndim != 3 or image.shape[-1] != 3 or heatmap.shape != image.shape[:2]:
        raise ValueError("`heatmap` must be H x W and `image` H x W x 3 with the same H and W. "
                         f"Received: image.shape={image.shape}, heatmap.shape={heatmap.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be between 0 and 1. Received: alpha={alpha}")
    blended = (1.0 - alpha) * image.astype("float32") + alpha * 255.0 * jet(heatmap)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def jet(values: np.ndarray) -> np.ndarray:
    """The "jet" colour map: values in [0, 1] (NaN and out-of-range values clipped) ->
    RGB in [0, 1], dark blue, blue, cyan, yellow, red, dark red; shape ``values.shape + (3,)``."""
    x = np.clip(np.nan_to_num(np.asarray(values, dtype="float32")), 0.0, 1.0)[..., None]
    # Each channel is a trapezoid over x; red peaks at 3/4, green at 1/2, blue at 1/4.
    return np.clip(1.5 - np.abs(4.0 * x - np.array([3.0, 2.0, 1.0], dtype="float32")), 0.0, 1.0)


def grad_cam_for_run(run_dir: str | Path, image_path: str | Path,
                     class_name: str | None = None) -> dict[str, Any]:
    """Grad-CAM of one image for ``class_name`` (default: the top class) with a run's best model.

    Returns:
        ``image`` (uint8 size x size x 3, as the model saw it), ``heatmap`` (float32 size x
        size, 0-1), ``overlay`` (uint8, the heat map blended on the image), ``class``,
        ``probability`` (of that class) and ``top`` (every class as ``{"class",
        "probability"}``, highest first).

    Raises:
        PredictError: the run folder cannot be used, the image cannot be decoded, or
            ``class_name`` is not one of the run's classes.
    """
    model, classes, image_size = cached_run(run_dir)
    if class_name is not None and class_name not in classes:
        shown = ", ".join(repr(name) for name in classes[:_SHOWN_CLASSES])
        more = f" and {len(classes) - _SHOWN_CLASSES} more" if len(classes) > _SHOWN_CLASSES else ""
        raise PredictError(f"`class_name` must be one of the run's classes: {shown}{more}. "
                           f"Received: class_name={class_name!r}")
    try:
        image = load_image(image_path, image_size)
    except ImageLoadError as error:
        raise PredictError(str(error)) from None
    index = None if class_name is None else classes.index(class_name)
    heatmaps, probabilities, explained = _explain(model, image[None], index)
    row, chosen = probabilities[0], int(explained[0])
    order = np.argsort(row, kind="stable")[::-1]
    return {
        "image": image,
        "heatmap": heatmaps[0],
        "overlay": overlay(image, heatmaps[0]),
        "class": classes[chosen],
        "probability": float(row[chosen]),
        "top": [{"class": classes[i], "probability": float(row[i])} for i in order],
    }


# -- the computation ----------------------------------------------------------------------------
def _explain(model, images, class_indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heat maps, class probabilities and the explained class of every image."""
    images = np.asarray(images)
    size = tuple(model.input_shape[1:3])
    if images.ndim != 4 or images.shape[-1] != 3 or (None not in size and images.shape[1:3] != size):
        raise ValueError(f"`images` must be a batch of RGB images of shape (N, {size[0]}, {size[1]}, "
                         f"3). Received: images.shape={images.shape}")
    explainer = for_model(model, "grad_cam", _build_explainer)
    chosen = _class_indices(class_indices, len(images), model.output_shape[-1])
    parts = [_explain_batch(explainer, images[start:start + BATCH],
                            None if chosen is None else chosen[start:start + BATCH])
             for start in range(0, len(images), BATCH)]
    if not parts:
        height, width = images.shape[1:3]
        return (np.zeros((0, height, width), "float32"),
                np.zeros((0, model.output_shape[-1]), "float32"), np.zeros(0, "int64"))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


def _class_indices(value, count: int, num_classes: int) -> np.ndarray | None:
    if value is None:
        return None
    indices = np.broadcast_to(np.asarray(value), (count,)) if np.ndim(value) == 0 else np.asarray(value)
    valid = (indices.shape == (count,) and np.issubdtype(indices.dtype, np.integer)
             and bool(np.all((indices >= 0) & (indices < num_classes))))
    if not valid:
        raise ValueError(f"`class_indices` must be one class index from 0 to {num_classes - 1}, or "
                         f"one per image ({count}). Received: class_indices={value!r}")
    return indices.astype("int64")


def _build_explainer(model) -> _Explainer:
    import keras

    from models.classifier import head_layers

    nested = [index for index, layer in enumerate(model.layers) if isinstance(layer, keras.Model)]
    scores = (head_layers(model) or [None])[-1]
    if (len(nested) != 1 or scores is None or model.layers[-1] is not scores
            or scores.activation is not keras.activations.softmax):
        raise ValueError(f"Grad-CAM needs a classifier of this app (preprocessing, one nested "
                         f"backbone, a head ending in a softmax Dense layer); {model.name} is not one.")
    backbone, head = model.layers[nested[0]], model.layers[nested[0] + 1:]
    # The outer graph's backbone output is the input of the layer after it (the backbone's
    # own `.output` is the tensor inside the backbone's graph).
    feature_map = head[0].input
    if len(feature_map.shape) != 4 or not _is_chain(head):
        raise ValueError(f"Grad-CAM needs the backbone {backbone.name} to output a feature map "
                         f"followed by a chain of head layers; {model.name} has "
                         f"{feature_map.shape} and {[layer.name for layer in head]}.")
    # A functional model between the classifier's own tensors adds no node to any layer.
    features = keras.Model(model.inputs[0], feature_map, name=f"{model.name}_grad_cam_features")
    return _Explainer(features=features, head=head[:-1], scores=scores)


def _is_chain(layers: list[Any]) -> bool:
    return all(after.input is before.output for before, after in zip(layers, layers[1:]))


def _explain_batch(explainer: _Explainer, images: np.ndarray, chosen: np.ndarray | None):
    import tensorflow as tf

    maps = explainer.features(images.astype("float32"), training=False)
    with tf.GradientTape() as tape:
        tape.watch(maps)
        x = maps
        for layer in explainer.head:
            x = layer(x, training=False)
        logits = _logits(explainer.scores, x)
        if chosen is None:
            chosen = np.argmax(logits.numpy(), axis=-1)
        # Only the chosen logit of each image is differentiated: one backward pass per batch.
        picked = tf.gather(logits, chosen, axis=1, batch_dims=1)
    probabilities = tf.nn.softmax(logits, axis=-1)
    gradients = tape.gradient(picked, maps)
    maps, gradients = tf.cast(maps, tf.float32), tf.cast(gradients, tf.float32)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(maps * weights, axis=-1, keepdims=True))
    cams = tf.image.resize(cams, images.shape[1:3], method="bilinear")[..., 0].numpy()
    return _normalized(cams), probabilities.numpy().astype("float32"), np.asarray(chosen, "int64")


def _logits(dense, x):
    """The last Dense layer's output before its softmax."""
    import keras

    x = keras.ops.cast(x, dense.kernel.dtype)
    logits = keras.ops.matmul(x, dense.kernel)
    return logits + dense.bias if dense.use_bias else logits


def _normalized(cams: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum; a map with no positive value (or a non-finite one) is zeros."""
    cams = np.nan_to_num(cams.astype("float32"), nan=0.0, posinf=0.0, neginf=0.0)
    peaks = cams.max(axis=(1, 2), keepdims=True) if cams.size else np.zeros((len(cams), 1, 1), "float32")
    safe = np.where(peaks > 0, peaks, 1.0)
    return np.where(peaks > 0, np.clip(cams / safe, 0.0, 1.0), 0.0).astype("float32")

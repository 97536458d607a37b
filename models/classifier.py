"""The classifier built around a backbone, and the freezing steps of transfer learning.

    image (0-255 RGB) -> preprocess_* -> backbone -> GlobalAveragePooling2D
        -> [Dense -> (BatchNormalization) -> activation -> Dropout] per hidden layer
        -> (Dropout when there is no hidden layer) -> Dense softmax "predictions"

The ``preprocess_*`` layers are the backbone's input scaling made of Keras built-in layers
without weights (``models.preprocess.add_preprocessing``), so a saved model opens in plain
Keras and nothing there ever trains. They sit in front of the nested backbone, not in it:
``unfreeze_top_layers`` and ``fine_tune_layers`` count the backbone's own layers only.

A pretrained backbone is called with ``training=False`` (keras-io
``guides/transfer_learning.py``), a from-scratch one without it. Measured on Keras 3.15:
an outer ``model(x, training=True)`` (as in ``fit``) overrides that recorded
``training=False`` (``keras/src/models/functional.py::operation_fn``), so what keeps a
pretrained backbone's BatchNormalization in inference mode is that those layers stay
frozen: Keras runs a BatchNormalization layer with ``trainable=False`` in inference
mode, and ``unfreeze_top_layers`` unfreezes them only with ``train_batch_norm``.

Functions take any object with the needed attributes (``training.config.ModelConfig``,
``HeadConfig``, ``RegularizationConfig`` have them); ``models`` never imports ``training``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
from keras import layers

from models.backbones import build_backbone
from models.preprocess import add_preprocessing
from models.registry import BackboneSpec, get_spec

# docs/facts.md#batchnorm-momentum: Keras backbones' BatchNorm momentum (0.99-0.999) is too slow for a short
# from-scratch run: validation accuracy stays at chance; 0.9 fixes it.
FROM_SCRATCH_BATCH_NORM_MOMENTUM = 0.9


@dataclass
class Classifier:
    """A built classifier and the parts the training stages need.

    Attributes:
        model: Raw 0-255 RGB float images ``(size, size, 3)`` -> class probabilities.
        backbone: The feature extractor nested in ``model`` (freeze/unfreeze this).
        spec: The backbone's registry entry.
        from_scratch: True when the backbone started from random weights
            (``model.weights == "none"``).
    """

    model: keras.Model
    backbone: keras.Model
    spec: BackboneSpec
    from_scratch: bool


def build_classifier(model_cfg: Any, regularization_cfg: Any, *, image_size: int,
                     num_classes: int, seed: int | None = None) -> Classifier:
    """Builds backbone and head as ``model_cfg`` and ``regularization_cfg`` say.

    Args:
        model_cfg: Has ``backbone``, ``weights``, ``batch_norm_momentum`` and ``head``
            (``hidden_units``, ``activation``, ``dropout``, ``batch_norm``,
            ``kernel_initializer``).
        regularization_cfg: Has ``l1``, ``l2`` and ``max_norm`` (0 = off), applied to the
            kernel of every Dense layer of the head, ``predictions`` included.
        image_size: Input height and width in px.
        num_classes: Number of output classes (>= 2).
        seed: Seeds the head's initializers and dropout; the same seed builds the same head.

    Raises:
        ValueError: an invalid backbone, size or weights file.
        models.weights.WeightsUnavailableError: ImageNet weights cannot be had.
    """
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes}")
    spec = get_spec(model_cfg.backbone)
    from_scratch = model_cfg.weights == "none"
    momentum = model_cfg.batch_norm_momentum
    if momentum is None and from_scratch:
        momentum = FROM_SCRATCH_BATCH_NORM_MOMENTUM
    backbone = build_backbone(spec.name, image_size, model_cfg.weights, momentum)

    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = add_preprocessing(inputs, spec.preprocess)
    x = backbone(x) if from_scratch else backbone(x, training=False)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = _head(x, model_cfg.head, regularization_cfg, num_classes, seed)
    model = keras.Model(inputs, outputs, name=f"{spec.name.lower()}_classifier")
    return Classifier(model=model, backbone=backbone, spec=spec, from_scratch=from_scratch)


def _head(x, head: Any, regularization: Any, num_classes: int, seed: int | None):
    for index, units in enumerate(head.hidden_units, start=1):
        x = layers.Dense(units, use_bias=not head.batch_norm,  # BN's beta is the bias
                         **_kernel_options(head.kernel_initializer, regularization, seed, index),
                         name=f"head_dense_{index}")(x)
        if head.batch_norm:
            x = layers.BatchNormalization(name=f"head_bn_{index}")(x)
        x = layers.Activation(head.activation, name=f"head_activation_{index}")(x)
        if head.dropout > 0:
            x = layers.Dropout(head.dropout, seed=_offset(seed, index),
                               name=f"head_dropout_{index}")(x)
    if not head.hidden_units and head.dropout > 0:
        x = layers.Dropout(head.dropout, seed=seed, name="head_dropout")(x)
    # float32 output keeps softmax and the loss stable under mixed precision.
    return layers.Dense(num_classes, activation="softmax", dtype="float32",
                        **_kernel_options("glorot_uniform", regularization, seed, 0),
                        name="predictions")(x)


def _kernel_options(initializer: str, regularization: Any, seed: int | None,
                    index: int) -> dict[str, Any]:
    l1, l2 = regularization.l1, regularization.l2
    return {
        # A fresh instance per layer: a seeded initializer object reused across layers
        # would give every layer of one shape the same matrix.
        "kernel_initializer": type(keras.initializers.get(initializer))(seed=_offset(seed, index)),
        "kernel_regularizer": keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None,
        "kernel_constraint": (keras.constraints.MaxNorm(regularization.max_norm)
                              if regularization.max_norm > 0 else None),
    }


def _offset(seed: int | None, index: int) -> int | None:
    return None if seed is None else seed + index


def head_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The Dense layers of the head, ``predictions`` last (the backbone is nested, so its
    own layers are not among ``model.layers``)."""
    return [layer for layer in model.layers if isinstance(layer, layers.Dense)]


def freeze_backbone(backbone: keras.Model) -> None:
    """Makes every weight of ``backbone`` non-trainable (recompile the model afterwards)."""
    backbone.trainable = False


def unfreeze_top_layers(backbone: keras.Model, count: int | str, *,
                        train_batch_norm: bool = False) -> int:
    """Makes the top ``count`` layers *that have weights* of ``backbone`` trainable.

    Layers without weights (activations, pooling, padding...) are not counted, nor are
    BatchNormalization layers: ``count=30`` means the top 30 convolution/dense/... layers.
    BatchNormalization layers inside that top span are unfrozen only with
    ``train_batch_norm`` (the engine passes True when training from scratch); otherwise
    their statistics stay as pretrained (unfreezing them damages pretrained features).
    Everything below the span stays frozen. Recompile the model afterwards.

    Args:
        backbone: The backbone of a ``Classifier``.
        count: Number of weighted layers to unfreeze, or ``"all"``.
        train_batch_norm: Also unfreeze the BatchNormalization layers in the span.

    Returns:
        The number of weighted non-BatchNorm layers unfrozen.
    """
    if count != "all" and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ValueError(
            "`training.fine_tune_layers` must be an integer >= 0 or \"all\". "
            f"Received: training.fine_tune_layers={count!r}"
        )
    backbone.trainable = True
    for layer in backbone.layers:
        layer.trainable = False
    weighted = [layer for layer in backbone.layers if layer.weights]
    countable = [layer for layer in weighted if not _is_batch_norm(layer)]
    chosen = countable if count == "all" else (countable[-count:] if count else [])
    if not chosen:
        return 0
    lowest = weighted.index(chosen[0])
    for layer in weighted[lowest:]:
        layer.trainable = train_batch_norm or not _is_batch_norm(layer)
    return len(chosen)


def _is_batch_norm(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, layers.BatchNormalization)

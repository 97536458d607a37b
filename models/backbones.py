"""Building backbones: every supported feature extractor, made from its registry entry.

Each keras.applications family has its own input scaling, default size, size limits and
ImageNet weights file; ``BackboneSpec`` records them so that the rest of the app never
special-cases a family. Facts were read from keras/src/applications/*.py (Keras 3.15.1)
and measured by building each backbone (see models/weights.py for the weights files).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict

import keras

from models import weights as weights_lib
from models.registry import BackboneSpec, backbone_specs, check_image_size, get_spec
from models.small_cnn import small_cnn

# Families whose built-in scaling equals their preprocess mode: switched off, so every
# backbone built here takes input already scaled by ``add_preprocessing(x, spec.preprocess)``.
_NO_BUILTIN_PREPROCESSING = {
    "MobileNetV3Small", "MobileNetV3Large",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
    "ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge",
}


def backbone_catalog() -> list[dict]:
    """Every backbone as a plain dict for the GUI.

    Keys: name, family, default_size, min_size, preprocess, params_millions,
    imagenet_top1, has_imagenet, imagenet_cached (the ImageNet file for the default size
    is in the Keras cache, so it can be used offline), imagenet_cached_sizes (the file
    sizes, as ``spec.imagenet_file_size`` gives them, that are cached).
    """
    catalog = []
    for spec in backbone_specs():
        entry = asdict(spec)
        entry["imagenet_sizes"] = list(spec.imagenet_sizes)
        entry["imagenet_cached"] = spec.has_imagenet and weights_lib.imagenet_weights_cached(
            spec.name, spec.default_size)
        # The file sizes whose ImageNet file is cached (``spec.imagenet_file_size`` maps an
        # input size to its file), so the window knows before Start whether one downloads.
        file_sizes = sorted({spec.imagenet_file_size(size) for size in (*spec.imagenet_sizes, 224)})
        entry["imagenet_cached_sizes"] = [
            size for size in file_sizes
            if spec.has_imagenet and weights_lib.imagenet_weights_cached(spec.name, size)]
        catalog.append(entry)
    return catalog


def build_backbone(name: str, image_size: int, weights: str,
                   batch_norm_momentum: float | None = None) -> keras.Model:
    """Builds backbone ``name`` without its top: (size, size, 3) -> feature map.

    The model takes input already scaled by ``models.preprocess.add_preprocessing`` with
    ``get_spec(name).preprocess``.

    Args:
        weights: "imagenet", "none" (random initialization; never touches the network)
            or the path of a .h5, .weights.h5 or .keras file (see models/weights.py).
        batch_norm_momentum: when given, the momentum of every BatchNormalization layer.

    Raises:
        ValueError: unknown backbone, a size it cannot take, or an unusable weights file.
        WeightsUnavailableError: ImageNet weights are not cached and cannot be downloaded.
    """
    spec = get_spec(name)
    check_image_size(name, image_size, weights)
    if weights == "imagenet":
        weights_lib.ensure_imagenet_weights(name, image_size)
        backbone = _construct(spec, image_size, "imagenet")
    elif weights == "none":
        backbone = _construct(spec, image_size, None)
    elif weights_lib.is_weights_path(weights):
        backbone = _construct(spec, image_size, None)
        weights_lib.load_weights_file(backbone, weights, backbone_name=name)
    else:
        raise ValueError(
            f"`model.weights` must be \"imagenet\", \"none\", or the path of a weights file ending "
            f"in .h5, .weights.h5 or .keras. Received: model.weights={weights!r}"
        )
    if batch_norm_momentum is not None:
        set_batch_norm_momentum(backbone, batch_norm_momentum)
    return backbone


def set_batch_norm_momentum(model: keras.Model, momentum: float) -> int:
    """Sets the momentum of every BatchNormalization layer (nested ones too); returns how many."""
    count = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            count += 1
    return count


def _construct(spec: BackboneSpec, image_size: int, weights: str | None) -> keras.Model:
    if spec.name == "SmallCNN":
        return small_cnn(image_size)
    kwargs = {"include_top": False, "weights": weights, "input_shape": (image_size, image_size, 3),
              "pooling": None}
    if spec.name in _NO_BUILTIN_PREPROCESSING:
        kwargs["include_preprocessing"] = False
    with warnings.catch_warnings():
        # MobileNet at a size without its own file: Keras warns, then loads the 224 file,
        # as imagenet_sizes documents.
        warnings.filterwarnings("ignore", message=".*Weights for input shape.*")
        try:
            return getattr(keras.applications, spec.name)(**kwargs)
        except Exception as error:
            # ensure_imagenet_weights put the file in the cache, so a download here means
            # Keras rejected it (hash mismatch), deleted it and tried again.
            if "URL fetch failure" in str(error):
                raise weights_lib.unavailable_error(spec.name, image_size, error,
                                                    cached_but_rejected=True) from error
            raise


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if isinstance(layer, keras.Model):
            layers += _all_layers(layer)
    return layers

"""The ImageNet input scalings of keras.applications, built from Keras's own layers.

Each pretrained backbone was trained on inputs scaled one particular way; its module's
``preprocess_input`` says which. Doing that scaling inside the model (instead of in the
data pipeline) means a saved ``.keras`` classifier takes plain 0-255 RGB images, so
prediction cannot forget it. ``add_preprocessing`` builds it from Keras built-in layers
only, so plain Keras opens the file with ``safe_mode=True`` and no code of this app
(a custom layer would fail there with "Could not locate class ..."). None of these layers
has weights: nothing can make them trainable, and the file's weights are the backbone's
and the head's alone.

``Preprocess``, the custom layer that did the same before, stays registered only so that
models saved by earlier versions of this app still load through ``models.safe_load``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

PREPROCESS_MODES = ("tf", "caffe", "torch", "none")
# Every preprocessing layer of a classifier is named with this prefix.
LAYER_PREFIX = "preprocess"

# The constants of keras.applications.imagenet_utils.preprocess_input.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
_TORCH_STD_RGB = (0.229, 0.224, 0.225)

_DESCRIPTIONS = {
    "tf": "x / 127.5 - 1, to [-1, 1] (Rescaling)",
    "caffe": ("RGB to BGR, then minus the ImageNet mean pixel (B, G, R) = "
              f"{_CAFFE_MEAN_BGR} (Cropping2D x3, Concatenate, Rescaling)"),
    "torch": (f"x / 255, then per channel minus the ImageNet mean (R, G, B) = {_TORCH_MEAN_RGB}, "
              f"over its std {_TORCH_STD_RGB} (Rescaling)"),
    "none": "none in front of the backbone (it scales its input itself)",
}


def add_preprocessing(inputs, mode: str):
    """Scales float RGB images in [0, 255] (channels last) as a backbone expects.

    Modes, as in ``keras.applications.imagenet_utils.preprocess_input``, with the same
    numbers to float32 rounding:

    - ``"tf"``: to [-1, 1] (MobileNet, ResNetV2, Inception, Xception, NASNet, ...).
    - ``"caffe"``: RGB to BGR, then minus the ImageNet mean pixel (ResNet, VGG).
    - ``"torch"``: to [0, 1], then per channel minus ImageNet mean, over its std
      (DenseNet; also the built-in scaling of ConvNeXt and EfficientNetV2B0-B3).
    - ``"none"``: unchanged (EfficientNet scales inside the backbone).

    Args:
        inputs: a Keras tensor of shape ``(batch, height, width, 3)``.
        mode: one of ``PREPROCESS_MODES``.

    Returns:
        The scaled tensor (``inputs`` itself for ``"none"``).

    Raises:
        ValueError: an unknown mode.
    """
    _check_mode(mode)
    if mode == "tf":
        return layers.Rescaling(1 / 127.5, offset=-1.0, name=f"{LAYER_PREFIX}_scale")(inputs)
    if mode == "torch":
        # (x / 255 - mean) / std as one multiply-add per channel. Not Rescaling followed by
        # Normalization(mean, variance), as keras.applications.EfficientNetV2 does it: that
        # layer keeps fixed values as tensors, which Keras's ONNX export turns into inputs
        # the exported graph then requires.
        scale = tuple(1 / (255 * std) for std in _TORCH_STD_RGB)
        offset = tuple(-mean / std for mean, std in zip(_TORCH_MEAN_RGB, _TORCH_STD_RGB))
        return layers.Rescaling(scale, offset=offset, name=f"{LAYER_PREFIX}_normalize")(inputs)
    if mode == "caffe":
        x = _rgb_to_bgr(inputs)
        return layers.Rescaling(1.0, offset=tuple(-mean for mean in _CAFFE_MEAN_BGR),
                                name=f"{LAYER_PREFIX}_minus_mean")(x)
    return inputs


def describe_preprocessing(mode: str) -> str:
    """One line saying what ``add_preprocessing(inputs, mode)`` does, for people."""
    _check_mode(mode)
    return _DESCRIPTIONS[mode]


def _rgb_to_bgr(inputs):
    # Keras has no channel-reversal layer. A 1x1 convolution with a permutation kernel
    # would need weights kept frozen through fine-tuning, and TF32 matmuls on GPUs round
    # its input; slicing is exact everywhere and has nothing to train. Cropping2D with
    # data_format="channels_first" crops the last two axes, here width and colour, so
    # cropping the colour axis to one entry picks that channel.
    channels = []
    for channel, name in ((2, "blue"), (1, "green"), (0, "red")):
        keep_one = ((0, 0), (channel, 2 - channel))
        channels.append(layers.Cropping2D(keep_one, data_format="channels_first",
                                          name=f"{LAYER_PREFIX}_{name}")(inputs))
    return layers.Concatenate(axis=-1, name=f"{LAYER_PREFIX}_bgr")(channels)


def _check_mode(mode: str) -> None:
    if mode not in PREPROCESS_MODES:
        raise ValueError(
            f"`mode` must be one of {', '.join(PREPROCESS_MODES)}. Received: mode={mode!r}"
        )


@keras.saving.register_keras_serializable(package="finetune_studio")
class Preprocess(keras.layers.Layer):
    """Legacy: the custom layer that scaled the input of classifiers saved before
    ``add_preprocessing`` existed. New models never contain it; it stays registered (and
    on ``models.safe_load``'s allow-list) so those files still load in this app.

    Computes what ``add_preprocessing`` does for the same ``mode``.
    """

    def __init__(self, mode: str = "tf", **kwargs):
        super().__init__(**kwargs)
        _check_mode(mode)
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = np.array(_TORCH_MEAN_RGB, dtype="float32")
            std = np.array(_TORCH_STD_RGB, dtype="float32")
            return (x / 255.0 - ops.cast(mean, x.dtype)) / ops.cast(std, x.dtype)
        if self.mode == "caffe":
            mean = np.array(_CAFFE_MEAN_BGR, dtype="float32")
            return ops.flip(x, axis=-1) - ops.cast(mean, x.dtype)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config["mode"] = self.mode
        return config

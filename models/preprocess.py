"""The ImageNet input scalings of keras.applications, as one serializable layer.

Each pretrained backbone was trained on inputs scaled one particular way; its module's
``preprocess_input`` says which. Doing that scaling inside the model (instead of in the
data pipeline) means a saved ``.keras`` classifier takes plain 0-255 RGB images, so
prediction cannot forget it. A registered layer (not a ``Lambda``) keeps the model
loadable with ``safe_mode=True``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

PREPROCESS_MODES = ("tf", "caffe", "torch", "none")

# The constants of keras.applications.imagenet_utils.preprocess_input.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
_TORCH_STD_RGB = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="finetune_studio")
class Preprocess(keras.layers.Layer):
    """Scales float RGB images in [0, 255] as a backbone expects (channels last).

    Modes, as in ``keras.applications.imagenet_utils.preprocess_input``:

    - ``"tf"``: to [-1, 1] (MobileNet, ResNetV2, Inception, Xception, NASNet, ...).
    - ``"caffe"``: RGB to BGR, then minus the ImageNet mean pixel (ResNet, VGG).
    - ``"torch"``: to [0, 1], then per channel minus ImageNet mean, over its std
      (DenseNet; also the built-in scaling of ConvNeXt and EfficientNetV2B0-B3).
    - ``"none"``: unchanged (EfficientNet scales inside the backbone).
    """

    def __init__(self, mode: str = "tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESS_MODES:
            raise ValueError(
                f"`mode` must be one of {', '.join(PREPROCESS_MODES)}. Received: mode={mode!r}"
            )
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

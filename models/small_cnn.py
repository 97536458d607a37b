"""SmallCNN: a small convolutional backbone of our own, trained from scratch.

For tests and quick runs on a CPU: about 130k parameters, four Conv-BN-ReLU blocks,
three of them halving the resolution. BatchNormalization momentum is 0.9 because the
Keras default (0.99) makes short from-scratch runs fail: the moving statistics used at
validation time lag far behind the batch statistics (docs/facts.md#batchnorm-momentum).
"""

from __future__ import annotations

import keras
from keras import layers

# (filters, strides) of each block.
_BLOCKS = ((32, 2), (64, 2), (64, 1), (128, 2))


def small_cnn(image_size: int, *, name: str = "small_cnn") -> keras.Model:
    """A (size, size, 3) -> (size/8, size/8, 128) feature extractor, randomly initialized."""
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_input")
    x = inputs
    for index, (filters, strides) in enumerate(_BLOCKS, start=1):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                          kernel_initializer="he_normal", name=f"block{index}_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"block{index}_bn")(x)
        x = layers.ReLU(name=f"block{index}_relu")(x)
    return keras.Model(inputs, x, name=name)

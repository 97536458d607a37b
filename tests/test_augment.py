"""Augmentation: every option does something, keeps the batch valid, and is seeded."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.helpers import make_tiny_dataset
from training.config import AugmentationConfig
from training.data.augment import active_augmentations, build_augmenter, preview_augmentation, with_only
from training.data.images import load_images

STRENGTHS = {
    "horizontal_flip": True, "vertical_flip": True, "rotation": 0.1, "zoom": 0.2,
    "translation": 0.2, "random_crop": 0.3, "brightness": 0.3, "contrast": 0.5,
    "saturation": 0.8, "hue": 0.2, "gaussian_noise": 0.05, "cutout": 0.3,
    "randaugment": 0.3, "mixup": 0.4, "cutmix": 0.8,
}
MIXING = {"mixup", "cutmix"}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = make_tiny_dataset(tmp_path_factory.mktemp("aug"), classes=3, per_class=3, size=32)
    files = sorted(root.glob("*/*.png"))
    images = load_images(files, 32).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[np.arange(len(files)) // 3]
    return images, labels


def test_every_config_field_is_covered():
    fields = {f.name for f in dataclasses.fields(AugmentationConfig)}
    assert fields == set(STRENGTHS)


@pytest.mark.parametrize("name", sorted(STRENGTHS))
def test_each_augmentation_alone_changes_the_batch_and_keeps_it_valid(batch, name):
    import tensorflow as tf

    images, labels = batch
    augmenter = build_augmenter(with_only(name, STRENGTHS[name]), image_size=32, seed=1)
    assert augmenter is not None
    # Inside tf.data, as in training.
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(len(images)).map(augmenter)
    (out_images, out_labels), = [(x.numpy(), y.numpy()) for x, y in dataset]

    assert out_images.shape == images.shape and out_images.dtype == np.float32
    assert out_images.min() >= 0.0 and out_images.max() <= 255.0
    assert np.abs(out_images - images).mean() > 1.0
    np.testing.assert_allclose(out_labels.sum(axis=1), 1.0, atol=1e-5)
    if name in MIXING:
        assert not np.allclose(out_labels, labels)
    else:
        np.testing.assert_array_equal(out_labels, labels)


def test_all_off_means_no_augmenter():
    off = with_only("rotation", 0.0)
    assert active_augmentations(off) == []
    assert build_augmenter(off, image_size=32, seed=0) is None
    assert active_augmentations(AugmentationConfig()) == ["horizontal_flip", "rotation", "zoom", "translation"]


def test_augmentation_is_seeded(batch):
    images = batch[0].astype(np.uint8)
    config = AugmentationConfig(rotation=0.2, brightness=0.3, mixup=0.5)
    first = preview_augmentation(config, images, seed=4)
    again = preview_augmentation(config, images, seed=4)
    other = preview_augmentation(config, images, seed=5)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_preview_is_uint8_and_unchanged_when_all_off(batch):
    images = batch[0].astype(np.uint8)
    out = preview_augmentation(AugmentationConfig(horizontal_flip=False, rotation=0, zoom=0,
                                                  translation=0), images)
    np.testing.assert_array_equal(out, images)
    assert out is not images
    out = preview_augmentation(with_only("contrast", 0.5), images)
    assert out.dtype == np.uint8 and out.shape == images.shape
    with pytest.raises(ValueError, match="shape"):
        preview_augmentation(AugmentationConfig(), images[0])


def test_colour_augmentations_leave_grey_pixels_grey():
    """Hue and saturation act on colour only: on 0-255 images a grey stays grey (this
    catches a wrong value range, which would shift or clip the greys)."""
    grey = np.full((4, 16, 16, 3), 90, np.uint8)
    colour = np.zeros((4, 16, 16, 3), np.uint8)
    colour[...] = (200, 100, 100)  # half saturated: saturation can go either way
    for name in ("hue", "saturation"):
        config = with_only(name, 0.5)
        assert np.abs(preview_augmentation(config, grey, seed=2).astype(int) - 90).max() <= 1
        assert np.abs(preview_augmentation(config, colour, seed=2).astype(int) - colour).max() > 20


def test_strength_scales_the_effect(batch):
    images = batch[0].astype(np.uint8)
    weak = preview_augmentation(with_only("brightness", 0.05), images, seed=3).astype(float)
    strong = preview_augmentation(with_only("brightness", 0.6), images, seed=3).astype(float)
    assert np.abs(weak - images).mean() < np.abs(strong - images).mean()
    assert np.abs(weak - images).max() <= 0.05 * 255 + 1

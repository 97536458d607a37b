"""The training input pipeline: parallel augmentation that still repeats a run exactly, and
streaming beyond the in-memory cache."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import make_tiny_dataset, write_truncated_jpeg
from training.config import AugmentationConfig, DataConfig
from training.data import pipeline
from training.data.augment import build_augmenter
from training.data.pipeline import EpochOrder, make_dataset, prepare_data

# Geometric, colour and label-mixing layers, and RandAugment (whose sub-layers draw too).
AUGMENTATION = AugmentationConfig(horizontal_flip=True, rotation=0.1, zoom=0.1, translation=0.1,
                                  brightness=0.2, randaugment=0.3, mixup=0.3)
SIZE = 32


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = make_tiny_dataset(tmp_path_factory.mktemp("input"), classes=3, per_class=8, size=SIZE)
    files = sorted(str(p) for p in root.glob("*/*.png"))
    return files, [i // 8 for i in range(len(files))]


def epoch_batches(files, labels, *, seed=7, epochs=(0, 1), parallel=True, shuffle=True,
                  failures=None) -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """The batches of the given epochs of a fresh dataset (as a run or a resumed run sees them)."""
    augmenter = build_augmenter(AUGMENTATION, image_size=SIZE, seed=seed)
    order = EpochOrder(len(files), seed, shuffle)
    dataset = make_dataset(files, labels, 3, SIZE, 5, shuffle=shuffle, seed=seed, augmenter=augmenter,
                           order=order, failures=failures, parallel_augmentation=parallel)
    batches = {}
    for epoch in epochs:
        order.set_epoch(epoch)
        batches[epoch] = [(x.numpy(), y.numpy()) for x, y in dataset]
    return batches


def assert_same(first, second) -> None:
    assert len(first) == len(second)
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_parallel_augmentation_gives_the_sequential_batches(images):
    files, labels = images
    parallel = epoch_batches(files, labels, parallel=True)
    sequential = epoch_batches(files, labels, parallel=False)

    for epoch in (0, 1):
        assert_same(parallel[epoch], sequential[epoch])
    assert sum(len(x) for x, _ in parallel[0]) == len(files)
    mixed = np.concatenate([y for _, y in parallel[0]])
    assert not np.isin(mixed, (0.0, 1.0)).all()  # MixUp ran: its draws are keyed too


def test_augmentation_is_keyed_by_epoch_and_batch(images):
    """Without shuffling, epoch 1 holds epoch 0's images: only the augmentation may differ.
    Two batches of the very same images must not be augmented alike either."""
    files, labels = images
    same = [files[0]] * 5 + [files[0]] * 5
    batches = epoch_batches(same, [0] * 10, shuffle=False)
    unaugmented = make_dataset(same, [0] * 10, 3, SIZE, 5, shuffle=False, seed=7)
    (plain, _), _ = [(x.numpy(), y.numpy()) for x, y in unaugmented]

    (first, _), (second, _) = batches[0]
    assert not np.array_equal(first, plain)
    assert not np.array_equal(first, second)
    assert not np.array_equal(batches[1][0][0], first)


def test_a_seed_repeats_a_run_and_a_resumed_epoch_repeats_the_uninterrupted_one(images):
    files, labels = images
    run = epoch_batches(files, labels, seed=7, epochs=(0, 1, 2))
    again = epoch_batches(files, labels, seed=7, epochs=(0, 1, 2))
    resumed = epoch_batches(files, labels, seed=7, epochs=(2,))  # a fresh process at epoch 2
    other = epoch_batches(files, labels, seed=8, epochs=(0,))

    for epoch in (0, 1, 2):
        assert_same(again[epoch], run[epoch])
    assert_same(resumed[2], run[2])
    assert not np.array_equal(other[0][0][0], run[0][0][0])


def test_a_broken_file_is_dropped_alone_with_parallel_augmentation(images, tmp_path):
    files, labels = images
    bad = str(write_truncated_jpeg(tmp_path / "truncated.jpg"))
    failures: list = []
    batches = epoch_batches(files[:3] + [bad] + files[3:], labels[:3] + [0] + labels[3:],
                            failures=failures)

    assert failures == [bad]
    for epoch in (0, 1):
        assert sum(len(x) for x, _ in batches[epoch]) == len(files)


def test_beyond_the_cache_limit_every_pass_streams_every_image(tmp_path, monkeypatch):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=10, size=SIZE)
    files = sorted(str(p) for p in root.glob("*/*.png"))
    decoded: list[str] = []
    real_load_image = pipeline.load_image

    def counting_load_image(path, size):
        decoded.append(path)
        return real_load_image(path, size)

    monkeypatch.setattr(pipeline, "load_image", counting_load_image)
    image_bytes = SIZE * SIZE * 3
    dataset = make_dataset(files, [i // 10 for i in range(20)], 2, SIZE, 6, shuffle=True, seed=1,
                           cache_bytes=7 * image_bytes + image_bytes // 2)

    for epoch in range(3):
        decoded.clear()
        seen = sum(len(x) for x, _ in dataset)
        assert seen == 20
        # The first pass decodes all; later ones only what did not fit: 7 images stay.
        assert len(decoded) == (20 if epoch == 0 else 13)


def test_prepare_data_takes_a_cache_limit_and_says_when_images_do_not_fit(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=10, size=SIZE)
    config = DataConfig(dir=str(root), validation_split=0.2, batch_size=8)

    small = prepare_data(config, SIZE, seed=1, cache_bytes=20_000)  # 6 images of 32 px
    roomy = prepare_data(config, SIZE, seed=1)

    assert any("would need more than 0.02 MB" in w for w in small.warnings), small.warnings
    assert not any("would need more than" in w for w in roomy.warnings)
    for _ in range(2):
        assert sum(len(x) for x, _ in small.train) == small.train_count

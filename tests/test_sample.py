"""The built-in shapes sample and the shared test data helpers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.helpers import make_tiny_dataset
from training.data import sample
from training.data.errors import DataError
from training.data.images import load_images
from training.data.scan import scan_folder


def _pixels(root, pattern="*/*.png"):
    return np.stack([np.asarray(Image.open(p)) for p in sorted(root.glob(pattern))])


def test_shapes_dataset_layout_and_determinism(tmp_path):
    first = sample.make_shapes_dataset(tmp_path / "a", classes=4, per_class=5, size=40, seed=3)
    again = sample.make_shapes_dataset(tmp_path / "b", classes=4, per_class=5, size=40, seed=3)
    other = sample.make_shapes_dataset(tmp_path / "c", classes=4, per_class=5, size=40, seed=4)

    assert sorted(p.name for p in first.iterdir()) == sorted(sample.SHAPES[:4])
    assert len(list(first.glob("square/*.png"))) == 5
    assert Image.open(next(first.glob("star/*.png"))).size == (40, 40)
    np.testing.assert_array_equal(_pixels(first), _pixels(again))
    assert not np.array_equal(_pixels(first), _pixels(other))
    # Not a constant picture: a shape on a background, and every image different.
    images = _pixels(first)
    assert images.std(axis=(1, 2, 3)).min() > 10
    assert len({image.tobytes() for image in images}) == len(images)


def test_shapes_dataset_formats_and_bad_arguments(tmp_path):
    root = sample.make_shapes_dataset(tmp_path / "jpg", classes=2, per_class=2, size=16, fmt="jpg")
    assert len(list(root.glob("*/*.jpg"))) == 4
    with pytest.raises(ValueError, match="classes"):
        sample.make_shapes_dataset(tmp_path / "x", classes=6)
    with pytest.raises(ValueError, match="fmt"):
        sample.make_shapes_dataset(tmp_path / "x", fmt="heic")


def test_easy_tiny_dataset_is_separable_by_a_simple_model(tmp_path):
    """The tiny test set must be clearly learnable: even a linear model on 8x8 thumbnails
    separates its classes on held-out images."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    root = make_tiny_dataset(tmp_path)
    scan = scan_folder(root)
    assert scan.counts() == {"circle": 30, "square": 30, "triangle": 30}
    features = load_images(scan.files, 8).reshape(len(scan.files), -1) / 255.0
    scores = cross_val_score(LogisticRegression(max_iter=2000), features, scan.labels, cv=3)
    assert scores.mean() >= 0.9


def test_builtin_sample_is_generated_once_into_place(tmp_path, monkeypatch):
    monkeypatch.setenv("FINETUNE_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sample, "BUILTIN_PER_CLASS", 3)  # keep the test fast

    root = sample.resolve_data_dir("builtin:shapes")

    assert root == tmp_path / "home" / "samples" / f"shapes-v{sample.BUILTIN_VERSION}"
    scan = scan_folder(root)
    assert scan.classes == sorted(sample.SHAPES)
    assert set(scan.counts().values()) == {3}
    assert not scan.ignored and not scan.skipped
    # Nothing half-built is left beside it, and a second call reuses it as it is.
    assert [p.name for p in root.parent.iterdir()] == [f"shapes-v{sample.BUILTIN_VERSION}"]
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    assert sample.ensure_builtin_sample() == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == stamp


def test_resolve_data_dir_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert sample.resolve_data_dir("~/pictures") == tmp_path / "pictures"
    assert sample.resolve_data_dir(str(tmp_path / "x")) == tmp_path / "x"
    with pytest.raises(DataError, match="builtin:shapes"):
        sample.resolve_data_dir("builtin:flowers")


def test_sample_home_default(monkeypatch, tmp_path):
    monkeypatch.delenv("FINETUNE_STUDIO_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert sample.sample_home() == tmp_path / ".cache" / "finetune-studio"

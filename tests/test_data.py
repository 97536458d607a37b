"""Decoding images, scanning class folders, splitting, and the tf.data pipeline."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from tests.helpers import make_tiny_dataset, write_broken_files, write_truncated_jpeg
from training.config import AugmentationConfig, DataConfig
from training.data.errors import DataError
from training.data.images import ImageLoadError, load_image, load_images, probe_image
from training.data.pipeline import make_dataset, prepare_data
from training.data.scan import scan_folder
from training.data.split import split_stratified


def _save(path, image: Image.Image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def _solid(colour=(200, 30, 30), size=(12, 12)):
    return Image.new("RGB", size, colour)


# -- load_image -------------------------------------------------------------------------
def test_load_image_applies_exif_orientation(tmp_path):
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = 255  # left half white
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # stored rotated: display turned 90 degrees clockwise
    path = _save(tmp_path / "photo.jpg", image, exif=exif.tobytes(), quality=95)

    upright = load_image(path)

    assert upright.shape == (20, 10, 3)
    assert upright[2, 5].min() > 200 and upright[-3, 5].max() < 50  # the white half is on top


def test_load_image_scales_16_bit_grayscale_instead_of_clipping(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = _save(tmp_path / "depth.png", Image.fromarray(ramp))

    image = load_image(path)

    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 255
    assert abs(int(image[32, 0, 0]) - 128) <= 2      # mid-grey, not white
    assert np.all(image[..., 0] == image[..., 2])     # still grey


def test_load_image_composites_transparency_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half fully transparent red
    path = _save(tmp_path / "rgba.png", Image.fromarray(rgba, "RGBA"))

    image = load_image(path)

    assert image[0, 0].tolist() == [255, 0, 0]
    assert image[7, 7].tolist() == [255, 255, 255]


@pytest.mark.parametrize("name", ["palette.png", "palette.gif"])
def test_load_image_palette_with_transparency(tmp_path, name):
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    for y in range(4):
        for x in range(8):
            palette.putpixel((x, y), 1)
    path = _save(tmp_path / name, palette, transparency=0)

    image = load_image(path)

    assert image[0, 0].tolist() == [0, 0, 255]
    assert image[7, 7].tolist() == [255, 255, 255]  # transparent black shows as white


def test_load_image_cmyk_jpeg(tmp_path):
    path = _save(tmp_path / "print.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)), quality=95)
    image = load_image(path, 8)
    assert image.shape == (8, 8, 3)
    assert image[4, 4, 0] > 230 and image[4, 4, 1:].max() < 25  # red


def test_load_image_animated_gif_first_frame_and_resize(tmp_path):
    frames = [_solid((255, 0, 0), (30, 20)), _solid((0, 0, 255), (30, 20))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])

    image = load_image(path, 16)

    assert image.shape == (16, 16, 3) and image.dtype == np.uint8  # squashed, not cropped
    assert image[8, 8].tolist() == [255, 0, 0]


def test_load_image_large_jpeg_is_decoded_small_and_correctly(tmp_path):
    big = np.zeros((1200, 1600, 3), np.uint8)
    big[:, :800] = (0, 200, 0)
    big[:, 800:] = (0, 0, 200)
    path = _save(tmp_path / "big.jpg", Image.fromarray(big), quality=90)

    image = load_image(path, 32)

    assert image.shape == (32, 32, 3)
    assert image[16, 4, 1] > 180 and image[16, 28, 2] > 180


def test_oversized_images_are_refused_not_decoded(tmp_path, monkeypatch):
    path = _save(tmp_path / "huge.png", _solid(size=(100, 100)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(path, 32)
    assert "too large" in probe_image(path)


def test_broken_files_raise_image_load_error_with_reason(tmp_path):
    broken = write_broken_files(tmp_path)
    reasons = {}
    for kind, path in broken.items():
        with pytest.raises(ImageLoadError) as info:
            load_image(path, 16)
        assert str(path) in str(info.value)
        reasons[kind] = info.value.reason
    assert "empty" in reasons["zero_byte"]
    assert "not an image" in reasons["text_as_png"]
    assert "truncated" in reasons["truncated_jpeg"]
    # The header check is cheap: it catches the first two but not the truncated JPEG.
    assert probe_image(broken["zero_byte"]) and probe_image(broken["text_as_png"])
    assert probe_image(broken["truncated_jpeg"]) is None
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_load_images_stacks_and_stops_at_the_first_bad_file(tmp_path):
    good = [_save(tmp_path / f"{i}.png", _solid(size=(10 + i, 7))) for i in range(3)]
    assert load_images(good, 9).shape == (3, 9, 9, 3)
    assert load_images([], 9).shape == (0, 9, 9, 3)
    with pytest.raises(ImageLoadError):
        load_images(good + [write_truncated_jpeg(tmp_path / "t.jpg")], 9)


# -- scanning ---------------------------------------------------------------------------
def _messy_tree(root):
    """Two usable classes with every kind of clutter a real folder has."""
    _save(root / "cats" / "a.jpg", _solid())
    _save(root / "cats" / "B.JPEG", _solid())                       # upper case extension
    _save(root / "cats" / "indoor" / "deep" / "c.png", _solid())    # nested
    _save(root / "cats" / "d.bmp", _solid())
    _save(root / "cats" / "e.gif", _solid())
    _save(root / "dogs" / "été chien 1.png", _solid())              # non-ASCII and spaces
    _save(root / "dogs" / "f.webp", _solid())
    _save(root / "dogs" / "g.tif", _solid())
    (root / "dogs" / "._f.webp").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble
    (root / "dogs" / ".DS_Store").write_bytes(b"\x00")
    (root / "dogs" / "Thumbs.db").write_bytes(b"\x00")
    _save(root / "dogs" / ".ipynb_checkpoints" / "h.png", _solid())
    _save(root / "__MACOSX" / "dogs" / "i.png", _solid())
    _save(root / ".hidden_class" / "j.png", _solid())
    _save(root / "loose.jpg", _solid())
    (root / "dogs" / "notes.txt").write_text("labels", encoding="utf-8")
    (root / "empty_class").mkdir()
    return write_broken_files(root / "cats")


def test_scan_finds_classes_and_images_and_explains_the_rest(tmp_path):
    broken = _messy_tree(tmp_path)

    scan = scan_folder(tmp_path)

    assert scan.classes == ["cats", "dogs"]
    assert scan.counts() == {"cats": 6, "dogs": 3}  # 5 images + the truncated JPEG; 3 dogs
    names = {os.path.basename(f): label for f, label in zip(scan.files, scan.labels)}
    assert names["c.png"] == 0 and names["B.JPEG"] == 0 and names["été chien 1.png"] == 1
    assert all(os.path.isabs(f) for f in scan.files)
    skipped = {os.path.basename(p): reason for p, reason in scan.skipped}
    assert set(skipped) == {"empty.jpg", "notes.png", "notes.txt"}
    assert "empty" in skipped["empty.jpg"] and "unsupported" in skipped["notes.txt"]
    assert str(broken["truncated_jpeg"]) in scan.files  # the header is fine; decoding fails later
    ignored = {os.path.basename(p): reason for p, reason in scan.ignored}
    assert set(ignored) == {"._f.webp", ".DS_Store", "Thumbs.db", ".ipynb_checkpoints",
                            "__MACOSX", ".hidden_class", "loose.jpg"}
    assert "AppleDouble" in ignored["._f.webp"] and "class subfolder" in ignored["loose.jpg"]
    assert any("empty_class" in warning for warning in scan.warnings)


def test_scan_without_verify_does_not_open_files(tmp_path):
    _messy_tree(tmp_path)
    scan = scan_folder(tmp_path, verify=False)
    assert any(f.endswith("notes.png") for f in scan.files)
    assert [os.path.basename(p) for p, _ in scan.skipped] == ["notes.txt"]


def test_scan_errors_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_folder(tmp_path / "nope")
    _save(tmp_path / "only" / "a.png", _solid())
    _save(tmp_path / "b.png", _solid())
    with pytest.raises(DataError) as info:
        scan_folder(tmp_path)
    message = str(info.value)
    assert "Found 1 class folder(s)" in message and "at least 2" in message
    assert "own subfolder" in message and "1 image(s) lie directly in the folder" in message


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_scan_does_not_follow_symlink_loops(tmp_path):
    make_tiny_dataset(tmp_path, classes=2, per_class=2, size=16)
    root = tmp_path / "data"
    os.symlink(root, root / "circle" / "loop")
    started = time.monotonic()
    scan = scan_folder(root)
    assert time.monotonic() - started < 5
    assert scan.counts() == {"circle": 2, "square": 2}
    assert any("symbolic link" in reason for _, reason in scan.ignored)


# -- splitting --------------------------------------------------------------------------
def test_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat([0, 1, 2], [50, 30, 20])

    train, validation = split_stratified(labels, 0.2, seed=7)

    assert sorted(np.concatenate([train, validation]).tolist()) == list(range(100))
    assert np.bincount(labels[validation]).tolist() == [10, 6, 4]
    again = split_stratified(labels, 0.2, seed=7)
    other = split_stratified(labels, 0.2, seed=8)
    np.testing.assert_array_equal(validation, again[1])
    assert set(validation) != set(other[1])


def test_split_survives_tiny_classes():
    labels = np.array([0] * 5 + [1] * 2 + [2])  # class 2 has a single image

    train, validation = split_stratified(labels, 0.1, seed=0)

    assert 7 in train  # the single image trains
    assert set(labels[validation]) == {0, 1}  # at least one per splittable class
    assert set(labels[train]) == {0, 1, 2}
    assert len(train) + len(validation) == len(labels)
    train, validation = split_stratified(np.array([0, 1, 2]), 0.5, seed=0)
    assert len(validation) == 0 and sorted(train) == [0, 1, 2]


# -- the pipeline -----------------------------------------------------------------------
def test_truncated_file_is_dropped_alone_and_reported(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=4, size=16)
    (root / "square" / "square_000.png").rename(root / "square" / "carré 0.png")  # non-ASCII
    files = sorted(str(p) for p in root.glob("*/*.png"))
    labels = [0] * 4 + [1] * 4
    bad = str(write_truncated_jpeg(root / "circle" / "zz_truncated.jpg"))
    failures: list = []

    dataset = make_dataset(files[:4] + [bad] + files[4:], labels[:4] + [0] + labels[4:], 2, 16,
                           batch_size=16, shuffle=False, seed=0, failures=failures)
    batches = list(dataset)

    assert len(batches) == 1
    images, onehot = batches[0]
    assert images.shape == (8, 16, 16, 3) and images.dtype.name == "float32"
    np.testing.assert_array_equal(images.numpy(), load_images(files, 16).astype(np.float32))
    np.testing.assert_array_equal(onehot.numpy(), np.eye(2, dtype=np.float32)[labels])
    assert failures == [bad]
    list(dataset)  # cached: a second epoch neither decodes nor reports it again
    assert failures == [bad]


def test_prepare_data_builds_batches_counts_and_report(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=3, per_class=10, size=24)
    broken = write_broken_files(root / "square")
    config = DataConfig(dir=str(root), validation_split=0.2, batch_size=8, class_weight="balanced")
    (root / "square" / "extra").mkdir()  # unbalance the classes a little
    for i in range(4):
        shutil.copy(root / "square" / f"square_00{i}.png", root / "square" / "extra" / f"{i}.png")

    bundle = prepare_data(config, 20, seed=1)

    assert bundle.classes == ["circle", "square", "triangle"]
    assert bundle.validation_counts == {"circle": 2, "square": 3, "triangle": 2}
    assert bundle.train_count == 28 and bundle.steps_per_epoch == 4  # 10 + 15 + 10 - 7
    assert bundle.validation_steps == 1
    assert bundle.class_weight[1] < 1.0 < bundle.class_weight[0]
    seen = 0
    for images, labels in bundle.train:
        assert images.shape[1:] == (20, 20, 3) and labels.shape[1:] == (3,)
        assert 1.0 < float(images.numpy().max()) <= 255.0
        np.testing.assert_array_equal(labels.numpy().sum(axis=1), 1.0)
        seen += len(images)
    seen += sum(len(images) for images, _ in bundle.validation)
    # Only the truncated JPEG passed the scan and failed to decode; nothing else was lost.
    assert bundle.decode_failures == [str(broken["truncated_jpeg"])]
    assert seen == bundle.train_count + bundle.validation_count - 1
    report = bundle.report()
    assert report.train_counts == bundle.train_counts
    assert {os.path.basename(s["path"]) for s in report.skipped} == {"empty.jpg", "notes.png"}
    assert report.to_dict()["type"] == "data_report"


def test_prepare_data_with_a_validation_folder(tmp_path):
    train_root = make_tiny_dataset(tmp_path, classes=2, per_class=6, size=16, name="train")
    validation_root = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=16, seed=5, name="val")
    config = DataConfig(dir=str(train_root), validation_dir=str(validation_root), batch_size=4)

    bundle = prepare_data(config, 16, seed=0)

    assert bundle.train_counts == {"circle": 6, "square": 6}
    assert bundle.validation_counts == {"circle": 3, "square": 3}
    assert bundle.validation_scan is not None and bundle.class_weight is None
    other = make_tiny_dataset(tmp_path, classes=3, per_class=2, size=16, name="other")
    with pytest.raises(DataError, match="only in the validation folder: triangle"):
        prepare_data(DataConfig(dir=str(train_root), validation_dir=str(other)), 16, seed=0)


def test_prepare_data_refuses_when_nothing_is_left_for_validation(tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=1, size=16)
    with pytest.raises(DataError, match="No images are left for validation"):
        prepare_data(DataConfig(dir=str(root)), 16, seed=0)


def test_augmentation_touches_training_batches_only(tmp_path):
    from training.data.augment import build_augmenter

    root = make_tiny_dataset(tmp_path, classes=3, per_class=6, size=24)
    config = DataConfig(dir=str(root), batch_size=8)
    augmentation = AugmentationConfig(horizontal_flip=True, rotation=0.1, brightness=0.2)
    augmenter = build_augmenter(augmentation, image_size=24, seed=0)

    plain = prepare_data(config, 24, seed=3)
    augmented = prepare_data(config, 24, augmenter=augmenter, seed=3)

    for (a, la), (b, lb) in zip(plain.validation, augmented.validation, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(la.numpy(), lb.numpy())
    differs = []
    for (a, la), (b, lb) in zip(plain.train, augmented.train, strict=True):
        np.testing.assert_array_equal(la.numpy(), lb.numpy())  # same seeded order
        differs.append(not np.array_equal(a.numpy(), b.numpy()))
    assert all(differs)


def test_unreadable_files_are_skipped_with_the_reason(tmp_path, monkeypatch):
    # Tests run as root, for whom chmod 000 changes nothing: make open() refuse instead.
    import builtins

    root = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=16)
    locked = sorted((root / "circle").iterdir())[0]
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if str(file) == str(locked):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    result = scan_folder(root)
    assert str(locked) not in result.files
    assert dict(result.skipped)[str(locked)].startswith("permission denied")
    assert len(result.files) == 5


def test_content_that_does_not_match_the_extension_is_used_by_its_content(tmp_path):
    # A PNG saved as .jpg (common after renaming) decodes by its content, not its name.
    path = tmp_path / "really_a_png.jpg"
    Image.new("RGB", (20, 10), (10, 200, 30)).save(path, "PNG")
    image = load_image(path, 8)
    assert image.shape == (8, 8, 3)
    np.testing.assert_array_equal(image[4, 4], [10, 200, 30])

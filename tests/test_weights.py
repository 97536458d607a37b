"""ImageNet weights offline, the Keras cache, and weights files (no network, ever).

Every test gets an empty Keras cache under ``tmp_path`` and a network that fails the way
an offline machine does (docs/facts.md#keras-offline: ``URL fetch failure ... Name or service not
known``), so a test that would download fails instead of hanging or passing by luck.
"""

from __future__ import annotations

import io
import time
import urllib.error
import urllib.request
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from keras.src.backend import config as keras_config
from keras.src.legacy.saving import legacy_h5_format
from keras.src.utils import file_utils

from models import weights as weights_lib
from models.backbones import build_backbone
from models.imagenet_files import IMAGENET_FILES
from models.registry import get_spec
from models.weights import (
    WeightsUnavailableError,
    imagenet_weights_cached,
    imagenet_weights_filename,
    imagenet_weights_url,
    import_weights_file,
    keras_cache_dir,
)

OFFLINE = "[Errno -2] Name or service not known"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty Keras home; Keras read KERAS_HOME at import, so its copy is patched too."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    return home / "models"


@pytest.fixture
def network(monkeypatch) -> list[str]:
    """No network: both our downloader and Keras's get_file fail at once; returns the URLs tried."""
    tried: list[str] = []

    def refuse(url, *args, **kwargs):
        tried.append(url if isinstance(url, str) else url.full_url)
        raise urllib.error.URLError(OFFLINE)

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(file_utils, "urlretrieve", refuse)
    return tried


def _write_legacy_h5(model: keras.Model, path: Path) -> None:
    # The layout of Keras's ImageNet files (Keras 3's save_weights only writes .weights.h5).
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


def _randomize(model: keras.Model, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model.get_weights()


def _assert_same_weights(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


# -- where Keras looks ---------------------------------------------------------------------
def test_cache_dir_is_the_one_keras_uses(cache):
    assert keras_cache_dir() == cache


@pytest.mark.filterwarnings("ignore:.*Weights for input shape")  # MobileNetV2 at 100 px
@pytest.mark.parametrize("name, size", [
    ("MobileNetV2", 96), ("MobileNetV2", 100), ("MobileNet", 128), ("VGG16", 32),
    ("Xception", 71),
])
def test_file_name_url_and_hash_are_what_keras_asks_for(name, size, monkeypatch, cache):
    asked = {}

    class Asked(Exception):
        pass

    def record(fname, origin, cache_subdir="datasets", file_hash=None, **kwargs):
        asked.update(fname=fname, origin=origin, file_hash=file_hash, subdir=cache_subdir)
        raise Asked

    monkeypatch.setattr(file_utils, "get_file", record)
    with pytest.raises(Asked):
        spec = get_spec(name)
        kwargs = {"include_preprocessing": False} if spec.family == "MobileNetV3" else {}
        getattr(keras.applications, name)(include_top=False, weights="imagenet",
                                          input_shape=(size, size, 3), **kwargs)
    assert asked["fname"] == imagenet_weights_filename(name, size)
    assert asked["origin"] == imagenet_weights_url(name, size)
    assert asked["file_hash"] == IMAGENET_FILES[name].file_hash
    assert asked["subdir"] == "models"


def test_every_imagenet_backbone_has_a_file_entry():
    from training.config import BACKBONES

    names = {name for name in BACKBONES if get_spec(name).has_imagenet}
    assert names == set(IMAGENET_FILES)
    assert imagenet_weights_filename("NASNetMobile", 224) == "nasnet_mobile_no_top.h5"
    assert imagenet_weights_filename("MobileNetV2", 160).endswith("_1.0_160_no_top.h5")
    with pytest.raises(ValueError, match="SmallCNN has no ImageNet weights"):
        imagenet_weights_filename("SmallCNN", 64)


# -- offline ---------------------------------------------------------------------------------
def test_imagenet_offline_fails_fast_naming_file_folder_and_url(cache, network):
    filename = imagenet_weights_filename("MobileNetV2", 96)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as raised:
        build_backbone("MobileNetV2", 96, "imagenet")
    assert time.monotonic() - start < 10
    error = raised.value
    message = str(error)
    assert filename in message and str(cache) in message
    assert imagenet_weights_url("MobileNetV2", 96) in message
    assert "\"none\"" in message and "Name or service not known" in message
    assert (error.backbone, error.filename, error.folder) == ("MobileNetV2", filename, cache)
    assert network == [error.url]
    assert not cache.exists() or not any(cache.iterdir())  # no half-written file left


def test_imagenet_from_a_cached_file_needs_no_network(cache, network):
    reference = build_backbone("MobileNetV2", 96, "none")
    expected = _randomize(reference)
    _write_legacy_h5(reference, cache / imagenet_weights_filename("MobileNetV2", 96))
    assert imagenet_weights_cached("MobileNetV2", 96)

    backbone = build_backbone("MobileNetV2", 96, "imagenet")

    assert network == []
    _assert_same_weights(backbone.get_weights(), expected)


def test_a_cached_file_keras_rejects_is_reported(cache, network):
    # VGG16's file is hash-checked: a look-alike in the cache makes Keras download again.
    fake = build_backbone("VGG16", 32, "none")
    _write_legacy_h5(fake, cache / imagenet_weights_filename("VGG16", 32))
    with pytest.raises(WeightsUnavailableError, match="vgg16_weights_tf_dim_ordering") as raised:
        build_backbone("VGG16", 32, "imagenet")
    assert "not the official file" in str(raised.value)
    assert not imagenet_weights_cached("VGG16", 32)  # Keras deleted the look-alike


# -- importing and downloading -------------------------------------------------------------------
def test_import_weights_file_copies_under_the_expected_name(tmp_path, cache, network):
    source = tmp_path / "downloaded.h5"
    _write_legacy_h5(build_backbone("SmallCNN", 32, "none"), source)

    target = import_weights_file(source, "MobileNetV2", 128)

    assert target == cache / imagenet_weights_filename("MobileNetV2", 128)
    assert target.read_bytes() == source.read_bytes()
    assert imagenet_weights_cached("MobileNetV2", 128)
    assert sorted(p.name for p in cache.iterdir()) == [target.name]  # no temporary left


def test_import_weights_file_refuses_wrong_files(tmp_path, cache):
    with pytest.raises(ValueError, match="no such file"):
        import_weights_file(tmp_path / "missing.h5", "MobileNetV2", 224)
    text = tmp_path / "page.h5"
    text.write_text("<html>Not found</html>")
    with pytest.raises(ValueError, match="not an HDF5"):
        import_weights_file(text, "MobileNetV2", 224)
    lookalike = tmp_path / "vgg16.h5"
    _write_legacy_h5(build_backbone("SmallCNN", 32, "none"), lookalike)
    with pytest.raises(ValueError, match="not the official"):
        import_weights_file(lookalike, "VGG16", 224)
    assert not imagenet_weights_cached("VGG16", 224)


class _Response(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def test_download_reports_progress_and_is_atomic(cache, monkeypatch):
    data = b"\x89HDF\r\n\x1a\n" + bytes(3 * (1 << 20))
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _Response(data))
    seen = []

    path = weights_lib.download_imagenet_weights("MobileNetV2", 224,
                                                 progress=lambda done, total: seen.append((done, total)))

    assert path.read_bytes() == data
    assert seen[-1] == (len(data), len(data)) and len(seen) >= 3
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_a_corrupted_download_leaves_nothing_in_the_cache(cache, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _Response(b"truncated"))
    with pytest.raises(WeightsUnavailableError, match="corrupted"):
        weights_lib.download_imagenet_weights("VGG16", 224)
    assert not any(cache.iterdir())


# -- weights files ---------------------------------------------------------------------------------
def test_weights_h5_file_round_trips(tmp_path):
    saved = build_backbone("SmallCNN", 32, "none")
    expected = _randomize(saved)
    path = tmp_path / "small.weights.h5"
    saved.save_weights(path)

    loaded = build_backbone("SmallCNN", 48, str(path))  # convolution weights fit any size

    _assert_same_weights(loaded.get_weights(), expected)


def test_legacy_h5_file_loads_by_path(tmp_path):
    saved = build_backbone("MobileNetV2", 32, "none")
    expected = _randomize(saved)
    path = tmp_path / "mobilenet_v2_no_top.h5"
    _write_legacy_h5(saved, path)

    loaded = build_backbone("MobileNetV2", 32, str(path))

    _assert_same_weights(loaded.get_weights(), expected)


def test_keras_file_finds_the_backbone_inside_a_saved_model(tmp_path):
    # A classifier saved at another size: its backbone's name (mobilenetv2_1.00_48)
    # differs from the new build's, so it is found by its weight shapes.
    from models.preprocess import Preprocess

    backbone = build_backbone("MobileNetV2", 48, "none")
    expected = _randomize(backbone)
    inputs = keras.Input((48, 48, 3))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(
        backbone(Preprocess("tf")(inputs))))
    path = tmp_path / "classifier.keras"
    keras.Model(inputs, outputs).save(path)

    loaded = build_backbone("MobileNetV2", 32, str(path))

    assert loaded.name != backbone.name
    _assert_same_weights(loaded.get_weights(), expected)


def test_weights_file_errors_name_the_file_and_the_backbone(tmp_path):
    small = build_backbone("SmallCNN", 32, "none")
    path = tmp_path / "small.weights.h5"
    small.save_weights(path)
    with pytest.raises(ValueError, match=r"small\.weights\.h5.*MobileNetV2"):
        build_backbone("MobileNetV2", 32, str(path))
    with pytest.raises(ValueError, match="does not exist"):
        build_backbone("SmallCNN", 32, str(tmp_path / "missing.keras"))

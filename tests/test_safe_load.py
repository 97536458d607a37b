"""Model files from elsewhere: only .keras, size-capped, allow-listed classes, no Lambda."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

from models.classifier import build_classifier
from models.safe_load import UnsafeModelError, check_model_file, load_model_safely
from training.config import Config
from training.inference.predict import PredictError, load_run


def small_classifier():
    config = Config().with_overrides({"model.backbone": "SmallCNN", "model.weights": "none"})
    return build_classifier(config.model, config.regularization, image_size=32, num_classes=3, seed=0).model


def test_a_classifier_of_this_app_loads(tmp_path):
    model = small_classifier()
    path = tmp_path / "ok.keras"
    model.save(path)
    loaded = load_model_safely(path)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)


def test_lambda_layers_are_refused(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 2)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(UnsafeModelError, match="Lambda"):
        load_model_safely(path)


def test_classes_outside_the_allow_list_are_refused(tmp_path):
    @keras.saving.register_keras_serializable(package="somebody_else")
    class Mystery(keras.layers.Layer):
        def call(self, x):
            return x

    inputs = keras.Input((4,))
    path = tmp_path / "custom.keras"
    keras.Model(inputs, Mystery()(inputs)).save(path)
    with pytest.raises(UnsafeModelError, match="somebody_else>Mystery"):
        check_model_file(path)


def test_only_keras_files_and_not_too_large(tmp_path):
    legacy = tmp_path / "model.h5"
    legacy.write_bytes(b"\x89HDF\r\n")
    with pytest.raises(UnsafeModelError, match="only .keras"):
        check_model_file(legacy)
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip")
    with pytest.raises(UnsafeModelError, match="not a .keras archive"):
        check_model_file(fake)
    path = tmp_path / "ok.keras"
    small_classifier().save(path)
    with pytest.raises(UnsafeModelError, match="over the"):
        check_model_file(path, max_bytes=1000)


def test_zip_bombs_are_refused_before_unpacking(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        archive.writestr("model.weights.h5", b"\0" * 5_000_000)
    assert path.stat().st_size < 100_000
    with pytest.raises(UnsafeModelError, match="unpack"):
        check_model_file(path, max_bytes=1_000_000)


def test_predict_refuses_an_unsafe_best_model(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Lambda(lambda t: t)(inputs)).save(run / "best.keras")
    (run / "labels.txt").write_text("a\nb\n")
    Config().with_overrides({"data.image_size": 32}).save(run / "config.json")
    with pytest.raises(PredictError, match="Lambda"):
        load_run(run)

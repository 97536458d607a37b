"""Model files from elsewhere: only .keras, size-capped, allow-listed classes, no Lambda;
and models saved by earlier versions of this app (with the ``Preprocess`` layer) still load."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

from models.classifier import build_classifier
from models.preprocess import Preprocess
from models.safe_load import UnsafeModelError, check_model_file, load_model_safely
from tests.helpers import make_tiny_dataset
from training.config import Config
from training.data.images import load_images
from training.inference.predict import PredictError, load_run, predict
from training.rundir.labels import write_labels


def small_classifier():
    config = Config().with_overrides({"model.backbone": "SmallCNN", "model.weights": "none"})
    return build_classifier(config.model, config.regularization, image_size=32, num_classes=3, seed=0).model


def legacy_classifier(image_size: int = 32, num_classes: int = 3, mode: str = "tf",
                      backbone: str = "SmallCNN") -> keras.Model:
    """A classifier as this app built it before issue 11: its custom ``Preprocess`` layer
    in front of the backbone (the layer names and nesting it had then)."""
    config = Config().with_overrides({"model.backbone": backbone, "model.weights": "none"})
    features = build_classifier(config.model, config.regularization, image_size=image_size,
                                num_classes=num_classes, seed=0).backbone
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = Preprocess(mode, name="preprocess")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features(x))
    x = keras.layers.Dropout(0.2, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{backbone.lower()}_classifier")


def class_entries(path) -> list[dict]:
    with zipfile.ZipFile(path) as archive:
        stack, found = [json.loads(archive.read("config.json"))], []
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found += [node] if "class_name" in node else []
            stack += node.values()
        elif isinstance(node, list):
            stack += node
    return found


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


# -- models saved before the portable format (issue 11) ----------------------------------------
def test_a_new_classifier_file_names_no_class_of_this_app(tmp_path):
    path = tmp_path / "new.keras"
    small_classifier().save(path)
    modules = {entry.get("module") for entry in class_entries(path)} - {None}
    registered = {entry.get("registered_name") for entry in class_entries(path)} - {None}
    assert modules and all(module == "keras" or module.startswith("keras.") for module in modules)
    assert not [name for name in registered if name.startswith("finetune_studio>")]
    check_model_file(path)


@pytest.mark.parametrize("mode", ["tf", "caffe", "torch"])
def test_a_run_saved_with_the_legacy_preprocess_layer_still_predicts(tmp_path, mode):
    classes = ["circle", "square", "triangle"]
    run = tmp_path / "run"
    run.mkdir()
    model = legacy_classifier(mode=mode)
    model.save(run / "best.keras")
    assert any(entry.get("registered_name") == "finetune_studio>Preprocess"
               for entry in class_entries(run / "best.keras"))
    Config().with_overrides({"model.backbone": "SmallCNN", "model.weights": "none",
                             "data.image_size": 32}).save(run / "config.json")
    write_labels(run, classes)
    images = sorted(make_tiny_dataset(tmp_path, per_class=2, size=32).rglob("*.png"))

    results = predict(run, images, top_k=3)

    loaded, names, size = load_run(run)
    assert (names, size) == (classes, 32)
    assert isinstance(loaded.get_layer("preprocess"), Preprocess)
    assert loaded.get_layer("preprocess").mode == mode
    expected = model.predict(load_images(images, 32).astype("float32"), verbose=0)
    for result, row in zip(results, expected):
        top = result["top"][0]
        assert top["class"] == classes[int(np.argmax(row))]
        assert top["probability"] == pytest.approx(float(row.max()), abs=1e-6)


@pytest.mark.parametrize("changes, message", [
    ({"module": "os"}, "from module 'os'"),
    ({"module": "subprocess", "class_name": "Popen"}, "from module 'subprocess'"),
    ({"module": None}, "from module None"),
    ({"class_name": "Popen", "registered_name": "finetune_studio>Popen"}, "not on this app's allow-list"),
])
def test_the_legacy_layer_must_still_be_the_real_one(tmp_path, changes, message):
    from tests.test_hardening_models import crafted_preprocess

    path = tmp_path / "legacy.keras"
    legacy_classifier().save(path)
    crafted = crafted_preprocess(path, tmp_path, **changes)
    with pytest.raises(UnsafeModelError, match=message):
        load_model_safely(crafted)

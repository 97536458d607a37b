"""A portable ``best.keras`` (issue 11, item 1): plain Keras opens it with no code of this app.

The model holds its backbone's input scaling as Keras built-in layers, so a process that
cannot import ``models`` or ``training`` loads it with ``safe_mode=True`` and predicts what
``training.api.predict`` predicts. That process is started with ``-I -S``: ``-S`` keeps
site-packages' ``.pth`` files unread, which is where the project's editable install would
otherwise make ``models`` importable from anywhere; the venv's site-packages is then put
on ``sys.path`` by hand, so Keras, TensorFlow and numpy are there and nothing of ours is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from models.classifier import build_classifier, unfreeze_top_layers
from models.preprocess import PREPROCESS_MODES, add_preprocessing
from models.saving import save_model
from tests.helpers import make_tiny_dataset
from tests.test_safe_load import legacy_classifier
from training import api
from training.config import Config
from training.data.images import load_image
from training.engine.phase import set_trainable

ROOT = Path(__file__).resolve().parent.parent
SITE_PACKAGES = sysconfig.get_paths()["purelib"]
QUIET_AUGMENTATION = {"augmentation.horizontal_flip": False, "augmentation.rotation": 0.0,
                      "augmentation.zoom": 0.0, "augmentation.translation": 0.0}

# Loads each job's model with plain Keras and predicts its images; reports what it imported.
PLAIN_KERAS = r"""
import json, sys
sys.path.append(sys.argv[1])
import numpy as np
import keras

jobs = json.loads(sys.argv[2])
report = {"errors": {}}
for job in jobs:
    try:
        model = keras.saving.load_model(job["model"], safe_mode=True, compile=False)
        np.save(job["out"], model.predict(np.load(job["images"]), verbose=0))
    except Exception as error:
        report["errors"][job["model"]] = f"{type(error).__name__}: {error}"
report["python_path"] = sys.path
report["files"] = sorted(str(getattr(m, "__file__", None) or "") for m in list(sys.modules.values()))
report["custom_objects"] = sorted(keras.saving.get_custom_objects())
print("REPORT " + json.dumps(report))
"""


def run_plain_keras(jobs: list[dict], cwd: Path) -> dict:
    """Runs ``PLAIN_KERAS`` in a fresh interpreter that cannot import this project."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd),
           "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-I", "-S", "-c", PLAIN_KERAS, SITE_PACKAGES,
                           json.dumps(jobs)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("REPORT "):])


def small_config(data_dir: Path, backbone: str) -> Config:
    return Config().with_overrides({
        "data.dir": str(data_dir), "model.backbone": backbone, "model.weights": "none",
        "data.image_size": 32, "data.batch_size": 16, "training.head_epochs": 0,
        "training.fine_tune_epochs": 1, "training.fine_tune_layers": "all", **QUIET_AUGMENTATION})


def preprocessing_layers(model: keras.Model, backbone: keras.Model) -> list[keras.layers.Layer]:
    """The layers between the input and the backbone."""
    index = model.layers.index(backbone)
    return [layer for layer in model.layers[:index] if not isinstance(layer, keras.layers.InputLayer)]


# -- 1. best.keras of real runs opens in plain Keras -------------------------------------------
@pytest.fixture(scope="module")
def plain_keras_session(tmp_path_factory):
    """Two tiny real runs (SmallCNN, MobileNetV2) and a model per preprocessing mode, all
    loaded in ONE plain-Keras subprocess (a TensorFlow import costs seconds)."""
    root = tmp_path_factory.mktemp("portable")
    data = make_tiny_dataset(root, per_class=12, size=32)
    images = sorted(data.rglob("*.png"))[::6]
    batch = np.stack([load_image(path, 32) for path in images]).astype("float32")
    np.save(root / "images.npy", batch)
    jobs, runs = [], {}
    for backbone in ("SmallCNN", "MobileNetV2"):
        run_dir = root / backbone
        result = api.run_training(small_config(data, backbone), run_dir=run_dir,
                                  on_event=lambda event: None)
        assert result.stop_reason == "completed", result.error
        runs[backbone] = run_dir
        jobs.append({"model": str(run_dir / "best.keras"), "images": str(root / "images.npy"),
                     "out": str(root / f"{backbone}.npy")})
    in_process = {}
    for mode in PREPROCESS_MODES:
        inputs = keras.Input((32, 32, 3))
        model = keras.Model(inputs, add_preprocessing(inputs, mode))
        save_model(model, root / f"{mode}.keras")
        in_process[mode] = model.predict(batch, verbose=0)
        jobs.append({"model": str(root / f"{mode}.keras"), "images": str(root / "images.npy"),
                     "out": str(root / f"{mode}.npy")})
    legacy = root / "legacy.keras"
    legacy_classifier().save(legacy)
    jobs.append({"model": str(legacy), "images": str(root / "images.npy"),
                 "out": str(root / "legacy.npy")})
    report = run_plain_keras(jobs, cwd=root)
    return {"root": root, "runs": runs, "images": images, "report": report,
            "in_process": in_process, "legacy": str(legacy)}


def test_the_subprocess_really_has_no_project_code(plain_keras_session):
    report = plain_keras_session["report"]
    project = [path for path in report["files"]
               if path.startswith(str(ROOT) + os.sep) and not path.startswith(sys.prefix + os.sep)]
    assert report["files"] and project == []
    assert not [path for path in report["python_path"] if path in ("", str(ROOT))]
    assert not [name for name in report["custom_objects"] if name.startswith("finetune_studio>")]
    # The control: a model saved with this app's old custom layer cannot load there.
    assert "Could not locate class 'Preprocess'" in report["errors"][plain_keras_session["legacy"]]


@pytest.mark.parametrize("backbone", ["SmallCNN", "MobileNetV2"])
def test_best_keras_of_a_real_run_loads_in_plain_keras_and_predicts_as_the_app(
        plain_keras_session, backbone):
    session = plain_keras_session
    run_dir = session["runs"][backbone]
    assert str(run_dir / "best.keras") not in session["report"]["errors"], session["report"]["errors"]
    plain = np.load(session["root"] / f"{backbone}.npy")

    results = api.predict(run_dir, session["images"], top_k=3)

    classes = (run_dir / "labels.txt").read_text().split()
    app = np.array([[next(top["probability"] for top in result["top"] if top["class"] == name)
                     for name in classes] for result in results])
    assert plain.shape == app.shape == (len(session["images"]), 3)
    np.testing.assert_allclose(plain, app, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_each_preprocessing_mode_loads_in_plain_keras_unchanged(plain_keras_session, mode):
    session = plain_keras_session
    assert f"{session['root'] / mode}.keras" not in session["report"]["errors"]
    np.testing.assert_array_equal(np.load(session["root"] / f"{mode}.npy"),
                                  session["in_process"][mode])


# -- 1b. a file older Keras versions open --------------------------------------------------------
# Every constructor argument of Keras 3.13.2's classes (scripts/keras_arguments.py made it there).
OLDEST_KERAS = json.loads((ROOT / "tests" / "data" / "keras-3.13.2-arguments.json").read_text())


def config_nodes(config):
    """(module.class_name, its config) for every Keras object in a config.json."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("config"), dict) and "class_name" in node and node.get("module"):
                yield f"{node['module']}.{node['class_name']}", node["config"]
            stack += node.values()
        elif isinstance(node, list):
            stack += node


def keys_the_oldest_keras_refuses(path: Path) -> list[tuple[str, str]]:
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    known = OLDEST_KERAS["arguments"]
    found = [(name, key) for name, inner in config_nodes(config) if name in known
             for key in inner if key not in known[name]]
    return sorted(set(found))


def test_the_argument_listing_is_the_oldest_keras_the_app_opens_files_in():
    assert OLDEST_KERAS["keras"] == "3.13.2"
    assert "renorm" not in OLDEST_KERAS["arguments"]["keras.layers.BatchNormalization"]
    assert "input_axes" not in OLDEST_KERAS["arguments"]["keras.initializers.GlorotUniform"]


def test_a_plain_keras_save_holds_keys_keras_3_13_refuses_and_save_model_removes_them(tmp_path):
    # The control: without save_model the pinned Keras writes keys 3.13 refuses to read.
    config = Config().with_overrides({"model.backbone": "MobileNetV2", "model.weights": "none"})
    model = build_classifier(config.model, config.regularization, image_size=32,
                             num_classes=2, seed=0).model
    model.save(tmp_path / "plain.keras")
    assert ("keras.layers.BatchNormalization", "renorm") in keys_the_oldest_keras_refuses(
        tmp_path / "plain.keras")

    save_model(model, tmp_path / "portable.keras")

    assert keys_the_oldest_keras_refuses(tmp_path / "portable.keras") == []
    batch = random_images(2)
    reloaded = keras.saving.load_model(tmp_path / "portable.keras", safe_mode=True)
    np.testing.assert_array_equal(reloaded.predict(batch, verbose=0), model.predict(batch, verbose=0))


@pytest.mark.parametrize("backbone", ["SmallCNN", "MobileNetV2"])
def test_best_keras_of_a_real_run_holds_no_key_keras_3_13_refuses(plain_keras_session, backbone):
    assert keys_the_oldest_keras_refuses(plain_keras_session["runs"][backbone] / "best.keras") == []


@pytest.mark.parametrize("backbone", ["ResNet50", "DenseNet121", "EfficientNetB0"])
def test_each_backbone_family_saves_no_key_keras_3_13_refuses(tmp_path, backbone):
    config = Config().with_overrides({"model.backbone": backbone, "model.weights": "none",
                                      "regularization.l2": 1e-4})
    model = build_classifier(config.model, config.regularization, image_size=32,
                             num_classes=2, seed=0).model
    save_model(model, tmp_path / "model.keras")
    assert keys_the_oldest_keras_refuses(tmp_path / "model.keras") == []


def test_a_newer_key_set_to_something_else_than_its_default_stays(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.BatchNormalization(renorm=True)(
        keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(seed=1))(inputs))
    model = keras.Model(inputs, outputs)

    save_model(model, tmp_path / "renorm.keras")

    refused = keys_the_oldest_keras_refuses(tmp_path / "renorm.keras")
    assert ("keras.layers.BatchNormalization", "renorm") in refused  # needs the newer Keras, rightly
    assert all(name == "keras.layers.BatchNormalization" for name, _ in refused)  # the rest went
    reloaded = keras.saving.load_model(tmp_path / "renorm.keras")
    assert reloaded.layers[-1].renorm is True


def test_a_saved_classifier_names_keras_built_in_classes_only():
    for backbone in ("SmallCNN", "ResNet50", "DenseNet121", "EfficientNetB0"):
        config = Config().with_overrides({"model.backbone": backbone, "model.weights": "none"})
        model = build_classifier(config.model, config.regularization, image_size=32,
                                 num_classes=2, seed=0).model
        entries, stack = [], [json.loads(model.to_json())]  # what config.json of a save holds
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if "class_name" in node and node.get("module") is not None:
                    entries.append((node["class_name"], node["module"], node.get("registered_name")))
                stack += node.values()
            elif isinstance(node, list):
                stack += node
        outside = [entry for entry in entries
                   if not (entry[1] == "keras" or entry[1].startswith("keras."))
                   or (entry[2] or "").startswith("finetune_studio>")]
        assert entries and outside == [], (backbone, outside)


# -- 2. the same numbers as keras.applications' preprocess_input ------------------------------
FAMILY_FUNCTIONS = {
    "tf": [keras.applications.mobilenet_v2, keras.applications.resnet_v2,
           keras.applications.inception_v3, keras.applications.xception],
    "caffe": [keras.applications.resnet50, keras.applications.vgg16, keras.applications.vgg19],
    "torch": [keras.applications.densenet],
    "none": [keras.applications.efficientnet],
}
# A backbone of each mode, small enough to build in a second at 32 px with random weights.
BACKBONE_OF_MODE = {"tf": "MobileNetV2", "caffe": "ResNet50", "torch": "DenseNet121",
                    "none": "EfficientNetB0"}


def random_images(count: int = 4, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_the_classifier_feeds_its_backbone_what_keras_applications_preprocess_input_gives(mode):
    config = Config().with_overrides({"model.backbone": BACKBONE_OF_MODE[mode], "model.weights": "none"})
    classifier = build_classifier(config.model, config.regularization, image_size=32,
                                  num_classes=2, seed=0)
    assert classifier.spec.preprocess == mode
    layers = preprocessing_layers(classifier.model, classifier.backbone)
    assert all(type(layer).__module__.startswith("keras.") for layer in layers)  # no class of ours
    fed = (keras.Model(classifier.model.input, layers[-1].output) if layers
           else keras.Model(classifier.model.input, classifier.model.input))
    images = random_images()

    actual = fed.predict(images, verbose=0)

    assert actual.dtype == np.float32
    references = [module.preprocess_input(images.copy()) for module in FAMILY_FUNCTIONS[mode]]
    if mode != "none":
        references.append(keras.applications.imagenet_utils.preprocess_input(images.copy(), mode=mode))
    for expected in references:
        # float32 rounding only: at most a few units in the last place of values <= ~152.
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


# -- 3. the preprocessing never trains and fine_tune_layers counts the backbone only ----------
def unfrozen_classifier(backbone: str):
    """A classifier as the fine-tuning phase leaves it with ``fine_tune_layers`` "all"."""
    config = Config().with_overrides({"model.backbone": backbone, "model.weights": "none",
                                      "training.fine_tune_layers": "all"})
    classifier = build_classifier(config.model, config.regularization, image_size=32,
                                  num_classes=2, seed=0)
    assert set_trainable(classifier, config, "fine_tune") > 0
    return classifier


@pytest.mark.parametrize("backbone", ["ResNet50", "DenseNet121", "MobileNetV2"])
def test_preprocessing_has_nothing_to_train_when_every_layer_is_unfrozen(backbone):
    classifier = unfrozen_classifier(backbone)
    layers = preprocessing_layers(classifier.model, classifier.backbone)

    assert layers and all(type(layer).__module__.startswith("keras.") for layer in layers)
    assert all(layer not in classifier.backbone.layers for layer in layers)
    head = classifier.model.layers[classifier.model.layers.index(classifier.backbone) + 1:]
    backbone_and_head = classifier.backbone.trainable_weights + [
        weight for layer in head for weight in layer.trainable_weights]
    assert {id(w) for w in classifier.model.trainable_weights} == {id(w) for w in backbone_and_head}


def test_fine_tuning_every_layer_leaves_the_bgr_mean_subtraction_as_it_was():
    classifier = unfrozen_classifier("ResNet50")  # caffe: the mode with a channel permutation
    layers = preprocessing_layers(classifier.model, classifier.backbone)
    scaled = keras.Model(classifier.model.input, layers[-1].output)
    images = random_images(2)
    before = scaled.predict(images, verbose=0)
    classifier.model.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")

    classifier.model.fit(images, np.eye(2), epochs=1, verbose=0)

    np.testing.assert_array_equal(scaled.predict(images, verbose=0), before)
    np.testing.assert_allclose(before, keras.applications.resnet50.preprocess_input(images.copy()),
                               rtol=1e-6, atol=1e-6)


def test_fine_tune_layers_count_the_same_backbone_layers_as_before():
    config = Config().with_overrides({"model.backbone": "MobileNetV2", "model.weights": "none"})
    classifier = build_classifier(config.model, config.regularization, image_size=32,
                                  num_classes=2, seed=0)
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    countable = [layer.name for layer in reference.layers
                 if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]

    assert unfreeze_top_layers(classifier.backbone, 30) == 30

    trainable = [layer.name for layer in classifier.backbone.layers
                 if layer.trainable and layer.weights]
    assert trainable == countable[-30:]
    assert unfreeze_top_layers(classifier.backbone, "all") == len(countable)


# -- runs started before the portable format still resume ---------------------------------------
@pytest.mark.parametrize("backbone, mode", [("SmallCNN", "tf"), ("ResNet50", "caffe")])
def test_weights_saved_with_the_legacy_layer_load_into_the_new_classifier(tmp_path, backbone, mode):
    # A resume checkpoint is `save_weights` of the whole model; a run interrupted before
    # this change resumes with the new layers, and any Keras warning would refuse it.
    legacy = legacy_classifier(mode=mode, backbone=backbone)
    legacy.save_weights(tmp_path / "checkpoint.weights.h5")
    config = Config().with_overrides({"model.backbone": backbone, "model.weights": "none"})
    new = build_classifier(config.model, config.regularization, image_size=32, num_classes=3,
                           seed=5).model
    images = random_images(2)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new.load_weights(tmp_path / "checkpoint.weights.h5")

    np.testing.assert_allclose(new.predict(images, verbose=0), legacy.predict(images, verbose=0),
                               atol=1e-6)


def test_a_model_trained_in_mixed_precision_is_saved_to_compute_in_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((6,))
        x = keras.layers.Dense(8, activation="relu")(inputs)
        x = keras.layers.BatchNormalization()(x)
        outputs = keras.layers.Dense(3, activation="softmax", dtype="float32")(x)
        model = keras.Model(inputs, outputs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    batch = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    model.save(tmp_path / "plain.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras") as archive:
        assert "mixed_float16" in archive.read("config.json").decode()  # the control

    save_model(model, tmp_path / "model.keras")

    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        text = archive.read("config.json").decode()
    assert "mixed_float16" not in text and "float16" not in text
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert {layer.dtype_policy.name for layer in reloaded.layers} == {"float32"}
    np.testing.assert_allclose(reloaded.predict(batch, verbose=0), model.predict(batch, verbose=0), atol=2e-3)
    assert keys_the_oldest_keras_refuses(tmp_path / "model.keras") == []

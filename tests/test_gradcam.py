"""Grad-CAM: exact on a head where it has a closed form, unchanged models, localisation on a
task decided by the left half of the image, and the run-level call with its cache."""

from __future__ import annotations

import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.classifier import build_classifier
from tests.helpers import make_tiny_dataset
from training import api
from training.config import Config
from training.data.images import load_image
from training.inference import cache, gradcam, predict
from training.inference.gradcam import grad_cam, grad_cam_for_run, jet, overlay
from training.inference.predict import PredictError

# keras.applications' own input scaling: an independent route to the backbone's input.
_PREPROCESS_INPUT = {
    "SmallCNN": keras.applications.mobilenet_v2.preprocess_input,  # "tf": x / 127.5 - 1
    "MobileNetV2": keras.applications.mobilenet_v2.preprocess_input,
    "ResNet50": keras.applications.resnet50.preprocess_input,  # "caffe": BGR minus the mean
}


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def _classifier(backbone: str, size: int, classes: int = 3, **overrides):
    config = Config().with_overrides({"model.backbone": backbone, "model.weights": "none", **overrides})
    return build_classifier(config.model, config.regularization, image_size=size,
                            num_classes=classes, seed=1)


def _reference_cam(classifier, images: np.ndarray, class_index: int) -> np.ndarray:
    """Grad-CAM in closed form for a head that is only GAP -> Dense: the gradient of logit c
    with respect to the map is W[:, c] / (h * w) at every position, so the map is
    ReLU(A . W[:, c]) up to a constant factor (Zhou et al.'s CAM)."""
    scaled = _PREPROCESS_INPUT[classifier.spec.name](images.copy())
    maps = classifier.backbone(scaled, training=False).numpy()
    kernel = classifier.model.get_layer("predictions").kernel.numpy()
    cams = np.maximum(maps @ kernel[:, class_index], 0.0)[..., None]
    cams = tf.image.resize(cams, images.shape[1:3], method="bilinear").numpy()[..., 0]
    peaks = cams.max(axis=(1, 2), keepdims=True)
    return np.where(peaks > 0, cams / np.where(peaks > 0, peaks, 1.0), 0.0)


def _state(model):
    return ([weight.copy() for weight in model.get_weights()],
            [(layer.name, layer.trainable) for layer in _all_layers(model)],
            model.to_json())


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


@pytest.mark.parametrize("backbone, size", [("SmallCNN", 32), ("MobileNetV2", 64), ("ResNet50", 64)])
def test_heat_maps_match_the_closed_form_and_leave_the_model_unchanged(backbone, size):
    classifier = _classifier(backbone, size)
    model = classifier.model
    images = np.random.default_rng(0).uniform(0, 255, (4, size, size, 3)).astype("float32")
    before, predictions = _state(model), model.predict_on_batch(images)

    heatmaps = grad_cam(model, images)

    assert heatmaps.shape == (4, size, size) and heatmaps.dtype == np.float32
    assert np.all(np.isfinite(heatmaps)) and heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    top = predictions.argmax(axis=1)
    for index, image in enumerate(images):
        expected = _reference_cam(classifier, image[None], top[index])[0]
        np.testing.assert_allclose(heatmaps[index], expected, atol=2e-4)
    after = _state(model)
    assert all(np.array_equal(a, b) for a, b in zip(before[0], after[0]))
    assert before[1:] == after[1:]
    np.testing.assert_array_equal(model.predict_on_batch(images), predictions)


def test_each_image_explains_the_class_asked_for():
    classifier = _classifier("SmallCNN", 32)
    images = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    asked = [2, 0, 1]
    heatmaps = grad_cam(classifier.model, images, class_indices=asked)
    for index, class_index in enumerate(asked):
        expected = _reference_cam(classifier, images[index:index + 1], class_index)[0]
        np.testing.assert_allclose(heatmaps[index], expected, atol=2e-4)
    one_for_all = grad_cam(classifier.model, images, class_indices=1)
    np.testing.assert_allclose(one_for_all[2], heatmaps[2], atol=1e-6)


def test_a_class_with_no_positive_evidence_gives_an_all_zero_map():
    classifier = _classifier("SmallCNN", 32)
    dense = classifier.model.get_layer("predictions")
    kernel = dense.kernel.numpy()
    kernel[:, 0] = -np.abs(kernel[:, 0]) - 0.01  # the backbone's ReLU output is >= 0
    dense.kernel.assign(kernel)
    images = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")

    heatmaps = grad_cam(classifier.model, images, class_indices=0)

    assert np.all(np.isfinite(heatmaps))
    np.testing.assert_array_equal(heatmaps, np.zeros((2, 32, 32), "float32"))


def test_bad_arguments_are_clear_errors():
    model = _classifier("SmallCNN", 32).model
    images = np.zeros((2, 32, 32, 3), "float32")
    with pytest.raises(ValueError, match=r"`class_indices` must be .* Received: class_indices=3"):
        grad_cam(model, images, class_indices=3)
    with pytest.raises(ValueError, match=r"one per image \(2\)"):
        grad_cam(model, images, class_indices=[0])
    with pytest.raises(ValueError, match=r"\(N, 32, 32, 3\)\. Received: images.shape=\(2, 16, 16, 3\)"):
        grad_cam(model, np.zeros((2, 16, 16, 3)))


def _left_half_task(count: int, rng: np.random.Generator, size: int = 32):
    """Class 0: a white square, class 1: a white disc, at a random place in the black left
    half; the right half is noise, the same for both classes (it says nothing)."""
    images = rng.uniform(0, 255, (count, size, size, 3)).astype("float32")
    images[:, :, : size // 2] = 0
    labels = rng.integers(0, 2, count)
    radius = size // 8
    rows, cols = np.mgrid[:size, :size]
    for image, label in zip(images, labels):
        row = rng.integers(radius + 1, size - radius - 1)
        col = rng.integers(radius + 1, size // 2 - radius - 1)
        if label == 0:
            shape = (abs(rows - row) <= radius) & (abs(cols - col) <= radius)
        else:
            shape = (rows - row) ** 2 + (cols - col) ** 2 <= (radius + 0.5) ** 2
        image[shape] = 255
    return images, labels


def test_heat_lies_where_the_class_is_decided():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    train, train_labels = _left_half_task(400, rng)
    test, test_labels = _left_half_task(100, rng)
    model = _classifier("SmallCNN", 32, classes=2, **{"model.head.dropout": 0.0}).model
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(train, train_labels, batch_size=32, epochs=6, verbose=0)
    correct = model.predict(test, verbose=0).argmax(axis=1) == test_labels
    assert correct.mean() >= 0.9  # it learned the task, so there is something to localise

    heatmaps = grad_cam(model, test[correct])

    left_share = heatmaps[:, :, :16].sum(axis=(1, 2)) / heatmaps.sum(axis=(1, 2))
    assert left_share.mean() > 0.7, left_share
    assert np.mean(left_share > 0.6) >= 0.9, left_share


def test_overlay_colours_the_heat_and_keeps_the_image_where_alpha_is_zero():
    image = np.full((4, 4, 3), 100, np.uint8)
    heat = np.zeros((4, 4), "float32")
    heat[0, 0], heat[3, 3] = 1.0, 0.0
    np.testing.assert_array_equal(overlay(image, heat, alpha=0.0), image)
    blended = overlay(image, heat, alpha=1.0)
    assert blended.dtype == np.uint8 and blended.shape == (4, 4, 3)
    assert tuple(blended[0, 0]) == (128, 0, 0)  # jet's 1.0: dark red
    assert tuple(blended[3, 3]) == (0, 0, 128)  # jet's 0.0: dark blue
    assert jet(np.array(0.5)).tolist() == [0.5, 1.0, 0.5]
    half = overlay(image, heat, alpha=0.5)
    assert tuple(half[0, 0]) == (114, 50, 50)
    with pytest.raises(ValueError, match="Received: image.shape"):
        overlay(image, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="Received: alpha=2"):
        overlay(image, heat, alpha=2)


# -- a real run folder --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("gradcam_run")
    data = make_tiny_dataset(root, size=32, per_class=12)
    config = Config().with_overrides({
        "data.dir": str(data), "model.backbone": "SmallCNN", "model.weights": "none",
        "data.image_size": 32, "data.batch_size": 16, "training.head_epochs": 0,
        "training.fine_tune_epochs": 2, "augmentation.horizontal_flip": False})
    result = api.run_training(config, run_dir=root / "run", on_event=lambda event: None)
    assert result.stop_reason == "completed", result.error
    return root / "run", data


def test_the_top_class_is_explained_by_default(run_folder):
    run_dir, data = run_folder
    image_path = sorted((data / "square").iterdir())[0]

    result = api.grad_cam(run_dir, image_path)

    model, classes, _ = predict.load_run(run_dir)
    image = load_image(image_path, 32)
    probabilities = model.predict_on_batch(image[None].astype("float32"))[0]
    np.testing.assert_array_equal(result["image"], image)
    assert result["heatmap"].shape == (32, 32) and result["heatmap"].dtype == np.float32
    assert result["overlay"].shape == (32, 32, 3) and result["overlay"].dtype == np.uint8
    assert [entry["class"] for entry in result["top"]] == [classes[i] for i in np.argsort(-probabilities)]
    np.testing.assert_allclose([entry["probability"] for entry in result["top"]],
                               np.sort(probabilities)[::-1], atol=1e-5)
    assert result["class"] == result["top"][0]["class"]
    assert result["probability"] == result["top"][0]["probability"]
    np.testing.assert_allclose(result["heatmap"], grad_cam(model, image[None])[0], atol=1e-6)


def test_a_named_class_is_explained(run_folder):
    run_dir, data = run_folder
    image_path = sorted((data / "circle").iterdir())[0]
    top = grad_cam_for_run(run_dir, image_path)["top"]
    other = top[-1]

    result = grad_cam_for_run(run_dir, image_path, class_name=other["class"])

    assert result["class"] == other["class"]
    assert result["probability"] == pytest.approx(other["probability"])
    model, classes, _ = predict.load_run(run_dir)
    expected = grad_cam(model, result["image"][None], class_indices=classes.index(other["class"]))
    np.testing.assert_allclose(result["heatmap"], expected[0], atol=1e-6)


def test_an_unknown_class_or_an_unreadable_image_is_a_clear_error(run_folder, tmp_path):
    run_dir, data = run_folder
    image_path = sorted((data / "circle").iterdir())[0]
    with pytest.raises(PredictError, match=r"'circle', 'square', 'triangle'\. Received: class_name='dog'"):
        grad_cam_for_run(run_dir, image_path, class_name="dog")
    text = tmp_path / "notes.png"
    text.write_text("not an image", encoding="utf-8")
    with pytest.raises(PredictError, match="notes.png"):
        grad_cam_for_run(run_dir, text)
    with pytest.raises(PredictError, match="missing.png"):
        grad_cam_for_run(run_dir, tmp_path / "missing.png")


def test_a_run_is_loaded_once_until_its_best_model_changes(run_folder, tmp_path, monkeypatch):
    run_dir, data = run_folder
    image_path = sorted((data / "triangle").iterdir())[0]
    loads, builds = [], []
    load_run, build = predict.load_run, gradcam._build_explainer
    monkeypatch.setattr(predict, "load_run", lambda folder: loads.append(folder) or load_run(folder))
    monkeypatch.setattr(gradcam, "_build_explainer", lambda model: builds.append(model) or build(model))

    first = grad_cam_for_run(run_dir, image_path)
    second = grad_cam_for_run(run_dir, image_path, class_name="circle")
    assert len(loads) == 1 and len(builds) == 1
    assert first["top"] == second["top"]

    best = run_dir / "best.keras"
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    stamp = os.stat(best).st_mtime_ns
    try:
        os.utime(best, ns=(stamp, stamp + 10**9))  # a newer best model was saved
        grad_cam_for_run(run_dir, image_path)
        assert len(loads) == 2 and len(builds) == 2
    finally:
        os.utime(best, ns=(stamp, stamp))

    # The last two runs stay loaded: the original (as it is now) and the copy.
    cache.clear()
    loads.clear()
    for folder in (run_dir, copy, run_dir, copy):
        grad_cam_for_run(folder, image_path)
    assert len(loads) == 2
    third = tmp_path / "third"
    shutil.copytree(run_dir, third)
    for folder in (third, copy, run_dir):  # `run_dir` was the least recently used: dropped
        grad_cam_for_run(folder, image_path)
    assert len(loads) == 4

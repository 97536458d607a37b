"""The backbone registry, the input scaling, the classifier head and the freezing steps.

CPU-sized: SmallCNN and MobileNetV2 at 32-48 px with random weights; no network
(any attempt to download fails the test).
"""

from __future__ import annotations

import json
import urllib.request

import keras
import numpy as np
import pytest
from keras.src.backend import config as keras_config
from keras.src.utils import file_utils

from models.backbones import backbone_catalog, build_backbone
from models.classifier import (
    build_classifier,
    freeze_backbone,
    head_layers,
    unfreeze_top_layers,
)
from models.preprocess import PREPROCESS_MODES, Preprocess, add_preprocessing, describe_preprocessing
from models.registry import backbone_specs, check_image_size, get_spec
from models.weights import imagenet_weights_filename
from training.config import BACKBONES, HeadConfig, ModelConfig, RegularizationConfig


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a models test tried to use the network")

    monkeypatch.setattr(file_utils, "get_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def _images(count: int = 4, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


def _model_cfg(backbone: str = "SmallCNN", weights: str = "none", **head) -> ModelConfig:
    return ModelConfig(backbone=backbone, weights=weights, head=HeadConfig(**head))


def _weighted(backbone: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in backbone.layers if layer.weights]


def _is_bn(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


# -- registry -------------------------------------------------------------------------------------
def test_every_configurable_backbone_has_a_spec():
    assert [spec.name for spec in backbone_specs()] == list(BACKBONES)
    for spec in backbone_specs():
        assert spec.preprocess in ("tf", "caffe", "torch", "none")
        assert 32 <= spec.min_size <= spec.default_size
        assert spec.has_imagenet == (spec.name != "SmallCNN")
    assert get_spec("EfficientNetB0").preprocess == "none"  # rescales inside the network
    assert get_spec("ResNet50").preprocess == "caffe"
    assert get_spec("InceptionV3").min_size == 75


def test_unknown_backbone_lists_the_allowed_names():
    with pytest.raises(ValueError, match=r"`model.backbone` must be one of .*MobileNetV2.*"
                                         r"Received: model.backbone='ResNet9'"):
        get_spec("ResNet9")


def test_catalog_is_plain_data_and_knows_what_is_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))
    cached = tmp_path / "models" / imagenet_weights_filename("MobileNetV2", 224)
    cached.parent.mkdir()
    cached.write_bytes(b"\x89HDF\r\n\x1a\n")

    catalog = backbone_catalog()

    json.dumps(catalog)  # only plain values
    by_name = {entry["name"]: entry for entry in catalog}
    assert list(by_name) == list(BACKBONES)
    for key in ("family", "default_size", "params_millions", "imagenet_top1", "imagenet_cached"):
        assert key in by_name["ResNet50"]
    assert by_name["MobileNetV2"]["imagenet_cached"] is True
    assert by_name["MobileNetV3Small"]["imagenet_cached"] is False
    assert by_name["SmallCNN"]["imagenet_cached"] is False


def test_check_image_size_names_the_key_the_value_and_the_limit():
    with pytest.raises(ValueError, match=r"`data.image_size` must be >= 75 .*InceptionV3.*"
                                         r"Received: data.image_size=64"):
        check_image_size("InceptionV3", 64, "none")
    with pytest.raises(ValueError, match="no ImageNet weights"):
        check_image_size("SmallCNN", 64, "imagenet")
    check_image_size("InceptionV3", 75, "none")
    check_image_size("MobileNetV2", 100, "imagenet")  # Keras falls back to the 224 file


@pytest.mark.parametrize("name, size", [
    ("SmallCNN", 32), ("MobileNetV2", 32), ("ResNet50V2", 32), ("EfficientNetV2B0", 32),
])
def test_representative_backbones_build_offline_with_random_weights(name, size):
    backbone = build_backbone(name, size, "none", batch_norm_momentum=0.9)

    features = backbone(_images(2, size))

    assert features.shape[0] == 2 and len(features.shape) == 4
    assert backbone.input_shape == (None, size, size, 3)
    batch_norms = [layer for layer in backbone.layers if _is_bn(layer)]
    assert batch_norms and all(layer.momentum == 0.9 for layer in batch_norms)
    # The classifier scales the input in front of it: the backbone must not do it a second time.
    builtin = [layer for layer in backbone.layers
               if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization))]
    assert builtin == []


# -- the input scaling ---------------------------------------------------------------------------
FAMILY_MODULES = [
    ("tf", keras.applications.mobilenet_v2),
    ("caffe", keras.applications.resnet50),
    ("torch", keras.applications.densenet),
    ("none", keras.applications.efficientnet),
]


@pytest.mark.parametrize("mode, module", FAMILY_MODULES)
def test_preprocessing_matches_the_family_function(mode, module):
    images = _images(3, 8)
    inputs = keras.Input((8, 8, 3))
    scaled = keras.Model(inputs, add_preprocessing(inputs, mode))

    actual = scaled.predict(images, verbose=0)

    np.testing.assert_allclose(actual, module.preprocess_input(images.copy()), rtol=1e-6, atol=1e-6)
    assert all(layer.name.startswith("preprocess_") and not layer.weights
               for layer in scaled.layers[1:])


@pytest.mark.parametrize("mode, module", FAMILY_MODULES)
def test_the_legacy_preprocess_layer_still_matches_the_family_function(mode, module):
    images = _images(3, 8)
    expected = module.preprocess_input(images.copy())
    actual = keras.ops.convert_to_numpy(Preprocess(mode)(images))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4)


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match=r"`mode` must be one of tf, caffe, torch, none. "
                                         r"Received: mode='imagenet'"):
        add_preprocessing(keras.Input((8, 8, 3)), "imagenet")
    with pytest.raises(ValueError, match="mode"):
        Preprocess("imagenet")
    assert all(describe_preprocessing(mode) for mode in PREPROCESS_MODES)


def test_a_classifier_saves_and_loads_in_safe_mode(tmp_path):
    classifier = build_classifier(_model_cfg(hidden_units=[8]), RegularizationConfig(l2=1e-3),
                                  image_size=32, num_classes=3, seed=1)
    path = tmp_path / "model.keras"
    classifier.model.save(path)

    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)

    images = _images(2)
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               classifier.model.predict(images, verbose=0), atol=1e-6)
    scale = loaded.get_layer("preprocess_scale")
    assert isinstance(scale, keras.layers.Rescaling)
    assert (scale.scale, scale.offset) == pytest.approx((1 / 127.5, -1.0))


# -- the classifier ---------------------------------------------------------------------------------
def test_head_layers_follow_the_toggles():
    def names(**head):
        model = build_classifier(_model_cfg(**head), RegularizationConfig(), image_size=32,
                                 num_classes=3, seed=0).model
        return [layer.name for layer in model.layers[model.layers.index(model.get_layer("avg_pool")) + 1:]]

    assert names(dropout=0.2) == ["head_dropout", "predictions"]
    assert names(dropout=0.0) == ["predictions"]
    assert names(hidden_units=[16, 8], batch_norm=True, dropout=0.3) == [
        "head_dense_1", "head_bn_1", "head_activation_1", "head_dropout_1",
        "head_dense_2", "head_bn_2", "head_activation_2", "head_dropout_2", "predictions"]
    assert names(hidden_units=[16], dropout=0.0, activation="gelu") == [
        "head_dense_1", "head_activation_1", "predictions"]


def test_output_is_float32_probabilities():
    classifier = build_classifier(_model_cfg(hidden_units=[8]), RegularizationConfig(),
                                  image_size=32, num_classes=4, seed=0)
    probabilities = classifier.model.predict(_images(3), verbose=0)
    assert probabilities.shape == (3, 4) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert classifier.from_scratch and classifier.spec.name == "SmallCNN"


def test_the_same_seed_builds_the_same_head():
    def head_weights(seed):
        model = build_classifier(_model_cfg(hidden_units=[16], kernel_initializer="he_normal"),
                                 RegularizationConfig(), image_size=32, num_classes=3,
                                 seed=seed).model
        return [w for layer in head_layers(model) for w in layer.get_weights()]

    first, again, other = head_weights(7), head_weights(7), head_weights(8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_l1_l2_penalty_on_every_head_kernel_and_max_norm():
    l1, l2 = 0.01, 0.002
    model = build_classifier(_model_cfg(hidden_units=[8]),
                             RegularizationConfig(l1=l1, l2=l2, max_norm=2.0),
                             image_size=32, num_classes=3, seed=0).model
    dense = head_layers(model)
    assert [layer.name for layer in dense] == ["head_dense_1", "predictions"]

    kernels = [keras.ops.convert_to_numpy(layer.kernel) for layer in dense]
    expected = sum(l1 * np.abs(k).sum() + l2 * np.square(k).sum() for k in kernels)
    model(_images(1))
    assert float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses)) == pytest.approx(
        expected, rel=1e-5)
    for layer in dense:
        assert isinstance(layer.kernel_constraint, keras.constraints.MaxNorm)
        assert layer.kernel_constraint.max_value == 2.0

    plain = build_classifier(_model_cfg(hidden_units=[8]), RegularizationConfig(),
                             image_size=32, num_classes=3, seed=0).model
    plain(_images(1))
    assert plain.losses == []
    assert all(layer.kernel_constraint is None for layer in head_layers(plain))


def _moving_means(backbone) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(layer.moving_mean) for layer in backbone.layers
            if _is_bn(layer)]


def test_pretrained_batch_norm_stays_in_inference_mode_when_fine_tuned(tmp_path):
    # As the engine calls it: BatchNorm trains only when training from scratch.
    source = build_backbone("SmallCNN", 32, "none")
    path = tmp_path / "small.weights.h5"
    source.save_weights(path)
    pretrained = build_classifier(_model_cfg(weights=str(path)), RegularizationConfig(),
                                  image_size=32, num_classes=3, seed=0)
    scratch = build_classifier(_model_cfg(), RegularizationConfig(), image_size=32,
                               num_classes=3, seed=0)
    assert not pretrained.from_scratch and scratch.from_scratch

    for classifier in (pretrained, scratch):
        unfreeze_top_layers(classifier.backbone, "all",
                            train_batch_norm=classifier.from_scratch)
        before = _moving_means(classifier.backbone)
        classifier.model(_images(8), training=True)
        after = _moving_means(classifier.backbone)
        moved = any(not np.allclose(a, b) for a, b in zip(before, after))
        assert moved == classifier.from_scratch


def test_batch_norm_momentum_default_depends_on_weights(tmp_path):
    def momenta(model_cfg):
        backbone = build_classifier(model_cfg, RegularizationConfig(), image_size=32,
                                    num_classes=2).backbone
        return {layer.momentum for layer in backbone.layers if _is_bn(layer)}

    assert momenta(_model_cfg("MobileNetV2")) == {0.9}  # from scratch: docs/facts.md#batchnorm-momentum
    cfg = _model_cfg("MobileNetV2")
    cfg.batch_norm_momentum = 0.95
    assert momenta(cfg) == {0.95}
    path = tmp_path / "mobilenet.weights.h5"
    build_backbone("MobileNetV2", 32, "none").save_weights(path)
    assert momenta(_model_cfg("MobileNetV2", weights=str(path))) == {0.999}  # as Keras built it


# -- freezing -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mobilenet():
    return build_backbone("MobileNetV2", 32, "none")


def test_freeze_backbone_leaves_no_trainable_weight(mobilenet):
    freeze_backbone(mobilenet)
    assert mobilenet.trainable_weights == []


def test_unfreeze_top_layers_counts_weighted_non_batch_norm_layers(mobilenet):
    freeze_backbone(mobilenet)

    assert unfreeze_top_layers(mobilenet, 5) == 5

    weighted = _weighted(mobilenet)
    countable = [layer for layer in weighted if not _is_bn(layer)]
    trainable = [layer for layer in weighted if layer.trainable]
    assert trainable == countable[-5:]
    assert mobilenet.trainable_weights  # the model itself is trainable again


def test_unfreeze_all_and_batch_norm(mobilenet):
    weighted = _weighted(mobilenet)
    countable = [layer for layer in weighted if not _is_bn(layer)]

    assert unfreeze_top_layers(mobilenet, "all") == len(countable)
    assert [layer for layer in weighted if layer.trainable] == countable

    unfreeze_top_layers(mobilenet, 3, train_batch_norm=True)
    span = weighted[weighted.index(countable[-3]):]
    assert [layer for layer in weighted if layer.trainable] == span
    assert any(_is_bn(layer) for layer in span)

    assert unfreeze_top_layers(mobilenet, 0) == 0
    assert mobilenet.trainable_weights == []
    with pytest.raises(ValueError, match="fine_tune_layers"):
        unfreeze_top_layers(mobilenet, "top")


def test_fine_tuning_changes_only_the_unfrozen_layers():
    keras.utils.set_random_seed(0)
    classifier = build_classifier(_model_cfg(), RegularizationConfig(), image_size=32,
                                  num_classes=2, seed=0)
    unfreeze_top_layers(classifier.backbone, 1)
    model = classifier.model
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    weighted = _weighted(classifier.backbone)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in weighted}

    model.fit(_images(8), np.array([0, 1] * 4), epochs=1, batch_size=8, verbose=0)

    changed = {layer.name for layer in weighted
               if any(not np.array_equal(a, b) for a, b in zip(before[layer.name], layer.get_weights()))}
    top_conv = [layer.name for layer in weighted if not _is_bn(layer)][-1]
    assert changed == {top_conv}

"""The config: one object, round-trips through JSON, refuses bad input with a clear message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from training.config import Config, ConfigError, all_keys, parse_override
from training.engine.recipe import fine_tune_learning_rate

README = Path(__file__).resolve().parent.parent / "README.md"


def test_default_round_trips_through_json(tmp_path):
    config = Config()
    path = tmp_path / "config.json"
    config.save(path)
    assert Config.load(path) == config
    assert Config.from_dict(json.loads(path.read_text())).to_dict() == config.to_dict()


def test_changed_values_round_trip():
    config = Config().with_overrides({
        "optimizer.name": "sgd", "optimizer.nesterov": True, "schedule.name": "cosine",
        "model.head.hidden_units": [128, 64], "training.fine_tune_layers": "all",
        "data.validation_dir": "/data/val", "augmentation.mixup": 0.2,
    })
    again = Config.from_json(config.to_json())
    assert again == config
    assert again.model.head.hidden_units == [128, 64]
    assert again.training.fine_tune_layers == "all"


def test_missing_keys_take_defaults():
    config = Config.from_dict({"optimizer": {"learning_rate": 0.01}})
    assert config.optimizer.learning_rate == 0.01
    assert config.optimizer.name == Config().optimizer.name
    assert config.data == Config().data


@pytest.mark.parametrize("data, key", [
    ({"bogus": 1}, "bogus"),
    ({"data": {"batchsize": 8}}, "data.batchsize"),
    ({"model": {"head": {"units": [3]}}}, "model.head.units"),
])
def test_unknown_keys_are_rejected_by_name(data, key):
    with pytest.raises(ConfigError, match=re.escape(f"`{key}`")):
        Config.from_dict(data)


@pytest.mark.parametrize("overrides, key, allowed", [
    ({"data.batch_size": 0}, "data.batch_size", "in [1, 4096]"),
    ({"data.validation_split": 1.5}, "data.validation_split", "in [0.0, 0.9]"),
    ({"optimizer.learning_rate": -1.0}, "optimizer.learning_rate", "in (0.0, 10.0]"),
    ({"optimizer.name": "adamax"}, "optimizer.name", "one of 'sgd'"),
    ({"schedule.name": "linear"}, "schedule.name", "one of 'constant'"),
    ({"model.backbone": "ResNet9000"}, "model.backbone", "one of 'SmallCNN'"),
    ({"model.head.dropout": 1.0}, "model.head.dropout", "in [0.0, 1.0)"),
    ({"regularization.label_smoothing": 0.9}, "regularization.label_smoothing", "in [0.0, 0.5]"),
    ({"augmentation.rotation": 2.0}, "augmentation.rotation", "in [0.0, 0.5]"),
    ({"training.fine_tune_layers": "some"}, "training.fine_tune_layers", "an integer >= 0 or \"all\""),
    ({"training.monitor": "accuracy"}, "training.monitor", "one of 'val_loss'"),
    ({"data.class_weight": "auto"}, "data.class_weight", "one of 'none', 'balanced'"),
    ({"optimizer.nesterov": True}, "optimizer.nesterov", "\"sgd\""),
    ({"model.weights": "weights.bin"}, "model.weights", ".weights.h5"),
])
def test_invalid_values_name_key_value_and_allowed(overrides, key, allowed):
    with pytest.raises(ConfigError) as info:
        Config().with_overrides(overrides)
    message = str(info.value)
    value = json.dumps(next(iter(overrides.values())))
    assert f"`{key}`" in message
    assert f"Received: {key}={value}" in message
    assert allowed in message


@pytest.mark.parametrize("value", ["8", 8.5, True, None])
def test_wrong_types_are_rejected(value):
    with pytest.raises(ConfigError, match="data.batch_size"):
        Config.from_dict({"data": {"batch_size": value}})


def test_wrong_schema_version_is_rejected():
    with pytest.raises(ConfigError, match="schema_version"):
        Config.from_dict({"schema_version": 99})


def test_invalid_json_file_says_which_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json"):
        Config.load(path)


def test_parse_override_reads_json_or_plain_strings():
    assert parse_override("optimizer.learning_rate=1e-4") == ("optimizer.learning_rate", 1e-4)
    assert parse_override("model.head.hidden_units=[64]") == ("model.head.hidden_units", [64])
    assert parse_override("model.backbone=ResNet50") == ("model.backbone", "ResNet50")
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")


def test_fine_tune_rate_defaults_to_a_tenth():
    config = Config().with_overrides({"optimizer.learning_rate": 0.01})
    assert fine_tune_learning_rate(config) == pytest.approx(0.001)
    config = config.with_overrides({"training.fine_tune_learning_rate": 0.0005})
    assert fine_tune_learning_rate(config) == 0.0005


def test_readme_documents_every_key():
    text = README.read_text(encoding="utf-8")
    missing = [key for key in all_keys() if f"`{key}`" not in text]
    assert not missing, f"README.md's config reference lacks: {missing}"

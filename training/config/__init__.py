"""The one configuration object shared by the command line and the GUI.

A tree of dataclasses, one per section, serialized as JSON. ``from_dict`` rejects
unknown keys and invalid values with a message that names the key, the value received
and what is allowed, in the style of Keras's own argument checks:

    `data.batch_size` must be an integer >= 1. Received: data.batch_size=0

Every key is documented in README.md ("Config reference"); ``tests/test_config.py``
checks that the README lists every key this module defines.

A config file is read with ``training.files.read_text``: regular files only (a FIFO or
``/dev/zero`` would block or never end) and at most ``MAX_CONFIG_BYTES``. A config is a
few kB, so 1 MB leaves room for any hand-written one and refuses everything else before
it is parsed. Every failure to read, decode or parse it is a ``ConfigError``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.files import FileReadError, parse_json, read_text

SCHEMA_VERSION = 1

# A config is a few kB (the complete default config is about 2 kB).
MAX_CONFIG_BYTES = 1024**2

# numpy's and TensorFlow's seeds are unsigned 32-bit integers.
MAX_SEED = 2**32 - 1

# The weights between two consecutive hidden layers of the head: 8192 x 8192 is far beyond
# any useful head and still fits in about 1 GB (float32 weights, gradients and Adam's two
# slots); 65536 x 65536, which each size alone allows, would need 69 GB when the model is built.
MAX_HEAD_LAYER_WEIGHTS = 8192 * 8192

BUILTIN_SAMPLE = "builtin:shapes"

BACKBONES = (
    "SmallCNN",
    "MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3",
    "EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
    "EfficientNetV2S", "EfficientNetV2M", "EfficientNetV2L",
    "ResNet50", "ResNet101", "ResNet152",
    "ResNet50V2", "ResNet101V2", "ResNet152V2",
    "DenseNet121", "DenseNet169", "DenseNet201",
    "InceptionV3", "InceptionResNetV2", "Xception",
    "VGG16", "VGG19",
    "ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge",
    "NASNetMobile", "NASNetLarge",
)
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adamw", "nadam", "adadelta")
SCHEDULES = (
    "constant", "step", "exponential", "inverse_time", "cosine", "cosine_restarts",
    "cyclic", "one_cycle", "reduce_on_plateau",
)
ACTIVATIONS = ("relu", "gelu", "swish", "elu", "selu", "tanh", "leaky_relu")
INITIALIZERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal")
MONITORS = ("val_loss", "val_accuracy")


class ConfigError(ValueError):
    """A config value or key is invalid; the message says which and what is allowed."""


@dataclass
class DataConfig:
    dir: str = BUILTIN_SAMPLE
    validation_split: float = 0.2
    validation_dir: str | None = None
    image_size: int | None = 128
    batch_size: int = 32
    seed: int = 1337
    class_weight: str = "none"


@dataclass
class HeadConfig:
    hidden_units: list[int] = field(default_factory=list)
    activation: str = "relu"
    dropout: float = 0.2
    batch_norm: bool = False
    kernel_initializer: str = "glorot_uniform"


@dataclass
class ModelConfig:
    backbone: str = "MobileNetV2"
    weights: str = "imagenet"
    head: HeadConfig = field(default_factory=HeadConfig)
    batch_norm_momentum: float | None = None


@dataclass
class RegularizationConfig:
    l1: float = 0.0
    l2: float = 0.0
    max_norm: float = 0.0
    label_smoothing: float = 0.0


@dataclass
class AugmentationConfig:
    horizontal_flip: bool = True
    vertical_flip: bool = False
    rotation: float = 0.05
    zoom: float = 0.1
    translation: float = 0.1
    random_crop: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    gaussian_noise: float = 0.0
    cutout: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    randaugment: float = 0.0


@dataclass
class OptimizerConfig:
    name: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    amsgrad: bool = False
    weight_decay: float = 0.0
    clipnorm: float = 0.0
    clipvalue: float = 0.0
    ema: bool = False
    ema_momentum: float = 0.99


@dataclass
class ScheduleConfig:
    name: str = "constant"
    warmup_epochs: float = 0.0
    step_epochs: float = 3.0
    decay_rate: float = 0.5
    min_learning_rate: float = 0.0
    restart_epochs: float = 2.0
    restart_t_mul: float = 2.0
    restart_m_mul: float = 1.0
    cycle_epochs: float = 2.0
    one_cycle_warmup_fraction: float = 0.3
    plateau_patience: int = 2


@dataclass
class EarlyStoppingConfig:
    patience: int = 0
    restore_best: bool = True


@dataclass
class TrainingConfig:
    head_epochs: int = 5
    fine_tune_epochs: int = 5
    fine_tune_layers: int | str = 30
    fine_tune_learning_rate: float | None = None
    monitor: str = "val_loss"
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    seed: int = 1337


@dataclass
class Config:
    schema_version: int = SCHEMA_VERSION
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    # -- serialization -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Builds and validates a config; missing keys take their defaults.

        Raises:
            ConfigError: an unknown key, a value of the wrong type, or one out of range.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"A config must be a JSON object. Received: {type(data).__name__}")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"`schema_version` {version!r} is not supported; this version of the app "
                f"reads schema_version {SCHEMA_VERSION}."
            )
        try:
            config = _build(cls, data, "")
            validate(config)
        except RecursionError:  # a value nested thousands deep, built by hand
            raise ConfigError("The config holds a value nested too deeply to be a setting; "
                              "every setting is a number, a string, or a list of numbers.") from None
        return config

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Config:
        """Parses and validates a config's JSON text.

        Raises:
            ConfigError: not JSON, nested too deeply, or an invalid config.
        """
        try:
            data = parse_json(text, what="config")
        except FileReadError as error:
            raise ConfigError(str(error)) from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        """Reads a config file: a regular UTF-8 file of at most ``MAX_CONFIG_BYTES``.

        Raises:
            ConfigError: the file cannot be read (missing, a folder, a FIFO or device, too
                large, not UTF-8), is not JSON, or holds an invalid config; the message
                names the file.
        """
        try:
            text = read_text(path, max_bytes=MAX_CONFIG_BYTES, what="config file")
        except FileReadError as error:
            raise ConfigError(str(error)) from None
        try:
            return cls.from_json(text)
        except ConfigError as error:
            raise ConfigError(f"{_short_path(path)}: {error}") from None

    def copy(self) -> Config:
        return copy.deepcopy(self)

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """Returns a validated copy with dotted keys replaced, e.g. {"optimizer.name": "sgd"}."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            node = data
            parts = dotted.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"Unknown config key `{_shown_text(dotted)}`. {_known_keys_hint(node)}")
                node = node[part]
            if parts[-1] not in node:
                raise ConfigError(f"Unknown config key `{_shown_text(dotted)}`. {_known_keys_hint(node)}")
            node[parts[-1]] = value
        return Config.from_dict(data)


def default_config() -> Config:
    return Config()


def parse_override(text: str) -> tuple[str, Any]:
    """Parses a CLI ``--set section.key=value``; the value is JSON, or a plain string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"`--set` expects section.key=value. Received: {_shown(text)}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    except RecursionError:
        raise ConfigError(f"`--set {_shown_text(key.strip())}`: the value is nested too deeply "
                          "to be a setting.") from None
    except ValueError:  # Python reads integers of at most 4300 digits
        raise ConfigError(f"`--set {_shown_text(key.strip())}`: the value is a number too long to be "
                          "a setting (over 4300 digits).") from None
    return key.strip(), value


def all_keys(config: Config | None = None) -> list[str]:
    """Every dotted config key, in definition order (used by docs and tests)."""
    def walk(obj: Any, prefix: str) -> list[str]:
        keys = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            name = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                keys += walk(value, name + ".")
            else:
                keys.append(name)
        return keys
    return walk(config or Config(), "")


# -- showing received values ---------------------------------------------------------
def _bounded_repr() -> reprlib.Repr:
    shown = reprlib.Repr()
    shown.maxlevel, shown.maxlist, shown.maxdict, shown.maxtuple = 3, 8, 8, 8
    shown.maxstring, shown.maxother, shown.maxlong = 160, 160, 40
    return shown


_REPR = _bounded_repr()


def _shown_text(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else f"{text[:limit - 50]}...{text[-40:]} ({len(text)} characters)"


def _shown(value: Any, *, as_json: bool = False) -> str:
    """A received value as a message shows it, bounded in length and depth.

    A plain ``repr`` of a list nested 100,000 deep raises RecursionError, and a path of a
    megabyte would bury the message; both are shortened. ``as_json`` writes strings with
    double quotes and true/false/null, as in the config file.
    """
    if isinstance(value, str):
        text = _shown_text(value)
        return json.dumps(text) if as_json else repr(text)
    if as_json and (value is None or isinstance(value, (bool, float))):
        return json.dumps(value)
    return _REPR.repr(value)


def _short_path(path: str | os.PathLike) -> str:
    return _shown_text(os.fsdecode(path))


# -- building from plain data -----------------------------------------------------------
def _known_keys_hint(node: dict) -> str:
    return "Known keys here: " + ", ".join(sorted(node)) + "."


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        where = f"in `{prefix[:-1]}`" if prefix else "at the top level"
        raise ConfigError(
            f"Unknown config key `{prefix}{_shown_text(str(unknown[0]))}` {where}. "
            f"Allowed keys: {', '.join(fields)}."
        )
    kwargs = {}
    defaults = cls()
    for name, value in data.items():
        default = getattr(defaults, name)
        key = prefix + name
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"`{key}` must be an object with keys {', '.join(f.name for f in dataclasses.fields(default))}. "
                    f"Received: {key}={_shown(value)}"
                )
            kwargs[name] = _build(type(default), value, key + ".")
        else:
            kwargs[name] = _coerce(key, value, default, fields[name].type)
    return cls(**kwargs)


def _coerce(key: str, value: Any, default: Any, annotation: Any) -> Any:
    """Checks the JSON type of one leaf value against its field's type."""
    annotation = str(annotation)
    if value is None:
        if "None" in annotation:
            return None
        raise ConfigError(f"`{key}` must not be null. Received: {key}=null")
    if "bool" in annotation:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"`{key}` must be true or false. Received: {key}={_shown(value)}")
    if annotation.startswith("list"):
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return list(value)
        raise ConfigError(f"`{key}` must be a list of integers, e.g. [256, 128]. Received: {key}={_shown(value)}")
    if "int | str" in annotation:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            return value
        raise ConfigError(f"`{key}` must be an integer or \"all\". Received: {key}={_shown(value)}")
    if annotation.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"`{key}` must be an integer. Received: {key}={_shown(value)}")
    if annotation.startswith("float"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"`{key}` must be a finite number. Received: {key}={_shown(value)}")
            return float(value)
        raise ConfigError(f"`{key}` must be a number. Received: {key}={_shown(value)}")
    if annotation.startswith("str"):
        if isinstance(value, str):
            return value
        raise ConfigError(f"`{key}` must be a string. Received: {key}={_shown(value)}")
    return value


# -- value checks ---------------------------------------------------------------------
def _check(condition: bool, key: str, value: Any, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"`{key}` must be {allowed}. Received: {key}={_shown(value, as_json=True)}")


def _in_range(key: str, value: float, low: float, high: float, *, low_open: bool = False,
              high_open: bool = False) -> None:
    ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    _check(ok, key, value, f"in {left}{low}, {high}{right}")


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, key, value, "one of " + ", ".join(repr(c) for c in choices))


def _path_text(key: str, value: str) -> None:
    # The operating system cannot take a NUL byte in a path: every file call would raise.
    _check("\x00" not in value, key, value, "a path without NUL characters")


def _seed(key: str, value: int) -> None:
    _check(0 <= value <= MAX_SEED, key, value, f"an integer in [0, {MAX_SEED}] (2**32 - 1)")


def _head_sizes(hidden_units: list[int]) -> None:
    for i, units in enumerate(hidden_units):
        _in_range(f"model.head.hidden_units[{i}]", units, 1, 65536)
    for i, (units_in, units_out) in enumerate(zip(hidden_units, hidden_units[1:])):
        _check(units_in * units_out <= MAX_HEAD_LAYER_WEIGHTS, "model.head.hidden_units", hidden_units,
               f"layers whose consecutive sizes multiply to at most {MAX_HEAD_LAYER_WEIGHTS:,} weights "
               f"(layers {i + 1} and {i + 2} would need {units_in * units_out:,}, gigabytes of memory)")


def validate(config: Config) -> None:
    """Checks every value's range and the combinations that cannot work together.

    Raises:
        ConfigError: naming the first invalid key, the value received and what is allowed.
    """
    d = config.data
    _check(bool(d.dir.strip()), "data.dir", d.dir, "a folder path or \"builtin:shapes\"")
    _path_text("data.dir", d.dir)
    if d.validation_dir is not None:
        _path_text("data.validation_dir", d.validation_dir)
    _in_range("data.validation_split", d.validation_split, 0.0, 0.9)
    if d.validation_dir is None or not d.validation_dir.strip():
        _check(d.validation_split > 0, "data.validation_split", d.validation_split,
               "> 0 when no `data.validation_dir` is given (the best model is chosen on validation data)")
    if d.image_size is not None:
        _in_range("data.image_size", d.image_size, 32, 1024)
    _in_range("data.batch_size", d.batch_size, 1, 4096)
    _choice("data.class_weight", d.class_weight, ("none", "balanced"))
    _seed("data.seed", d.seed)

    m = config.model
    _choice("model.backbone", m.backbone, BACKBONES)
    _check(m.weights in ("imagenet", "none") or m.weights.endswith((".h5", ".weights.h5", ".keras")),
           "model.weights", m.weights,
           "\"imagenet\", \"none\", or the path of a weights file ending in .h5, .weights.h5 or .keras")
    if m.backbone == "SmallCNN":
        _check(m.weights != "imagenet", "model.weights", m.weights,
               "\"none\" or a weights file for the SmallCNN backbone (it has no ImageNet weights)")
    _path_text("model.weights", m.weights)
    _head_sizes(m.head.hidden_units)
    _choice("model.head.activation", m.head.activation, ACTIVATIONS)
    _in_range("model.head.dropout", m.head.dropout, 0.0, 1.0, high_open=True)
    _choice("model.head.kernel_initializer", m.head.kernel_initializer, INITIALIZERS)
    if m.batch_norm_momentum is not None:
        _in_range("model.batch_norm_momentum", m.batch_norm_momentum, 0.0, 1.0, high_open=True)

    r = config.regularization
    _in_range("regularization.l1", r.l1, 0.0, 1.0)
    _in_range("regularization.l2", r.l2, 0.0, 1.0)
    _in_range("regularization.max_norm", r.max_norm, 0.0, 1e6)
    _in_range("regularization.label_smoothing", r.label_smoothing, 0.0, 0.5)

    a = config.augmentation
    for name, high in (("rotation", 0.5), ("zoom", 0.9), ("translation", 0.5), ("random_crop", 0.5),
                       ("brightness", 1.0), ("contrast", 1.0), ("saturation", 1.0), ("hue", 0.5),
                       ("gaussian_noise", 0.5), ("cutout", 0.5), ("mixup", 1.0), ("cutmix", 1.0),
                       ("randaugment", 1.0)):
        _in_range(f"augmentation.{name}", getattr(a, name), 0.0, high)

    o = config.optimizer
    _choice("optimizer.name", o.name, OPTIMIZERS)
    _in_range("optimizer.learning_rate", o.learning_rate, 0.0, 10.0, low_open=True)
    _in_range("optimizer.momentum", o.momentum, 0.0, 1.0, high_open=True)
    _in_range("optimizer.weight_decay", o.weight_decay, 0.0, 1.0)
    _in_range("optimizer.clipnorm", o.clipnorm, 0.0, 1e6)
    _in_range("optimizer.clipvalue", o.clipvalue, 0.0, 1e6)
    _check(not (o.clipnorm and o.clipvalue), "optimizer.clipvalue", o.clipvalue,
           "0 when `optimizer.clipnorm` is set (clip by norm or by value, not both)")
    _in_range("optimizer.ema_momentum", o.ema_momentum, 0.0, 1.0, high_open=True)
    _check(not o.nesterov or o.name == "sgd", "optimizer.nesterov", o.nesterov,
           "false unless `optimizer.name` is \"sgd\" (Nesterov momentum is an SGD option)")
    _check(not o.amsgrad or o.name in ("adam", "adamw"), "optimizer.amsgrad", o.amsgrad,
           "false unless `optimizer.name` is \"adam\" or \"adamw\"")

    s = config.schedule
    _choice("schedule.name", s.name, SCHEDULES)
    _in_range("schedule.warmup_epochs", s.warmup_epochs, 0.0, 1000.0)
    _in_range("schedule.step_epochs", s.step_epochs, 0.0, 1000.0, low_open=True)
    _in_range("schedule.decay_rate", s.decay_rate, 0.0, 1.0, low_open=True)
    _in_range("schedule.min_learning_rate", s.min_learning_rate, 0.0, o.learning_rate)
    _in_range("schedule.restart_epochs", s.restart_epochs, 0.0, 1000.0, low_open=True)
    _in_range("schedule.restart_t_mul", s.restart_t_mul, 1.0, 10.0)
    _in_range("schedule.restart_m_mul", s.restart_m_mul, 0.0, 1.0, low_open=True)
    _in_range("schedule.cycle_epochs", s.cycle_epochs, 0.0, 1000.0, low_open=True)
    _in_range("schedule.one_cycle_warmup_fraction", s.one_cycle_warmup_fraction, 0.0, 1.0,
              low_open=True, high_open=True)
    _in_range("schedule.plateau_patience", s.plateau_patience, 0, 1000)

    t = config.training
    _in_range("training.head_epochs", t.head_epochs, 0, 10000)
    _in_range("training.fine_tune_epochs", t.fine_tune_epochs, 0, 10000)
    _check(t.head_epochs + t.fine_tune_epochs > 0, "training.head_epochs", t.head_epochs,
           "> 0, or `training.fine_tune_epochs` > 0 (there must be something to train)")
    if isinstance(t.fine_tune_layers, str):
        _check(t.fine_tune_layers == "all", "training.fine_tune_layers", t.fine_tune_layers,
               "an integer >= 0 or \"all\"")
    else:
        _in_range("training.fine_tune_layers", t.fine_tune_layers, 0, 100000)
    if t.fine_tune_learning_rate is not None:
        _in_range("training.fine_tune_learning_rate", t.fine_tune_learning_rate, 0.0, 10.0,
                  low_open=True)
    _choice("training.monitor", t.monitor, MONITORS)
    _in_range("training.early_stopping.patience", t.early_stopping.patience, 0, 10000)
    _seed("training.seed", t.seed)

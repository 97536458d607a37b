"""The one configuration object shared by the command line and the GUI.

A tree of dataclasses, one per section, serialized as JSON. Every setting is declared once,
as a ``knob(...)`` row in ``schema`` (type, default, range or choices, what null and 0 mean,
label, unit, help); validation, the window's controls, ``config --default`` and the
README's config reference are derived from those rows. ``from_dict`` rejects unknown keys
and invalid values with a message that names the key, the value received and what is
allowed, in the style of Keras's own argument checks:

    `data.batch_size` must be an integer in [1, 4096]. Received: data.batch_size=0

Rooms: ``knobs`` (the row type), ``schema`` (the sections and their rows), ``document``
(the root ``Config`` and JSON), ``validate`` (the checks), ``reference`` (the README's
config reference, ``python -m training.config.reference --write README.md``).
"""

from __future__ import annotations

from training.config.document import (
    MAX_CONFIG_BYTES,
    Config,
    all_keys,
    default_config,
    knob_of,
    knob_table,
    parse_override,
)
from training.config.errors import ConfigError
from training.config.knobs import Knob, Leaf
from training.config.modes import resolve_mode, training_mode
from training.config.schema import (
    ACTIVATIONS,
    BACKBONES,
    BUILTIN_SAMPLE,
    CLASS_WEIGHTS,
    INITIALIZERS,
    MAX_HEAD_LAYER_WEIGHTS,
    MAX_SEED,
    MONITORS,
    OPTIMIZERS,
    SCHEDULES,
    SCHEMA_VERSION,
    TRAINING_MODES,
    AugmentationConfig,
    DataConfig,
    EarlyStoppingConfig,
    HeadConfig,
    ModelConfig,
    OptimizerConfig,
    RegularizationConfig,
    ScheduleConfig,
    TrainingConfig,
)
from training.config.validate import validate

__all__ = [
    "ACTIVATIONS", "BACKBONES", "BUILTIN_SAMPLE", "CLASS_WEIGHTS", "INITIALIZERS", "MAX_CONFIG_BYTES",
    "MAX_HEAD_LAYER_WEIGHTS", "MAX_SEED", "MONITORS", "OPTIMIZERS", "SCHEDULES", "SCHEMA_VERSION",
    "TRAINING_MODES",
    "AugmentationConfig", "Config", "ConfigError", "DataConfig", "EarlyStoppingConfig", "HeadConfig",
    "Knob", "Leaf", "ModelConfig", "OptimizerConfig", "RegularizationConfig", "ScheduleConfig",
    "TrainingConfig", "all_keys", "default_config", "knob_of", "knob_table", "parse_override", "validate",
    "resolve_mode", "training_mode",
]

"""Checks a config's values: ranges and choices from the knob table, then the rules that
tie several keys together (written by hand, one function each).

Every refusal is a ``ConfigError`` in the style of Keras's own argument checks:

    `data.batch_size` must be an integer in [1, 4096]. Received: data.batch_size=0
"""

from __future__ import annotations

import json
from typing import Any

from training.config.errors import check
from training.config.knobs import Leaf, compact_number, leaves
from training.config.schema import (
    BUILTIN_SAMPLE,
    MAX_EPOCHS,
    MAX_HEAD_LAYER_WEIGHTS,
    MAX_HELD_OUT,
    NO_IMAGENET_WEIGHTS,
)

# The rules take the root ``training.config.Config`` (typed ``Any``: that module imports this one).
Config = Any

WEIGHTS_FILE_ENDINGS = (".h5", ".weights.h5", ".keras")


def validate(config: Config) -> None:
    """Checks every value's range or choice, then the combinations that cannot work together.

    Raises:
        ConfigError: naming the first invalid key, the value received and what is allowed.
    """
    for leaf in leaves(config):
        own_rule = RANGE_RULES.get(leaf.key)
        if own_rule is not None:
            own_rule(config)
        else:
            check_leaf(leaf)
    for rule in CROSS_RULES:
        rule(config)


# -- derived from the knob table -------------------------------------------------------------
def check_leaf(leaf: Leaf) -> None:
    """The range or choice of one setting, as its ``Knob`` declares it."""
    value, row = leaf.value, leaf.knob
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_number(f"{leaf.key}[{index}]", item, leaf)
    elif isinstance(value, str):
        if row.widget == "layers":
            words = " or ".join(json.dumps(choice) for choice in row.choices)
            check(value in row.choices, leaf.key, value,
                  f"an integer >= {compact_number(row.minimum)} or {words}")
        elif row.choices:
            check(value in row.choices, leaf.key, value, "one of " + ", ".join(repr(c) for c in row.choices))
    else:
        _check_number(leaf.key, value, leaf)


def _check_number(key: str, value: Any, leaf: Leaf) -> None:
    row = leaf.knob
    if not row.has_range:
        return
    if leaf.integer:
        check(row.allows(value), key, value, f"an integer in {row.range_text(integer=True)}")
    else:
        check(row.allows(value), key, value, f"in {row.range_text()}")


# -- rules between keys, and text rules ---------------------------------------------------------
def _path_text(key: str, value: str | None) -> None:
    # The operating system cannot take a NUL byte in a path: every file call would raise.
    if value is not None:
        check("\x00" not in value, key, value, "a path without NUL characters")


def _data_folders(config: Config) -> None:
    d = config.data
    check(bool(d.dir.strip()), "data.dir", d.dir, f"a folder path or \"{BUILTIN_SAMPLE}\"")
    _path_text("data.dir", d.dir)
    _path_text("data.validation_dir", d.validation_dir)
    _path_text("data.test_dir", d.test_dir)
    if _blank(d.validation_dir):
        check(d.validation_split > 0, "data.validation_split", d.validation_split,
              "> 0 when no `data.validation_dir` is given (the best model is chosen on validation data)")


def _test_set(config: Config) -> None:
    d = config.data
    if not _blank(d.test_dir):
        check(d.test_split == 0, "data.test_split", d.test_split,
              "0 when `data.test_dir` is given (the test set is either held out of `data.dir` or a folder "
              "of its own): set `data.test_split` to 0 or clear `data.test_dir`")
    elif _blank(d.validation_dir):
        room = MAX_HELD_OUT - d.validation_split
        # A tolerance, so that e.g. 0.1 + 0.8 (0.9000000000000001 in binary) passes.
        check(d.test_split <= room + 1e-9, "data.test_split", d.test_split,
              f"at most {room:.4g} when `data.validation_split` is {d.validation_split} (together they "
              f"may hold out at most {MAX_HELD_OUT:.0%} of each class, so that images are left to train on); "
              "lower `data.test_split` or `data.validation_split`")


def _blank(folder: str | None) -> bool:
    """A blank folder setting ("" in a hand-written config) means none, as null does."""
    return folder is None or not folder.strip()


def _weights(config: Config) -> None:
    m = config.model
    check(m.weights in ("imagenet", "none") or m.weights.endswith(WEIGHTS_FILE_ENDINGS),
          "model.weights", m.weights,
          "\"imagenet\", \"none\", or the path of a weights file ending in .h5, .weights.h5 or .keras")
    if m.backbone in NO_IMAGENET_WEIGHTS:
        check(m.weights != "imagenet", "model.weights", m.weights,
              f"\"none\" or a weights file for the {m.backbone} backbone (it has no ImageNet weights)")
    _path_text("model.weights", m.weights)


def _head_size(config: Config) -> None:
    units = config.model.head.hidden_units
    for i, (units_in, units_out) in enumerate(zip(units, units[1:])):
        check(units_in * units_out <= MAX_HEAD_LAYER_WEIGHTS, "model.head.hidden_units", units,
              f"layers whose consecutive sizes multiply to at most {MAX_HEAD_LAYER_WEIGHTS:,} weights "
              f"(layers {i + 1} and {i + 2} would need {units_in * units_out:,}, gigabytes of memory)")


def _optimizer_options(config: Config) -> None:
    o = config.optimizer
    check(not (o.clipnorm and o.clipvalue), "optimizer.clipvalue", o.clipvalue,
          "0 when `optimizer.clipnorm` is set (clip by norm or by value, not both)")
    check(not o.nesterov or o.name == "sgd", "optimizer.nesterov", o.nesterov,
          "false unless `optimizer.name` is \"sgd\" (Nesterov momentum is an SGD option)")
    check(not o.amsgrad or o.name in ("adam", "adamw"), "optimizer.amsgrad", o.amsgrad,
          "false unless `optimizer.name` is \"adam\" or \"adamw\"")


def _minimum_rate(config: Config) -> None:
    rate, floor = config.optimizer.learning_rate, config.schedule.min_learning_rate
    check(0.0 <= floor <= rate, "schedule.min_learning_rate", floor, f"in [0.0, {rate}]")


def _something_to_train(config: Config) -> None:
    t = config.training
    check(t.head_epochs + t.fine_tune_epochs > 0, "training.head_epochs", t.head_epochs,
          "> 0, or `training.fine_tune_epochs` > 0 (there must be something to train)")
    if t.mode == "head_only":
        check(t.head_epochs > 0, "training.head_epochs", t.head_epochs,
              "> 0 when `training.mode` is \"head_only\" (the head phase is all that trains)")
    if t.mode == "from_scratch":
        check(config.model.weights == "none", "training.mode", t.mode,
              "\"auto\", \"fine_tune\" or \"head_only\" when `model.weights` is not \"none\" "
              "(from scratch starts from random weights); or set `model.weights` to \"none\"")
        check(t.head_epochs + t.fine_tune_epochs <= MAX_EPOCHS, "training.fine_tune_epochs",
              t.fine_tune_epochs, f"at most {MAX_EPOCHS} together with `training.head_epochs` "
              "(from scratch trains them as one phase)")


# Keys whose range ends at another key's value: their rule replaces the table's range check
# (the table's range is the widest one, for the window's control), so the message names the
# range that applies.
RANGE_RULES = {"schedule.min_learning_rate": _minimum_rate}
CROSS_RULES = (_data_folders, _test_set, _weights, _head_size, _optimizer_options, _something_to_train)

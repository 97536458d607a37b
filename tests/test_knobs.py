"""The knob table: every setting declared once, and validation, defaults and the README's
config reference derived from it. No Qt here; ``tests/test_gui_knobs.py`` puts the same edge
values through the main window."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from training.cli.main import main as cli_main
from training.config import (
    BACKBONES,
    Config,
    ConfigError,
    Leaf,
    knob_table,
)
from training.config.knobs import WIDGETS
from training.config.reference import BEGIN, END, config_reference
from training.config.reference import main as reference_main
from training.config.schema import NO_IMAGENET_WEIGHTS

ROOT = Path(__file__).resolve().parent.parent
NUMBER_WIDGETS = ("number", "log", "integer", "strength")
# Odd values a person or a tool writes: tiny, a float with no short binary form, just below 1.
ODD_FLOATS = (5e-9, 0.0123, 0.9995, 0.1 + 0.2, 1 / 3, 123.456, 5e-324, 1e-300)
ODD_INTEGERS = (7, 2**31 - 1, 2**31, 2**32 - 1)


def numeric(leaf: Leaf) -> bool:
    return leaf.knob.has_range and leaf.knob.widget in NUMBER_WIDGETS


def just_inside(leaf: Leaf) -> tuple[float, float]:
    """The lowest and highest legal values: the ends, or the next number inside an open end."""
    row = leaf.knob
    if leaf.integer:
        return int(row.minimum) + row.minimum_open, int(row.maximum) - row.maximum_open
    low = math.nextafter(row.minimum, math.inf) if row.minimum_open else float(row.minimum)
    high = math.nextafter(row.maximum, -math.inf) if row.maximum_open else float(row.maximum)
    return low, high


def just_outside(leaf: Leaf) -> tuple[float, float]:
    row = leaf.knob
    if leaf.integer:
        return int(row.minimum) - (not row.minimum_open), int(row.maximum) + (not row.maximum_open)
    low = float(row.minimum) if row.minimum_open else math.nextafter(row.minimum, -math.inf)
    high = float(row.maximum) if row.maximum_open else math.nextafter(row.maximum, math.inf)
    return low, high


def edge_values(leaf: Leaf) -> list[Any]:
    """Every choice of a choice key; the ends, the values next to them and odd values of a
    number key; both states of a switch; a few shapes of the other keys."""
    row = leaf.knob
    if row.widget == "switch":
        return [True, False]
    if row.widget == "layers":
        return ["all", 0, 1, 99999, 100000, 30]
    if row.widget == "int_list":
        return [[], [1], [65536], [8192, 8192], [1, 65536, 1], [256, 128]]
    if row.choices:
        return list(row.choices)
    if row.widget == "weights":
        return ["imagenet", "none", "/models/w.weights.h5", " spaced name.keras", "ünïcode.h5"]
    if row.widget == "folder":
        return ([None] if leaf.optional else []) + ["/data/val", " val ", "ünïcode folder"]
    low, high = just_inside(leaf)
    values = [low, high]
    if leaf.integer:
        values += [low + 1, high - 1, *ODD_INTEGERS]
    else:
        values += [math.nextafter(low, math.inf), math.nextafter(high, -math.inf), *ODD_FLOATS]
    legal = [v for v in values if row.allows(v)]
    legal = list(dict.fromkeys(legal))  # in order, once each
    return legal + ([None] if leaf.optional else [])


def overrides_for(key: str, value: Any) -> dict[str, Any]:
    """``{key: value}`` plus only what the cross-field rules demand for that value."""
    overrides = {key: value}
    if key == "optimizer.nesterov" and value:
        overrides["optimizer.name"] = "sgd"
    elif key == "optimizer.amsgrad" and value:
        overrides["optimizer.name"] = "adam"
    elif key == "schedule.min_learning_rate":
        overrides["optimizer.learning_rate"] = max(value, Config().optimizer.learning_rate)
    elif key == "data.validation_split" and value == 0:
        overrides["data.validation_dir"] = "/data/val"
    elif key == "model.backbone" and value in NO_IMAGENET_WEIGHTS:
        overrides["model.weights"] = "none"
    elif key == "training.mode" and value == "from_scratch":
        overrides["model.weights"] = "none"
    return overrides


def edge_configs(base: Config) -> Iterator[tuple[str, Any, Config]]:
    """``(key, value, config)`` for every edge value of every key except ``data.dir`` (the
    window scans it) and ``schema_version``: ``base`` with that one key changed."""
    for key, leaf in knob_table().items():
        if key in ("data.dir", "schema_version"):
            continue
        for value in edge_values(leaf):
            yield key, value, base.with_overrides(overrides_for(key, value))


# -- the table ---------------------------------------------------------------------------------
def test_every_key_has_one_complete_row():
    table = knob_table()
    assert list(table) == [leaf.key for leaf in table.values()]
    labels = [leaf.knob.caption for leaf in table.values() if leaf.knob.widget != "none"]
    assert len(labels) == len(set(labels)), "two controls would carry the same label"
    for key, leaf in table.items():
        row = leaf.knob
        assert row.widget in WIDGETS and row.help and not row.help.endswith("."), key
        if row.widget == "none":  # schema_version: checked on its own, never shown
            continue
        assert row.label, key
        assert bool(row.none_text) == leaf.optional, f"{key}: none_text says what null means, iff null is allowed"
        if leaf.annotation in ("float", "int", "float | None", "int | None", "list[int]", "int | str"):
            assert row.has_range, f"{key} is a number without a range"
            if isinstance(leaf.value, (int, float)):
                assert row.allows(leaf.value), key
        if row.widget == "choice":
            assert leaf.value in row.choices
        if row.widget == "switch":
            assert leaf.annotation == "bool" and (row.switch_text or key.startswith("augmentation."))
        if row.widget == "strength":
            assert row.typical is not None and row.allows(row.typical) and row.zero_text


def test_backbone_choices_are_the_registry(monkeypatch):
    # Loaded by path: importing anything under models/ runs models/__init__.py, which
    # imports Keras; the registry itself needs nothing.
    spec = importlib.util.spec_from_file_location("registry_only", ROOT / "models" / "registry.py")
    registry = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, registry)  # dataclasses look their module up
    spec.loader.exec_module(registry)
    specs = registry.backbone_specs()
    assert BACKBONES == tuple(s.name for s in specs)
    assert NO_IMAGENET_WEIGHTS == tuple(s.name for s in specs if not s.has_imagenet)


def test_config_default_is_the_table_of_defaults(capsys):
    assert cli_main(["config", "--default"]) == 0
    printed = json.loads(capsys.readouterr().out)
    for key, leaf in knob_table().items():
        node = printed
        for part in key.split("."):
            node = node[part]
        assert node == leaf.value and type(node) is type(json.loads(json.dumps(leaf.value))), key


# -- validation derived from the table ---------------------------------------------------------
def test_every_edge_value_is_accepted_exactly():
    checked = 0
    for key, value, config in edge_configs(Config()):
        node: Any = config
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value and type(node) is type(value), (key, value, node)
        assert Config.from_json(config.to_json()) == config
        checked += 1
    assert checked > 400


@pytest.mark.parametrize("key", [k for k, leaf in knob_table().items() if numeric(leaf)])
def test_numbers_just_outside_the_declared_range_are_refused(key):
    leaf = knob_table()[key]
    allowed = (f"an integer in {leaf.knob.range_text(integer=True)}" if leaf.integer
               else f"in {leaf.knob.range_text()}")
    for value in just_outside(leaf):
        overrides = overrides_for(key, value)
        if key == "schedule.min_learning_rate":
            overrides["optimizer.learning_rate"] = 10.0  # its range ends at the learning rate
        with pytest.raises(ConfigError) as info:
            Config().with_overrides(overrides)
        assert str(info.value) == f"`{key}` must be {allowed}. Received: {key}={json.dumps(value)}"


@pytest.mark.parametrize("key", [k for k, leaf in knob_table().items() if leaf.knob.choices])
def test_values_outside_the_declared_choices_are_refused(key):
    leaf = knob_table()[key]
    with pytest.raises(ConfigError) as info:
        Config().with_overrides({key: "nonsense"})
    allowed = ("an integer >= 0 or \"all\"" if leaf.knob.widget == "layers"
               else "one of " + ", ".join(repr(choice) for choice in leaf.knob.choices))
    assert str(info.value) == f"`{key}` must be {allowed}. Received: {key}=\"nonsense\""


def test_cross_field_rules_still_refuse_what_they_refused():
    refused = [
        {"optimizer.clipnorm": 1.0, "optimizer.clipvalue": 1.0},
        {"optimizer.nesterov": True, "optimizer.name": "adam"},
        {"optimizer.amsgrad": True, "optimizer.name": "sgd"},
        {"schedule.min_learning_rate": 0.01, "optimizer.learning_rate": 0.001},
        {"data.validation_split": 0.0},
        {"training.head_epochs": 0, "training.fine_tune_epochs": 0},
        {"model.backbone": "SmallCNN", "model.weights": "imagenet"},
        {"model.head.hidden_units": [65536, 65536]},
        {"data.dir": "  "},
        {"model.weights": "a\x00.keras"},
    ]
    for overrides in refused:
        with pytest.raises(ConfigError, match=r"must be .* Received: "):
            Config().with_overrides(overrides)


# -- the README's config reference ----------------------------------------------------------------
def test_readme_config_reference_is_generated_from_the_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert BEGIN in readme and END in readme, "README.md lacks the config-reference markers"
    written = readme[readme.index(BEGIN) + len(BEGIN):readme.index(END)].strip("\n")
    assert written == config_reference().strip("\n"), (
        "README.md's config reference is stale: run python -m training.config.reference --write README.md")
    for key, leaf in knob_table().items():
        assert f"| `{key}` | `{json.dumps(leaf.value)}` |" in written
        assert leaf.knob.help.replace("|", "\\|") in written


def test_reference_tool_writes_between_the_markers_and_checks(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{BEGIN}\nold table\n{END}\nafter\n", encoding="utf-8")
    assert reference_main(["--check", str(readme)]) == 1
    assert reference_main(["--write", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    assert "old table" not in text and "`optimizer.learning_rate`" in text
    assert reference_main(["--check", str(readme)]) == 0
    (tmp_path / "plain.md").write_text("no markers", encoding="utf-8")
    assert reference_main(["--write", str(tmp_path / "plain.md")]) == 2

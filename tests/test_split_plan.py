"""One split planner (issue 9): the counts the window plans are the engine's own.

Each row builds a real tiny folder, runs the engine's ``prepare_data`` (TensorFlow builds
the pipelines; nothing is trained) and the window's path, ``training.api.plan_split`` on a
``scan_folder`` result, and compares them class by class.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from training import api
from training.config import DataConfig
from training.data.errors import DataError
from training.data.pipeline import prepare_data

ROOT = Path(__file__).resolve().parents[1]
COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 220), (200, 200, 40), (200, 40, 200), (40, 200, 200)]


def make_folder(root: Path, counts: list[int]) -> Path:
    """``root/class_<i>/<n>.png``: ``counts[i]`` small images in class i."""
    for index, count in enumerate(counts):
        folder = root / f"class_{index}"
        folder.mkdir(parents=True)
        for n in range(count):
            Image.new("RGB", (8, 8), COLOURS[index % len(COLOURS)]).save(folder / f"{n}.png")
    return root


SHAPES = {
    "balanced": [10, 10, 10],
    "issue: 5 classes x 5 images": [5, 5, 5, 5, 5],
    "imbalanced": [17, 6, 3],
    "singletons": [1, 7, 1, 4],
    "2 classes x 2 images": [2, 2],
    "odd sizes": [9, 11, 13, 2],
}
SPLITS = [0.1, 0.2, 0.5, 0.9]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_planned_counts_equal_the_engines_for_every_folder_shape(tmp_path, shape, split):
    data = DataConfig(dir=str(make_folder(tmp_path / "data", SHAPES[shape])), validation_split=split,
                      batch_size=4, seed=3)

    engine = prepare_data(data, 16, seed=data.seed)
    plan = api.plan_split(api.scan_folder(data.dir), data)

    assert plan.train_counts == engine.train_counts
    assert plan.validation_counts == engine.validation_counts
    assert (plan.train_count, plan.validation_count) == (engine.train_count, engine.validation_count)
    assert plan.steps_per_epoch(data.batch_size) == engine.steps_per_epoch
    assert set(plan.warnings) <= set(engine.warnings)


def test_the_issues_case_plans_the_20_training_images_the_engine_uses(tmp_path):
    # The window used to plan total - round(total * split) = 23: the engine holds back at
    # least one image of every class, so 5 go to validation and 20 train.
    data = DataConfig(dir=str(make_folder(tmp_path / "data", [5] * 5)), validation_split=0.1, batch_size=4)

    plan = api.plan_split(api.scan_folder(data.dir), data)

    assert (plan.train_count, plan.validation_count) == (20, 5)
    assert plan.steps_per_epoch(4) == 5


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_a_validation_folder_is_planned_as_the_engine_reads_it(tmp_path, seed):
    train_dir = make_folder(tmp_path / "train", [6, 3, 8])
    validation_dir = make_folder(tmp_path / "validation", [2, 5, 1])
    data = DataConfig(dir=str(train_dir), validation_dir=str(validation_dir), validation_split=0.5,
                      batch_size=5, seed=seed)

    engine = prepare_data(data, 16, seed=data.seed)
    plan = api.plan_split(api.scan_folder(data.dir), data)

    assert plan.train_counts == engine.train_counts == {"class_0": 6, "class_1": 3, "class_2": 8}
    assert plan.validation_counts == engine.validation_counts == {"class_0": 2, "class_1": 5, "class_2": 1}
    assert plan.steps_per_epoch(5) == engine.steps_per_epoch == 4


def test_a_plan_the_engine_would_refuse_is_refused_with_its_message(tmp_path):
    data = DataConfig(dir=str(make_folder(tmp_path / "data", [1, 1, 1])), validation_split=0.2)
    scan = api.scan_folder(data.dir)

    with pytest.raises(DataError, match="No images are left for validation") as planned:
        api.plan_split(scan, data)
    with pytest.raises(DataError) as engine:
        prepare_data(data, 16, seed=data.seed)
    assert str(planned.value) == str(engine.value)


def test_the_window_can_import_the_planner_without_scikit_learn():
    # scikit-learn takes ~0.8 s to import: the window's process loads it only when it
    # first plans a split, off its GUI thread.
    code = ("import sys, gui.window, training.api; "
            "print(sorted(m for m in ('sklearn', 'scipy', 'tensorflow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

"""Which learning rate trains each phase, and why: ``training.fine_tune_learning_rate: null``
means a tenth of the head's rate only after a head phase on a pretrained backbone; from
scratch or with no head phase, the user's ``optimizer.learning_rate`` trains."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.helpers import make_tiny_dataset
from training.config import Config
from training.engine import recipe
from training.engine.recipe import PhasePlan, fine_tune_learning_rate, phase_learning_rate, phase_plan
from training.engine.run import run_training
from training.events import BatchEnd, PhaseChanged

QUIET = {"augmentation.horizontal_flip": False, "augmentation.rotation": 0.0,
         "augmentation.zoom": 0.0, "augmentation.translation": 0.0}


def small_config(data_dir: Path, **overrides) -> Config:
    return Config().with_overrides({
        "data.dir": str(data_dir), "model.backbone": "SmallCNN", "model.weights": "none",
        "data.image_size": 32, "data.batch_size": 8, **QUIET, **overrides})


def metrics_rates(run_dir: Path) -> list[tuple[str, float]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [(row["phase"], float(row["learning_rate"])) for row in csv.DictReader(handle)]


class Events(list):
    def of(self, kind):
        return [e for e in self if isinstance(e, kind)]


# -- the plan, without Keras ----------------------------------------------------------------
@pytest.mark.parametrize("overrides, expected", [
    ({"model.weights": "imagenet", "training.head_epochs": 5, "training.fine_tune_epochs": 5},
     [("head", 5, 1e-3, recipe.REASON_HEAD), ("fine_tune", 5, 1e-4, recipe.REASON_TENTH)]),
    ({"model.weights": "/models/pretrained.weights.h5", "training.head_epochs": 2,
      "training.fine_tune_epochs": 3},
     [("head", 2, 1e-3, recipe.REASON_HEAD), ("fine_tune", 3, 1e-4, recipe.REASON_TENTH)]),
    ({"model.weights": "none", "training.head_epochs": 0, "training.fine_tune_epochs": 12},
     [("fine_tune", 12, 1e-3, recipe.REASON_FROM_SCRATCH)]),
    ({"model.weights": "imagenet", "training.head_epochs": 0, "training.fine_tune_epochs": 4},
     [("fine_tune", 4, 1e-3, recipe.REASON_NO_HEAD_PHASE)]),
    # Random weights, automatic mode: from scratch, one phase of all the epochs.
    ({"model.weights": "none", "training.head_epochs": 3, "training.fine_tune_epochs": 3},
     [("fine_tune", 6, 1e-3, recipe.REASON_FROM_SCRATCH)]),
    # A frozen random backbone asked for explicitly still fine-tunes at the full rate.
    ({"model.weights": "none", "training.mode": "fine_tune", "training.head_epochs": 3,
      "training.fine_tune_epochs": 3},
     [("head", 3, 1e-3, recipe.REASON_HEAD), ("fine_tune", 3, 1e-3, recipe.REASON_FROM_SCRATCH)]),
    ({"model.weights": "imagenet", "training.fine_tune_learning_rate": 3e-4},
     [("head", 5, 1e-3, recipe.REASON_HEAD), ("fine_tune", 5, 3e-4, recipe.REASON_CONFIGURED)]),
    ({"model.weights": "imagenet", "training.head_epochs": 2, "training.fine_tune_epochs": 0},
     [("head", 2, 1e-3, recipe.REASON_HEAD)]),
])
def test_phase_plan_says_which_rate_each_phase_uses_and_why(overrides, expected):
    config = Config().with_overrides(overrides)
    plan = phase_plan(config)
    assert [(p.phase, p.epochs, p.reason) for p in plan] == [(e[0], e[1], e[3]) for e in expected]
    for step, (_, _, rate, _) in zip(plan, expected):
        assert step.learning_rate == pytest.approx(rate)
        assert phase_learning_rate(config, step.phase) == step.learning_rate
    fine_tune = [p for p in plan if p.phase == "fine_tune"]
    if fine_tune:
        assert fine_tune_learning_rate(config) == fine_tune[0].learning_rate


def test_the_planned_rate_curve_follows_the_plan():
    from training.engine.optim import planned_learning_rates

    scratch = Config().with_overrides({"model.weights": "none", "training.head_epochs": 0,
                                       "training.fine_tune_epochs": 2, "optimizer.learning_rate": 0.02})
    assert planned_learning_rates(scratch, 3) == {"fine_tune": pytest.approx([0.02] * 6)}
    pretrained = scratch.with_overrides({"model.weights": "imagenet", "training.head_epochs": 1})
    assert planned_learning_rates(pretrained, 3) == {"head": pytest.approx([0.02] * 3),
                                                     "fine_tune": pytest.approx([0.002] * 6)}


def test_describe_rate_names_the_rate_and_the_reason():
    plan = PhasePlan(phase="fine_tune", epochs=3, learning_rate=1e-4, reason=recipe.REASON_TENTH)
    assert plan.describe_rate() == ("0.0001 (a tenth of the head's rate, the usual recipe after a "
                                    "head phase on a pretrained backbone)")


# -- real tiny runs -------------------------------------------------------------------------
def test_from_scratch_without_head_phase_trains_at_the_users_rate(tmp_path):
    data = make_tiny_dataset(tmp_path, per_class=10, size=32)
    config = small_config(data, **{"training.head_epochs": 0, "training.fine_tune_epochs": 2,
                                   "training.fine_tune_layers": "all", "optimizer.learning_rate": 0.002})
    assert config.training.fine_tune_learning_rate is None
    events = Events()
    run_dir = tmp_path / "run"
    result = run_training(config, run_dir=run_dir, on_event=events.append)
    assert result.stop_reason == "completed", result.error

    phase, = events.of(PhaseChanged)
    assert phase.phase == "fine_tune" and phase.learning_rate == pytest.approx(0.002)
    assert f"at learning rate 0.002 ({recipe.REASON_FROM_SCRATCH})" in phase.description
    # The optimizer's own rate, read during fit, and the recorded epochs.
    batches = events.of(BatchEnd)
    assert batches and all(b.learning_rate == pytest.approx(0.002) for b in batches)
    assert metrics_rates(run_dir) == [("fine_tune", pytest.approx(0.002))] * 2
    # config.json records the rate that trained.
    assert Config.load(run_dir / "config.json").training.fine_tune_learning_rate == pytest.approx(0.002)


def test_pretrained_two_phase_run_still_fine_tunes_at_a_tenth(tmp_path):
    from models.backbones import build_backbone

    data = make_tiny_dataset(tmp_path, per_class=10, size=32)
    weights_file = tmp_path / "pretrained.weights.h5"
    build_backbone("SmallCNN", 32, "none").save_weights(weights_file)
    config = small_config(data, **{"model.weights": str(weights_file), "training.head_epochs": 1,
                                   "training.fine_tune_epochs": 1, "training.fine_tune_layers": 2,
                                   "optimizer.learning_rate": 0.01})
    events = Events()
    run_dir = tmp_path / "run"
    result = run_training(config, run_dir=run_dir, on_event=events.append)
    assert result.stop_reason == "completed", result.error

    head, fine_tune = events.of(PhaseChanged)
    assert head.learning_rate == pytest.approx(0.01) and fine_tune.learning_rate == pytest.approx(0.001)
    assert "a tenth of the head's rate" in fine_tune.description
    assert {(b.phase, round(b.learning_rate, 8)) for b in events.of(BatchEnd)} == {
        ("head", 0.01), ("fine_tune", 0.001)}
    assert metrics_rates(run_dir) == [("head", pytest.approx(0.01)), ("fine_tune", pytest.approx(0.001))]
    assert Config.load(run_dir / "config.json").training.fine_tune_learning_rate == pytest.approx(0.001)


def test_sanity_tools_train_at_the_rate_of_the_run(tmp_path):
    from training.engine.sanity import overfit_tiny_subset

    data = make_tiny_dataset(tmp_path, per_class=4, size=32)
    config = small_config(data, **{"training.head_epochs": 0, "training.fine_tune_epochs": 2,
                                   "training.fine_tune_layers": "all", "optimizer.learning_rate": 0.002})
    result = overfit_tiny_subset(config, images=6, max_epochs=1)
    assert result.learning_rate == pytest.approx(0.002)

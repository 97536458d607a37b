"""The scenario suite: real short runs through ``run_training`` on small synthetic data.

Each broken run raises the hint it is built for; the healthy runs raise no warning or
error. The scenarios are defined once, in ``benchmarks/diagnostics_scenarios.py``, which
also prints the numbers behind every threshold. The slow one (MobileNetV2 from scratch,
~40 s) runs only there.

Also here: the gradient probe on a real model, because it needs Keras.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from benchmarks.diagnostics_scenarios import SCENARIOS, Workspace, run_scenario
from training.config import Config
from training.diagnostics.gradients import GradientProbe
from training.diagnostics.monitor import Diagnostics
from training.engine.recipe import phase_learning_rate

# Run by their own test below (each also checks the hint said at start and from the curves).
TRAPS = ("frozen_random_head", "fine_tuned_on_a_frozen_random_head")
FAST = [name for name, scenario in SCENARIOS.items() if not scenario.slow and name not in TRAPS]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("scenarios"))


@pytest.mark.parametrize("name", FAST)
def test_scenario_raises_its_hint_and_only_valid_fixes(name, workspace):
    scenario = SCENARIOS[name]
    result = run_scenario(name, workspace)
    assert not result.error, result.error
    fired = result.hint_ids
    # A hint may be said once from the config at start and once from the curves.
    said = [(h.id, h.evidence.get("seen_in")) for h in result.hints]
    assert len(said) == len(set(said)), f"a hint fired twice: {said}"
    if scenario.expected:
        assert set(scenario.expected) <= set(fired), f"{name}: expected {scenario.expected}, got {fired}"
    else:
        assert result.alarms == [], f"{name} is healthy but raised {[h.id for h in result.alarms]}"
        assert result.stop_reason == "completed"
    if name == "lr_far_too_high":  # stopped within a few batches, before any epoch counted
        assert result.stop_reason == "diverged" and result.history == []
        hint = next(h for h in result.hints if h.id == "lr_too_high")
        assert hint.evidence["epoch"] == 1 and hint.evidence["batch"] <= 5
        # The fix sets the rate the phase really trains at (from scratch: optimizer.learning_rate).
        [fix] = hint.fixes
        assert phase_learning_rate(scenario.build(workspace).with_overrides(fix), "fine_tune") == 0.3
    config = scenario.build(workspace)
    for hint in result.hints:
        for fix in hint.fixes:
            config.with_overrides(fix)  # `training.mode: from_scratch` fits only configs without weights


# -- the trap of weights "none" with a pretrained mode (issue 10) ------------------------------
@pytest.mark.parametrize("name", list(TRAPS))
def test_a_frozen_random_backbone_is_blamed_not_the_learning_rate(name, workspace):
    from training.engine.recipe import frozen_random_backbone

    scenario = SCENARIOS[name]
    config = scenario.build(workspace)
    assert frozen_random_backbone(config)
    result = run_scenario(name, workspace)
    assert not result.error, result.error
    fired = result.hint_ids
    assert set(scenario.expected) <= set(fired) and "lr_too_low" not in fired, fired
    # At start from the config, and once more from the curves when they show it; others once.
    seen = [(h.id, h.evidence.get("seen_in")) for h in result.hints]
    assert len(seen) == len(set(seen)), seen
    for hint in result.hints:
        assert all(fix.get("optimizer.learning_rate", 0) <= config.optimizer.learning_rate
                   for fix in hint.fixes), hint
        for fix in hint.fixes:
            config.with_overrides(fix)
    frozen = {h.evidence["seen_in"]: h for h in result.hints if h.id == "frozen_random_backbone"}
    assert frozen["config"].fixes == [{"training.mode": "from_scratch"}]
    if name == "frozen_random_head":
        curves = frozen["curves"]
        assert curves.evidence["epochs"] == 3 and curves.evidence["loss"] == pytest.approx(math.log(3), abs=0.01)
        assert curves.fixes == [{"training.mode": "from_scratch"}]
    else:
        stuck = next(h for h in result.hints if h.id == "val_stuck_at_chance")
        assert stuck.evidence["phase"] == "fine_tune" and stuck.evidence["phase_epochs"] <= 3
        assert stuck.evidence["causes"][0] == "frozen_random_backbone"
        assert stuck.fixes[0] == {"training.mode": "from_scratch"}


# -- the gradient probe ---------------------------------------------------------------------
def _classifier(seed: int = 3):
    from models.classifier import build_classifier, unfreeze_top_layers

    config = Config().with_overrides({"model.backbone": "SmallCNN", "model.weights": "none",
                                      "model.head.dropout": 0.3})
    keras.utils.set_random_seed(seed)
    classifier = build_classifier(config.model, config.regularization, image_size=32, num_classes=3, seed=seed)
    unfreeze_top_layers(classifier.backbone, "all", train_batch_norm=True)
    classifier.model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.CategoricalCrossentropy(),
                             metrics=["accuracy"])
    return classifier


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 48)
    images = rng.uniform(0, 60, (48, 32, 32, 3)).astype(np.float32)
    images[np.arange(48), :, :, labels] += 150  # the class is the dominant colour
    return images, np.eye(3, dtype=np.float32)[labels]


def test_gradient_probe_reports_groups_and_never_changes_the_run():
    images, labels = _data()
    events = []
    probed = _classifier()
    probe = GradientProbe(images[:16], labels[:16], Diagnostics(num_classes=3, phase_learning_rates={}),
                          events.append, backbone=probed.backbone)
    keras.utils.set_random_seed(7)
    probed.model.fit(images, labels, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[probe])

    plain = _classifier()
    keras.utils.set_random_seed(7)
    plain.model.fit(images, labels, batch_size=16, epochs=2, shuffle=False, verbose=0)

    assert len(probe.history) == 2
    norms = probe.history[0]
    assert set(norms) == {"total", "backbone_bottom", "backbone_middle", "backbone_top", "head"}
    assert all(np.isfinite(v) and v > 0 for v in norms.values())
    assert events == []  # a healthy model: nothing to say
    # Same weights, BatchNorm statistics and dropout seeds as without the probe.
    for a, b in zip(probed.model.variables, plain.model.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_gradient_probe_of_a_frozen_backbone_measures_the_head_only():
    from models.classifier import freeze_backbone

    classifier = _classifier()
    freeze_backbone(classifier.backbone)
    classifier.model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy())
    images, labels = _data()
    probe = GradientProbe(images[:8], labels[:8], Diagnostics(num_classes=3, phase_learning_rates={}),
                          lambda e: None, backbone=classifier.backbone)
    probe.set_model(classifier.model)
    assert set(probe.measure()) == {"total", "head"}

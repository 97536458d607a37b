"""The training mode: one choice that sets the phases coherently, in the config, the engine
and the window. ``model.weights: none`` trains the whole network from the first epoch at the
user's rate; only an explicit pretrained mode gets a frozen random backbone, with a warning."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QApplication

from gui.panels.model import ModelPanel
from training.config import Config, ConfigError
from training.engine.recipe import frozen_random_backbone, phase_plan, planned_epochs, resolve_mode


def _config(**overrides) -> Config:
    return Config().with_overrides(overrides)


# -- the config and the recipe -------------------------------------------------------------------
def test_weights_none_trains_every_layer_from_the_first_epoch_at_the_users_rate():
    config = _config(**{"model.weights": "none", "optimizer.learning_rate": 3e-3})
    plan = phase_plan(config)
    assert [(p.phase, p.epochs, p.learning_rate) for p in plan] == [("fine_tune", 10, 3e-3)]
    resolved = resolve_mode(config).training
    assert (resolved.mode, resolved.head_epochs, resolved.fine_tune_layers) == ("from_scratch", 0, "all")
    assert not frozen_random_backbone(config)


def test_resolving_is_idempotent_and_keeps_pretrained_runs_as_they_were():
    scratch = resolve_mode(_config(**{"model.weights": "none"}))
    assert resolve_mode(scratch) is scratch
    pretrained = Config()
    assert resolve_mode(pretrained).training.mode == "fine_tune"
    assert [(p.phase, p.epochs) for p in phase_plan(pretrained)] == [("head", 5), ("fine_tune", 5)]
    assert phase_plan(pretrained)[1].learning_rate == pytest.approx(1e-4)


def test_head_only_drops_the_fine_tuning_phase():
    config = _config(**{"training.mode": "head_only", "training.fine_tune_epochs": 7})
    assert [(p.phase, p.epochs) for p in phase_plan(config)] == [("head", 5)]
    assert planned_epochs(config) == 5


def test_an_explicit_pretrained_mode_with_random_weights_is_a_frozen_random_backbone():
    config = _config(**{"model.weights": "none", "training.mode": "fine_tune"})
    assert frozen_random_backbone(config)
    assert [p.phase for p in phase_plan(config)] == ["head", "fine_tune"]


def test_modes_that_cannot_work_are_refused_with_what_to_do():
    with pytest.raises(ConfigError, match=r"`training.mode`.*model.weights"):
        _config(**{"training.mode": "from_scratch"})
    with pytest.raises(ConfigError, match=r"`training.head_epochs` must be > 0 when `training.mode` is"):
        _config(**{"training.mode": "head_only", "training.head_epochs": 0})


# -- the engine ---------------------------------------------------------------------------------
def test_a_frozen_random_backbone_gets_a_warning_at_start(tmp_path):
    from tests.helpers import make_tiny_dataset
    from training.api import run_training

    folder = make_tiny_dataset(tmp_path / "data", classes=2, per_class=4, size=32)
    config = _config(**{"data.dir": str(folder), "data.image_size": 32, "model.backbone": "SmallCNN",
                        "model.weights": "none", "training.mode": "fine_tune",
                        "training.head_epochs": 1, "training.fine_tune_epochs": 0,
                        "data.batch_size": 4})
    events = []
    run_training(config, run_dir=tmp_path / "run", on_event=events.append)
    hints = [e for e in events if getattr(e, "type", "") == "hint" and e.id == "frozen_random_backbone"]
    assert hints and hints[0].fixes == [{"training.mode": "from_scratch"}]
    warnings = [e.message for e in events if getattr(e, "type", "") == "log" and e.level == "warning"]
    assert any("frozen backbone with random weights" in m for m in warnings)


def test_from_scratch_runs_one_phase_with_every_layer_training_and_records_it(tmp_path):
    from tests.helpers import make_tiny_dataset
    from training.api import run_training

    folder = make_tiny_dataset(tmp_path / "data", classes=2, per_class=4, size=32)
    config = _config(**{"data.dir": str(folder), "data.image_size": 32, "model.backbone": "SmallCNN",
                        "model.weights": "none", "training.head_epochs": 1,
                        "training.fine_tune_epochs": 1, "data.batch_size": 4,
                        "optimizer.learning_rate": 2e-3})
    events = []
    run_training(config, run_dir=tmp_path / "run", on_event=events.append)
    phases = [e for e in events if getattr(e, "type", "") == "phase"]
    assert [(p.phase, p.epochs, p.learning_rate) for p in phases] == [("fine_tune", 2, 2e-3)]
    assert "from scratch" in phases[0].description and "BatchNorm included" in phases[0].description
    assert not any(getattr(e, "id", "") == "frozen_random_backbone" for e in events)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["training"]
    assert (recorded["mode"], recorded["head_epochs"], recorded["fine_tune_epochs"],
            recorded["fine_tune_layers"]) == ("from_scratch", 0, 2, "all")


# -- the window's Model tab ------------------------------------------------------------------------
CATALOG = [
    {"name": "MobileNetV2", "family": "MobileNet", "default_size": 224, "params_millions": 2.3,
     "imagenet_top1": 71.3, "imagenet_cached": False, "imagenet_cached_sizes": [], "min_size": 32},
    {"name": "ResNet50", "family": "ResNet", "default_size": 224, "params_millions": 23.6,
     "imagenet_top1": 74.9, "imagenet_cached": True, "imagenet_cached_sizes": [224], "min_size": 32},
]


@pytest.fixture
def panel(qapp, qtbot):
    form = ModelPanel()
    qtbot.addWidget(form)
    form.load(Config())
    form.show()
    yield form
    form.close()
    QApplication.processEvents()


def _choose(combo, value) -> None:
    combo.setCurrentIndex(combo.findData(value))


def _built(panel: ModelPanel) -> Config:
    values = {key: value for key, value in panel.values().items()}
    return Config().with_overrides(values)


def test_choosing_from_scratch_sets_the_weights_and_the_phases(panel):
    _choose(panel.mode, "from_scratch")
    config = _built(panel)
    assert config.model.weights == "none"
    t = config.training
    assert (t.mode, t.head_epochs, t.fine_tune_epochs, t.fine_tune_layers) == ("from_scratch", 0, 10, "all")
    assert not panel.head_epochs.isEnabled() and not panel.layers.isEnabled()
    assert "All layers" in panel.mode_text.text()


def test_changing_only_weights_to_none_gives_a_from_scratch_run(panel):
    panel._set_weights("none")
    panel._on_field_changed()
    config = _built(panel)
    assert config.training.mode == "auto"
    assert [(p.phase, p.epochs, p.learning_rate) for p in phase_plan(config)] == [("fine_tune", 10, 1e-3)]
    assert not frozen_random_backbone(config)
    # Back to ImageNet: a head phase again, the epochs split, the layers back to the default.
    panel._set_weights("imagenet")
    panel._on_field_changed()
    t = _built(panel).training
    assert (t.head_epochs, t.fine_tune_epochs, t.fine_tune_layers) == (5, 5, 30)


def test_head_only_disables_the_fine_tuning_controls(panel):
    _choose(panel.mode, "head_only")
    assert not panel.fine_tune_epochs.isEnabled() and not panel.layers.isEnabled()
    assert [p.phase for p in phase_plan(_built(panel))] == ["head"]


def test_a_pretrained_mode_chosen_with_weights_none_brings_imagenet_back(panel):
    _choose(panel.mode, "from_scratch")
    _choose(panel.mode, "fine_tune")
    config = _built(panel)
    assert config.model.weights == "imagenet" and not frozen_random_backbone(config)


def test_loading_a_config_changes_nothing_in_it(panel):
    """A run's own config.json (even one asking for a frozen random backbone) reads back as it was."""
    for overrides in ({"model.weights": "none"},
                      {"model.weights": "none", "training.mode": "fine_tune"},
                      {"training.mode": "head_only", "training.fine_tune_epochs": 3}):
        config = _config(**overrides)
        panel.load(config)
        assert _built(panel).to_dict() == config.to_dict()


def test_offline_the_tab_says_which_weights_are_here_and_offers_from_scratch(panel):
    panel.set_catalog(CATALOG)
    panel.set_image_size(128)
    text = panel.weights_notice_text()
    assert "MobileNetV2 are not on this machine" in text and "ResNet50" in text
    assert panel.weights_notice_row.isVisible()
    panel.from_scratch_button.click()
    assert _built(panel).training.mode == "from_scratch"
    assert not panel.weights_notice_row.isVisible()  # nothing to download from scratch


def test_no_notice_when_the_weights_for_this_size_are_cached(panel):
    catalog = [dict(CATALOG[0], imagenet_cached_sizes=[128])]
    panel.set_catalog(catalog)
    panel.set_image_size(128)
    assert panel.weights_notice_text() == ""
    panel.set_image_size(96)  # MobileNetV2 has a file per size: 96 px is another download
    assert "not on this machine" in panel.weights_notice_text()


@pytest.mark.slow
def test_changing_only_weights_to_none_learns_on_the_built_in_sample(panel, tmp_path):
    """The newcomer's first step offline: the defaults, Weights set to none on the Model tab.
    Within its ten epochs, MobileNetV2 from scratch on the 5-class sample beats chance (20 %)
    clearly (about 80 % after ten epochs here; a frozen random backbone stayed at 20 %). The
    run is stopped as soon as an epoch's validation accuracy reaches 50 %: what is asserted."""
    import threading

    from training.api import run_training
    from training.events import EpochEnd

    panel._set_weights("none")
    panel._on_field_changed()
    config = _built(panel)
    changed = {key for key, value in config.to_dict()["model"].items()
               if value != Config().to_dict()["model"][key]}
    assert changed == {"weights"}
    stop, epochs = threading.Event(), []

    def listen(event):
        if isinstance(event, EpochEnd):
            epochs.append(event)
            if event.val_accuracy >= 0.5:
                stop.set()

    run_training(config, run_dir=tmp_path / "run", on_event=listen, stop=stop)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stop_reason"] in ("stopped", "completed"), summary
    assert summary["epochs_planned"] == 10 and len(epochs) <= 10
    assert summary["best_metrics"]["val_accuracy"] >= 0.5, [(e.epoch, e.val_accuracy) for e in epochs]


def test_a_run_recorded_before_training_modes_resumes_with_the_phases_it_ran(tmp_path):
    from training.rundir.reading import read_run_config

    data = _config(**{"model.weights": "none"}).to_dict()
    del data["training"]["mode"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    config = read_run_config(tmp_path)
    assert [p.phase for p in phase_plan(config)] == ["head", "fine_tune"]


def test_the_optimizer_tab_explains_the_rate_in_the_windows_words(qtbot, tmp_path, monkeypatch):
    from gui import engine_calls
    from gui.window import MainWindow
    from tests.helpers import make_tiny_dataset

    monkeypatch.setattr(engine_calls, "planned_learning_rates",
                        lambda config, steps: {"fine_tune": [config.optimizer.learning_rate] * steps * 10})
    folder = make_tiny_dataset(tmp_path / "data", classes=2, per_class=4, size=32)
    window = MainWindow(_config(**{"data.dir": str(folder), "model.weights": "none"}),
                        runner=lambda *a, **k: None)
    qtbot.addWidget(window)
    window.show()
    status = window.optimizer_panel.plan_status
    qtbot.waitUntil(lambda: "Base rates" in status.text(), timeout=20000)
    text = status.text()
    assert "Learning rate (Optimizer tab)" in text and "Weights is" in text
    assert "optimizer.learning_rate" not in text and "model.weights" not in text


def test_a_more_epochs_fix_from_a_scratch_run_sets_the_total_it_says():
    """The run's config is resolved (head 0, fine-tune = the total); the window's config may
    still hold head epochs: the fix must give the total it names, not that plus the head's."""
    from training.diagnostics.hints import not_converged

    users = _config(**{"model.weights": "none", "training.head_epochs": 5, "training.fine_tune_epochs": 5})
    running = resolve_mode(users)
    hint = not_converged({"phase": "fine_tune", "monitor": "val_loss", "values": [0.9, 0.8, 0.7]}, running)
    [fix] = hint.fixes
    assert planned_epochs(users.with_overrides(fix)) == fix["training.fine_tune_epochs"] == 20


def test_train_on_names_the_gpus_the_engine_sees(panel):
    assert panel.devices_note.text() == "Devices: detecting…"
    panel.set_device("GPU: NVIDIA A100-SXM4-40GB, NVIDIA A100-SXM4-40GB (mixed_float16)")
    assert panel.devices_note.text() == "GPUs here (2): NVIDIA A100-SXM4-40GB, NVIDIA A100-SXM4-40GB."
    panel.set_device("GPU: NVIDIA T4 (float32)")
    assert panel.devices_note.text().startswith("GPUs here (1): NVIDIA T4.") and "adds nothing" in \
        panel.devices_note.text()
    panel.set_device("CPU: 2 threads (float32)")
    assert panel.devices_note.text().startswith("No GPU here")


"""The main window driven through its widgets, with stand-in engines (no TensorFlow).

The real engine in a child process is exercised by ``tests/test_gui_training.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QCheckBox, QMessageBox

from gui import engine_calls
from gui.runview import export_model
from gui.window import MainWindow
from tests.conftest import stop_run_before_close
from tests.helpers import make_tiny_dataset, write_broken_files
from training.api import Config, default_config, plan_split, scan_folder
from training.config import all_keys
from training.events import (
    BatchEnd,
    EpochEnd,
    Failed,
    Finished,
    Hint,
    Log,
    PhaseChanged,
    RunStarted,
)

STEPS = 4


@pytest.fixture(autouse=True)
def no_helper_process(monkeypatch):
    """Plans and previews computed without Keras, so these tests stay fast."""
    def planned(config, steps_per_epoch):
        head = [config.optimizer.learning_rate] * (config.training.head_epochs * steps_per_epoch)
        tune = [config.optimizer.learning_rate / 10] * (config.training.fine_tune_epochs * steps_per_epoch)
        return {"head": head, "fine_tune": tune}

    def preview(config, paths, size, seed):
        images = np.zeros((len(paths), size, size, 3), np.uint8)
        return images, 255 - images

    monkeypatch.setattr(engine_calls, "planned_learning_rates", planned)
    monkeypatch.setattr(engine_calls, "augmentation_preview", preview)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("gui"), classes=3, per_class=8, size=32)


def small_config(data_dir: Path) -> Config:
    return default_config().with_overrides({
        "data.dir": str(data_dir), "model.backbone": "SmallCNN", "model.weights": "none",
        "data.image_size": 32, "data.batch_size": 8, "training.head_epochs": 2,
        "training.fine_tune_epochs": 1,
    })


class ScriptedEngine:
    """A stand-in for run_training: emits a plausible event stream, honours ``stop``."""

    def __init__(self, *, fail: str = "", endless: bool = False, raise_error: bool = False) -> None:
        self.fail, self.endless, self.raise_error = fail, endless, raise_error
        self.configs: list[Config] = []
        self.stopped_at: float | None = None

    def __call__(self, config, *, run_dir, on_event, stop):
        self.configs.append(config)
        if self.raise_error:
            raise RuntimeError("engine exploded")
        Path(run_dir).mkdir(parents=True)
        on_event(RunStarted(run_dir=str(run_dir), device="CPU: test", config=config.to_dict()))
        on_event(Log(message="scripted engine"))
        if self.fail:
            on_event(Failed(message=self.fail, error_type="ValueError", run_dir=str(run_dir),
                            details="Traceback: scripted"))
            return
        epochs = config.training.head_epochs + config.training.fine_tune_epochs
        step = 0
        epoch = 0
        while epoch < epochs or self.endless:
            epoch += 1
            phase = "head" if epoch <= config.training.head_epochs else "fine_tune"
            if epoch in (1, config.training.head_epochs + 1):
                on_event(PhaseChanged(phase=phase, epochs=epochs, first_epoch=epoch, steps_per_epoch=STEPS,
                                      learning_rate=1e-3, trainable_weights=10))
            for batch in range(1, STEPS + 1):
                step += 1
                on_event(BatchEnd(phase=phase, epoch=epoch, batch=batch, batches=STEPS, step=step,
                                  loss=1.0 / step, accuracy=0.5, learning_rate=1e-3,
                                  images_per_second=100.0, eta_seconds=3.0))
                if self.endless:
                    time.sleep(0.02)
                if stop.is_set():
                    self.stopped_at = time.monotonic()
                    (Path(run_dir) / "best.keras").write_bytes(b"model")
                    on_event(Finished(run_dir=str(run_dir), stop_reason="stopped", best_epoch=max(1, epoch - 1),
                                      best_metrics={"val_accuracy": 0.5, "val_loss": 1.0}))
                    return
            on_event(EpochEnd(phase=phase, epoch=epoch, epochs=epochs, loss=1.0 / epoch, accuracy=0.5,
                              val_loss=1.2 / epoch, val_accuracy=0.4 + 0.1 * epoch, learning_rate=1e-3,
                              seconds=0.1, images_per_second=100.0, is_best=True))
        on_event(Hint(id="info", severity="info", title="Info hint", message="fyi"))
        on_event(Hint(id="lr", severity="error", title="Error hint", message="lower the rate",
                      fixes=[{"optimizer.learning_rate": 1e-4}]))
        on_event(Hint(id="warn", severity="warning", title="Warning hint", message="look"))
        (Path(run_dir) / "best.keras").write_bytes(b"model")
        on_event(Finished(run_dir=str(run_dir), stop_reason="completed", best_epoch=epochs,
                          best_metrics={"val_accuracy": 0.9, "val_loss": 0.3}, seconds=1.0))


@pytest.fixture
def make_window(qtbot, tmp_path, dataset):
    windows = []

    def make(engine=None, config: Config | None = None) -> MainWindow:
        settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(config or small_config(dataset), settings=settings, runner=engine or ScriptedEngine())
        window.data_panel.runs_dir_edit.setText(str(tmp_path / "runs"))
        window.confirm_close_during_training = lambda: True  # never a modal question in tests
        qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot, 10000))
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        if window.worker is not None:
            window.worker.cancel()
            qtbot.waitUntil(lambda w=window: not w.is_running(), timeout=10000)


def drawn_points(window: MainWindow, key: str) -> int:
    x, _ = window.plots.series(key).curve.getData()
    return 0 if x is None else len(x)


def run_to_end(qtbot, window: MainWindow, timeout: int = 10000):
    with qtbot.waitSignal(window.run_finished, timeout=timeout) as blocker:
        assert window.start_training()
    qtbot.waitUntil(lambda: not window.is_running(), timeout=5000)
    return blocker.args[0]


# -- settings <-> config ----------------------------------------------------------------
def test_every_config_key_has_a_control_with_a_tooltip(make_window):
    window = make_window()
    bindings = {key: b for form in window.forms for key, b in form.bindings.items()}
    missing = set(all_keys()) - set(bindings) - {"schema_version"}
    assert not missing, f"config keys without a control: {sorted(missing)}"
    for key, binding in bindings.items():
        assert binding.widget.toolTip().strip(), f"{key} has no tooltip"
        assert binding.widget.objectName() == key.replace(".", "_")


def test_a_loaded_config_comes_back_unchanged_from_the_widgets(make_window, dataset):
    config = small_config(dataset).with_overrides({
        "data.validation_split": 0.3, "data.batch_size": 4, "data.class_weight": "balanced",
        "model.head.hidden_units": [64, 32], "model.head.dropout": 0.5, "model.head.activation": "gelu",
        "model.batch_norm_momentum": 0.9, "training.fine_tune_layers": "all",
        "regularization.l2": 1e-4, "regularization.label_smoothing": 0.1,
        "augmentation.vertical_flip": True, "augmentation.rotation": 0.0, "augmentation.hue": 0.03,
        "optimizer.name": "sgd", "optimizer.learning_rate": 0.01, "optimizer.nesterov": True,
        "schedule.name": "cosine", "schedule.warmup_epochs": 1.0,
        "training.fine_tune_learning_rate": 3e-4, "training.early_stopping.patience": 3,
    })
    window = make_window(config=config)
    assert window.config_error == ""
    assert window.build_config() == config
    assert not window.isWindowModified()


def test_edited_widgets_give_the_config_the_engine_receives(qtbot, make_window):
    engine = ScriptedEngine()
    window = make_window(engine)
    optimizer = window.optimizer_panel.bindings
    optimizer["optimizer.name"].widget.setCurrentIndex(optimizer["optimizer.name"].widget.findData("sgd"))
    optimizer["optimizer.learning_rate"].widget.setValue(0.02)
    window.augmentation_panel.bindings["augmentation.vertical_flip"].widget.setChecked(True)
    brightness = window.augmentation_panel.bindings["augmentation.brightness"].widget
    brightness.check.setChecked(True)
    brightness.value.setValue(0.3)
    window.model_panel.hidden.setText("16, 8")
    window.model_panel.hidden.editingFinished.emit()
    assert window.isWindowModified()
    assert (window.config.optimizer.name, window.config.optimizer.learning_rate) == ("sgd", 0.02)
    assert window.config.augmentation.brightness == pytest.approx(0.3)
    assert window.config.model.head.hidden_units == [16, 8]

    run_to_end(qtbot, window)
    assert engine.configs == [window.config]
    assert engine.configs[0].to_dict() == window.build_config().to_dict()


def test_invalid_settings_show_why_and_block_start(make_window):
    window = make_window()
    window.model_panel.hidden.setText("64, lots")
    window.model_panel.hidden.editingFinished.emit()
    assert "whole numbers" in window.error_banner.text()
    assert not window.error_banner.isHidden()
    assert not window.start_action.isEnabled()
    assert not window.start_training()
    window.model_panel.hidden.setText("64")
    window.model_panel.hidden.editingFinished.emit()
    assert window.error_banner.isHidden() and window.start_action.isEnabled()


def test_only_the_chosen_optimizer_and_schedule_parameters_show(make_window):
    window = make_window()
    panel = window.optimizer_panel
    name = panel.bindings["optimizer.name"].widget
    name.setCurrentIndex(name.findData("sgd"))
    assert {"optimizer.momentum", "optimizer.nesterov"} <= panel.visible_keys()
    panel.bindings["optimizer.nesterov"].widget.setChecked(True)
    name.setCurrentIndex(name.findData("adam"))
    assert "optimizer.momentum" not in panel.visible_keys()
    assert "optimizer.amsgrad" in panel.visible_keys()
    assert window.config_error == "" and window.config.optimizer.nesterov is False
    schedule = panel.bindings["schedule.name"].widget
    schedule.setCurrentIndex(schedule.findData("cosine_restarts"))
    assert {"schedule.restart_epochs", "schedule.restart_t_mul"} <= panel.visible_keys()
    assert "schedule.step_epochs" not in panel.visible_keys()


def test_planned_learning_rate_is_drawn_before_training(qtbot, make_window):
    window = make_window()
    # 24 images, 20 % validation -> 19 training images, batch 8 -> 3 steps per epoch.
    qtbot.waitUntil(lambda: len(window.optimizer_panel.plan[1]) == 3 * 3, timeout=5000)
    x, y = window.optimizer_panel.plot.curve.getData()
    assert len(x) == 9 and y[0] == pytest.approx(1e-3) and y[-1] == pytest.approx(1e-4)
    qtbot.waitUntil(lambda: len(window.plots.series("planned").x) == 9, timeout=3000)


def test_planned_steps_come_from_the_engines_own_split(qtbot, make_window, tmp_path):
    # 5 classes x 5 images at 0.1: the engine holds back one image of each class and trains
    # on 20 (5 steps of 4); the window used to plan 25 - round(2.5) = 23 (6 steps).
    root = make_tiny_dataset(tmp_path, classes=5, per_class=5, size=32, name="five")
    config = small_config(root).with_overrides({"data.validation_split": 0.1, "data.batch_size": 4})
    window = make_window(config=config)
    qtbot.waitUntil(lambda: window.optimizer_panel.steps_per_epoch is not None, timeout=10000)
    assert window.optimizer_panel.steps_per_epoch == 5
    plan = window.split_plan()
    engine_plan = plan_split(scan_folder(root), window.config.data)
    assert (plan.train_count, plan.validation_count) == (20, 5)
    assert plan.train_counts == engine_plan.train_counts
    assert plan.validation_counts == engine_plan.validation_counts
    # The batch size changes the steps, not the split.
    window.data_panel.bindings["data.batch_size"].widget.setValue(8)
    assert window.optimizer_panel.steps_per_epoch == 3 and window.split_plan() is plan


def test_a_validation_folder_the_engine_refuses_plans_no_steps_and_says_why(qtbot, make_window, tmp_path):
    window = make_window()
    qtbot.waitUntil(lambda: window.optimizer_panel.steps_per_epoch == 3, timeout=10000)
    other = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=32, name="other")
    window.set_config(window.config.with_overrides({"data.validation_dir": str(other)}))
    qtbot.waitUntil(lambda: "same class folders" in window.statusBar().currentMessage(), timeout=10000)
    assert window.split_plan() is None and window.optimizer_panel.steps_per_epoch is None


def test_config_files_save_load_and_title(make_window, tmp_path):
    window = make_window()
    assert window.windowTitle().startswith("untitled")
    assert not window.isWindowModified()
    window.regularization_panel.bindings["regularization.label_smoothing"].widget.setValue(0.2)
    assert window.isWindowModified()
    path = tmp_path / "mine.json"
    assert window.save_config_file(path)
    assert "mine.json" in window.windowTitle() and not window.isWindowModified()
    assert Config.load(path) == window.config

    other = make_window()
    assert other.load_config_file(path)
    assert other.config == window.config and not other.isWindowModified()
    (tmp_path / "bad.json").write_text('{"optimizer": {"name": "sgdd"}}')
    assert not other.load_config_file(tmp_path / "bad.json")
    assert "sgdd" in other.error_dialog.text()
    assert other.config == window.config


# -- data panel -------------------------------------------------------------------------
def test_data_panel_shows_classes_thumbnails_and_skipped_files(qtbot, make_window, tmp_path):
    root = make_tiny_dataset(tmp_path, classes=3, per_class=5, size=32, name="messy")
    write_broken_files(root / "circle")
    (root / "square" / ".hidden.png").write_bytes(b"x")
    window = make_window()
    window.data_panel.set_folder(str(root))
    qtbot.waitUntil(lambda: window.data_panel.scan is not None and window.data_panel.scan.root.endswith("messy"),
                    timeout=5000)
    # The truncated JPEG passes the scan's header check: it only fails when decoded.
    assert window.data_panel.count_plot.counts == {"circle": 6, "square": 5, "triangle": 5}
    assert "3 classes, 16 images" in window.data_panel.summary.text()
    problems = [window.data_panel.problems.item(i).text() for i in range(window.data_panel.problems.count())]
    assert any("skipped: notes.png" in text for text in problems)
    assert any("ignored: .hidden.png" in text for text in problems)
    thumbnails = window.data_panel.thumbnails
    qtbot.waitUntil(lambda: thumbnails.count() >= 11, timeout=5000)  # the truncated one may fail
    assert {thumbnails.item(i).text() for i in range(thumbnails.count())} == {"circle", "square", "triangle"}
    assert window.recent_folders()[0] == str(root)
    qtbot.waitUntil(lambda: window.augmentation_panel.preview_count >= 1, timeout=5000)
    assert window.augmentation_panel.preview_labels[0].pixmap() is not None


def test_unusable_folder_is_explained(qtbot, make_window, tmp_path):
    (tmp_path / "one" / "only").mkdir(parents=True)
    window = make_window()
    window.data_panel.set_folder(str(tmp_path / "one"))
    qtbot.waitUntil(lambda: "Cannot use this folder" in window.data_panel.summary.text(), timeout=5000)


def test_dropping_a_folder_loads_it(qtbot, make_window, tmp_path):
    root = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=32, name="dropped")
    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(root))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert window.config.data.dir == str(root)
    qtbot.waitUntil(lambda: window.data_panel.count_plot.counts == {"circle": 3, "square": 3}, timeout=5000)


# -- runs -------------------------------------------------------------------------------
def test_the_result_tells_the_validation_figure_that_chose_the_epoch_from_the_held_out_one(qtbot, tmp_path):
    from gui.runview import FinishedRunPanel

    panel = FinishedRunPanel()
    qtbot.addWidget(panel)
    panel.show_result(Finished(run_dir=str(tmp_path), stop_reason="completed", best_epoch=4,
                               best_metrics={"val_accuracy": 0.95, "val_loss": 0.2},
                               evaluation={"validation": {"accuracy": 0.95, "images": 20},
                                           "test": {"accuracy": 0.875, "images": 16}}))
    assert panel.val_accuracy.text() == "95.0% (chose the best epoch)"
    assert panel.test_accuracy.text() == "87.5% on 16 images"


def test_a_run_fills_plots_progress_hints_and_result(qtbot, make_window, tmp_path):
    window = make_window()
    last = run_to_end(qtbot, window)
    assert isinstance(last, Finished)
    counts = window.plots.point_counts()
    assert counts["val_loss"] == 3 and counts["val_accuracy"] == 3 and counts["batch_loss"] == 3 * STEPS
    # The redraw timer pushes the buffers into the curves.
    qtbot.waitUntil(lambda: drawn_points(window, "val_accuracy") == 3, timeout=2000)
    assert drawn_points(window, "batch_loss") > 0  # clipped to the view, so not an exact count
    assert [m.value() for m in window.plots.loss_plot.markers] == [2.0]  # fine-tuning starts after epoch 2
    assert window.progress.bar.format().startswith("Finished")
    titles = [window.hints.item(i).text().split("\n")[0] for i in range(window.hints.count())]
    assert titles == ["Error hint", "Warning hint", "Info hint"]
    assert window.device_label.text() == "Device: CPU: test"
    assert window.result_panel.best_epoch.text() == "3"
    assert window.result_panel.val_accuracy.text() == "90.0% (chose the best epoch)"
    assert window.result_panel.test_accuracy.text() == "no test set (Data tab: Test share)"
    assert window.result_panel.export_button.isEnabled() and window.output_tabs.currentWidget() is window.result_panel
    target = export_model(last.run_dir, tmp_path / "exported.keras")
    assert target.read_bytes() == b"model"
    # Hovering over the loss plot near epoch 2 reads out the values there.
    plot = window.plots.loss_plot
    plot.getPlotItem().vb.setRange(xRange=(0, 3), yRange=(0, 1.5), padding=0)  # as auto-range would
    plot._on_scene_mouse_moved((plot.getPlotItem().vb.mapViewToScene(QPointF(2.0, 0.5)),))
    assert plot._readout.isVisible() and "val loss: 0.6" in plot._readout.toPlainText()
    # A hint's suggested fix, double-clicked, becomes the setting.
    window.hints.itemDoubleClicked.emit(window.hints.item(0))
    assert window.config.optimizer.learning_rate == pytest.approx(1e-4)


def test_export_without_a_model_says_why(tmp_path):
    with pytest.raises(FileNotFoundError, match="No saved model"):
        export_model(tmp_path, tmp_path / "x.keras")


def test_stop_ends_the_run_gracefully_and_a_second_start_is_refused(qtbot, make_window):
    engine = ScriptedEngine(endless=True)
    window = make_window(engine)
    assert window.start_training()
    assert not window.start_training()  # one run at a time
    qtbot.waitUntil(lambda: window.plots.point_counts()["batch_loss"] >= 3, timeout=5000)
    assert window.stop_action.isEnabled() and not window.start_action.isEnabled()
    with qtbot.waitSignal(window.run_finished, timeout=5000) as blocker:
        requested = time.monotonic()
        window.stop_action.trigger()
    assert blocker.args[0].stop_reason == "stopped"
    assert engine.stopped_at - requested < 0.5
    qtbot.waitUntil(lambda: window.start_action.isEnabled(), timeout=3000)
    assert "stopped" in window.result_panel.outcome.text()


def test_a_failed_run_shows_the_message_and_the_next_run_starts_cleanly(qtbot, make_window):
    engine = ScriptedEngine(fail="The data folder vanished.\nChoose another folder.")
    window = make_window(engine)
    last = run_to_end(qtbot, window)
    assert isinstance(last, Failed)
    # One line beside the progress bar (several would push the plots down); all of it in the tip.
    assert window.progress.label.text() == "The data folder vanished. …"
    assert "Choose another folder." in window.progress.label.toolTip()
    dialog = window.error_dialog
    assert dialog.isVisible() and "vanished" in dialog.text() and "scripted" in dialog.detailedText()
    dialog.close()
    engine.fail = ""
    assert isinstance(run_to_end(qtbot, window), Finished)
    assert window.plots.point_counts()["val_loss"] == 3


def test_an_engine_that_raises_is_reported(qtbot, make_window):
    window = make_window(ScriptedEngine(raise_error=True))
    run_to_end(qtbot, window)
    assert "engine exploded" in window.error_dialog.text()
    assert window.start_action.isEnabled()


def test_earlier_runs_stay_faintly_and_can_be_hidden(qtbot, make_window):
    window = make_window()
    assert not window.plots.show_earlier.isChecked()  # off until asked for
    window.plots.show_earlier.setChecked(True)
    run_to_end(qtbot, window)
    run_to_end(qtbot, window)
    ghosts = window.plots.loss_plot.faint
    assert ghosts and all(g.isVisible() for g in ghosts)
    window.plots.show_earlier.setChecked(False)
    assert not any(g.isVisible() for g in ghosts)


def test_closing_during_training_asks_stops_and_then_closes(qtbot, make_window, monkeypatch):
    engine = ScriptedEngine(endless=True)
    window = make_window(engine)
    window.start_training()
    qtbot.waitUntil(lambda: window.plots.point_counts()["batch_loss"] >= 1, timeout=5000)
    monkeypatch.setattr(window, "confirm_close_during_training", lambda: False)
    window.close()
    assert window.isVisible() and window.is_running()
    monkeypatch.setattr(window, "confirm_close_during_training", lambda: True)
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert engine.stopped_at is not None and not window.is_running()
    assert isinstance(window.result_panel.run_dir, str) and Path(window.result_panel.run_dir, "best.keras").exists()


def test_shortcuts(make_window):
    window = make_window()
    shortcuts = {a.objectName(): [s.toString() for s in a.shortcuts()] for a in window.actions()}
    assert "Ctrl+R" in shortcuts["startAction"]
    assert {"Esc", "Ctrl+."} <= set(shortcuts["stopAction"])
    assert "Ctrl+O" in shortcuts["openFolderAction"]


def test_augmentation_toggle_keeps_its_strength(make_window):
    window = make_window()
    widget = window.augmentation_panel.bindings["augmentation.contrast"].widget
    assert isinstance(widget.check, QCheckBox) and not widget.check.isChecked()
    widget.check.setChecked(True)
    assert window.config.augmentation.contrast == pytest.approx(widget.suggested)
    widget.check.setChecked(False)
    assert window.config.augmentation.contrast == 0.0


def test_messagebox_question_is_not_used_without_training(make_window, monkeypatch):
    window = make_window()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail("asked without a run"))
    assert window.close()


def test_catalog_fills_the_table_and_a_too_small_image_size_blocks_start(make_window):
    window = make_window()
    catalog = [{"name": "SmallCNN", "family": "Small", "default_size": 64, "params_millions": 0.1,
                "imagenet_top1": None, "imagenet_cached": False, "min_size": 48},
               {"name": "MobileNetV2", "family": "MobileNet", "default_size": 224, "params_millions": 3.5,
                "imagenet_top1": 71.3, "imagenet_cached": True, "min_size": 32}]
    window._on_tasks_done("catalog", catalog)
    assert window.model_panel.table.item(2, 4).text() == "yes"  # MobileNetV2 cached
    assert window.model_panel.table.item(2, 3).text() == "71.3%"
    assert ">= 48 for SmallCNN" in window.error_banner.text() and not window.start_action.isEnabled()
    window.data_panel.bindings["data.image_size"].widget.setValue(64)
    assert window.config_error == "" and window.start_action.isEnabled()


def test_dropping_a_config_file_loads_it(make_window, tmp_path, dataset):
    path = tmp_path / "dropped.json"
    small_config(dataset).with_overrides({"optimizer.learning_rate": 0.005}).save(path)
    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    window.dropEvent(QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))
    assert window.config.optimizer.learning_rate == pytest.approx(0.005)
    assert "dropped.json" in window.windowTitle()


def test_learning_rate_field_reads_scientific_notation_and_steps_by_factors(qtbot):
    from gui.forms import scientific

    box = scientific(1e-8, 10.0)
    assert box.valueFromText("3e-4") == pytest.approx(3e-4)
    box.setValue(1e-3)
    assert box.text() == "0.001"
    box.stepBy(1)
    assert box.value() == pytest.approx(2e-3)
    box.stepBy(-2)
    assert box.value() == pytest.approx(5e-4)

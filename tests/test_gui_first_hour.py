"""The first hour with the window (issue 10): no traps, words a newcomer reads, no stale
state, nothing lost.

Stand-in engines (no TensorFlow); the planned rates and previews are computed without Keras
(``no_helper_process``).
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QGraphicsView,
    QMessageBox,
    QScrollArea,
    QScrollBar,
    QWidget,
)

from gui import progress
from gui.window import MainWindow
from tests.conftest import stop_run_before_close
from tests.helpers import make_tiny_dataset
from tests.test_gui_window import (  # noqa: F401 - fixtures
    ScriptedEngine,
    dataset,
    make_window,
    no_helper_process,
    run_to_end,
    small_config,
)
from training.api import Config
from training.config import all_keys
from training.diagnostics import data_hints, hints
from training.events import Failed, Finished, Hint, Log, RunStarted

KEY_PATTERN = re.compile("|".join(rf"(?<![\w.]){re.escape(key)}(?![\w])" for key in all_keys()))
# Controls the wheel changes: values, and the view of a plot inside a panel.
VALUE_CONTROLS = (QAbstractSpinBox, QComboBox, QAbstractSlider, QGraphicsView)


def ini_settings(path: Path) -> QSettings:
    return QSettings(str(path), QSettings.Format.IniFormat)


def pretrained_config(data: Path) -> Config:
    """Two phases with their own epochs (the plan's length follows both)."""
    return small_config(data).with_overrides({
        "model.backbone": "MobileNetV2", "model.weights": "imagenet", "training.mode": "fine_tune"})


# -- item 2: the wheel ---------------------------------------------------------------------------
def control_state(widget: QWidget):
    if isinstance(widget, QAbstractSpinBox):
        return widget.text()
    if isinstance(widget, QComboBox):
        return widget.currentIndex()
    if isinstance(widget, QGraphicsView):
        return widget.getPlotItem().vb.viewRange() if hasattr(widget, "getPlotItem") else None
    return widget.value()


def wheel(widget: QWidget, delta: int) -> None:
    """A real wheel turn over the middle of ``widget``: through the window system, so Qt
    delivers it as it delivers the mouse's (to the widget under the pointer, then to the
    parents that ignore it; focus follows the focus policy)."""
    window = widget.window()
    centre = widget.mapTo(window, widget.rect().center())
    QTest.wheelEvent(window.windowHandle(), QPointF(centre), QPoint(0, delta))
    QApplication.processEvents()


def settings_controls(window: MainWindow) -> list[tuple[int, QWidget]]:
    """Every value control of every settings panel, the panels' own composites included."""
    found = []
    for index, form in enumerate(window.forms):
        for widget in form.findChildren(QWidget):
            if isinstance(widget, VALUE_CONTROLS) and not isinstance(widget, QScrollBar):
                found.append((index, widget))
    return found


def test_the_wheel_over_an_unfocused_control_changes_nothing(qtbot, make_window, tmp_path):
    everything_on = {key: 0.1 for key in ("augmentation.rotation", "augmentation.zoom",
                                          "augmentation.brightness", "augmentation.mixup")}
    window = make_window()
    window.set_config(window.config.with_overrides({**everything_on, "optimizer.name": "sgd",
                                                    "optimizer.ema": True, "schedule.name": "cosine"}),
                      saved=True)
    other = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=32, name="other")
    window.data_panel.set_recent(window.document.remember_folder(str(other)))
    window.data_panel.recent.setCurrentIndex(1)  # a recent folder, one wheel step from the prompt
    window.resize(1024, 700)
    window.activateWindow()
    window.settings_tabs.tabBar().setFocus()
    qtbot.waitUntil(lambda: window.settings_tabs.tabBar().hasFocus(), timeout=3000)
    before = window.config
    controls = settings_controls(window)
    assert len(controls) > 40  # numbers, choices, strengths, the recent folders, the plots
    assert window.optimizer_panel.plot in [widget for _, widget in controls]
    for index, widget in controls:
        window.settings_tabs.setCurrentIndex(index)
        window.settings_tabs.currentWidget().ensureWidgetVisible(widget)
        state = control_state(widget)
        for delta in (120, -120, -120):
            wheel(widget, delta)
        assert control_state(widget) == state, f"the wheel changed {widget.objectName() or widget}"
        assert widget.focusPolicy() != Qt.FocusPolicy.WheelFocus, widget.objectName()
        assert not widget.hasFocus()
    assert window.config == before and not window.isWindowModified()
    assert window.config.data.dir == before.data.dir  # no recent folder was loaded

    # The wheel scrolls the panel instead, and a control the user focused does take it.
    window.settings_tabs.setCurrentIndex(3)
    scroll: QScrollArea = window.settings_tabs.currentWidget()
    strength = window.augmentation_panel.bindings["augmentation.rotation"].widget.value
    scroll.verticalScrollBar().setValue(0)
    wheel(strength, -120)
    assert scroll.verticalScrollBar().value() > 0 and strength.value() == pytest.approx(0.1)
    batch = window.data_panel.bindings["data.batch_size"].widget
    window.settings_tabs.setCurrentIndex(0)
    window.settings_tabs.currentWidget().ensureWidgetVisible(batch)
    batch.setFocus()
    qtbot.waitUntil(batch.hasFocus, timeout=3000)
    wheel(batch, 120)
    assert window.config.data.batch_size == before.data.batch_size + 1


# -- item 3: the planned learning rate ---------------------------------------------------------
def test_the_planned_rate_follows_the_epochs_set_on_the_model_tab(qtbot, make_window, dataset):
    window = make_window(config=pretrained_config(dataset))
    panel = window.optimizer_panel
    qtbot.waitUntil(lambda: bool(panel.plan[0]) and panel.plan[0][-1] == pytest.approx(3), timeout=5000)
    model = window.model_panel.bindings
    model["training.head_epochs"].widget.setValue(4)
    model["training.fine_tune_epochs"].widget.setValue(2)
    qtbot.waitUntil(lambda: panel.plan[0][-1] == pytest.approx(6), timeout=5000)
    model["training.head_epochs"].widget.setValue(10)
    model["training.fine_tune_epochs"].widget.setValue(0)
    qtbot.waitUntil(lambda: panel.plan[0][-1] == pytest.approx(10), timeout=5000)
    x, _ = panel.plot.curve.getData()
    assert x[-1] == pytest.approx(10)
    qtbot.waitUntil(lambda: window.plots.series("planned").x[-1] == pytest.approx(10), timeout=3000)
    # The batch size (Data tab) changes the steps: 19 training images, batch 4 -> 5 a epoch.
    window.data_panel.bindings["data.batch_size"].widget.setValue(4)
    qtbot.waitUntil(lambda: len(panel.plan[1]) == 10 * 5, timeout=5000)


# -- item 5: plain words ----------------------------------------------------------------------------
def every_hint(tmp_path: Path) -> dict[str, list[Hint]]:
    """Each hint builder of the engine, on the evidence its check collects."""
    scratch = Config().with_overrides({"model.weights": "none", "training.mode": "fine_tune",
                                       "model.batch_norm_momentum": 0.99})
    config = Config()
    context = {"config": config, "learning_rate": 1e-3}
    curve = {"phase": "head", "epochs": 5, "loss": 1.6, "start_loss": 1.61, "val_loss_best": 1.6,
             "val_loss_first": 1.61, "chance_loss": 1.609, "learning_rate": 1e-3}
    data = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=32, name="leaky")
    train = sorted(str(p) for p in (data / "circle").iterdir())
    copy = data / "copy.png"
    shutil.copy(train[0], copy)
    return {
        "lr_too_high": [hints.lr_too_high("fine_tune", 2, 7, float("nan"), 1e-2, reason="the loss became NaN")],
        "initial_loss_off": [hints.initial_loss_off(v, 9.0 if v == "high" else 0.1, 8.0, 5, batches=4,
                                                    config=config) for v in ("high", "low")],
        "frozen_random_backbone": [hints.frozen_random_backbone(scratch),
                                   hints.frozen_random_backbone(scratch, curve)],
        "lr_too_low": [hints.lr_too_low(curve, context)],
        "overfitting": [hints.overfitting({"kind": "val_loss_rising", "best_val_loss": 0.5, "best_epoch": 3,
                                           "val_loss": 0.9, "epoch": 8, "best_epoch_loss": 0.4, "loss": 0.1},
                                          config),
                        hints.overfitting({"kind": "gap", "accuracy": 0.99, "val_accuracy": 0.6, "epoch": 8},
                                          config)],
        "too_much_regularization": [hints.too_much_regularization(
            {"loss": 1.2, "val_loss_mid_epoch": 0.6},
            config.with_overrides({"model.head.dropout": 0.6, "augmentation.mixup": 0.5}))],
        "val_stuck_at_chance": [hints.val_stuck_at_chance(
            {"phase": "head", "accuracy": 0.44, "val_accuracy": 0.2, "chance_accuracy": 0.2}, scratch)],
        "plateau": [hints.plateau({"monitor": "val_loss", "phase": "head", "best_value": 0.41, "best_epoch": 3,
                                   "epochs_without_improvement": 4}, config)],
        "exploding_gradients": [hints.exploding_gradients({"kind": "non_finite", "total_norm": "inf", "epoch": 2},
                                                          "head", context),
                                hints.exploding_gradients({"kind": "growth", "growth": 120.0,
                                                           "previous_total_norm": 0.5, "total_norm": 60.0,
                                                           "epoch": 3}, "fine_tune", context)],
        "vanishing_gradients": [hints.vanishing_gradients(
            {"epoch": 2, "group": "backbone_bottom", "ratio": 1e-5},
            config.with_overrides({"training.fine_tune_layers": "all"}))],
        "oscillating": [hints.oscillating({"phase": "head", "block": 10, "epoch": 2, "swing": 0.9,
                                           "swing_ln_c": 0.6, "recent_loss": 1.2}, context)],
        "underfitting": [hints.underfitting({"phase": phase, "epoch": 10, "loss": 1.2, "val_loss": 1.25,
                                             "loss_fraction": 0.75, "chance_loss": 1.609, "accuracy": 0.45,
                                             "still_improving": still}, context)
                         for phase, still in (("head", True), ("fine_tune", False))],
        "not_converged": [hints.not_converged({"phase": "fine_tune", "monitor": "val_loss",
                                               "values": [0.6, 0.5, 0.45]}, config)],
        "class_imbalance": [data_hints.class_imbalance({"cat": 90, "dog": 10}, balanced)
                            for balanced in (False, True)],
        "val_too_small": [data_hints.val_too_small({"cat": 40, "dog": 40}, {"cat": 2, "dog": 2}, config),
                          data_hints.val_too_small({"cat": 40, "dog": 40}, {"cat": 2, "dog": 2},
                                                   config.with_overrides({"data.validation_dir": str(data)}))],
        "data_leakage": data_hints.data_leakage(train, [str(copy), str(data / "square" / "0.png")]),
    }


def builders(module) -> set[str]:
    """The public functions of ``module`` that make hints."""
    return {name for name, function in inspect.getmembers(module, inspect.isfunction)
            if function.__module__ == module.__name__ and not name.startswith("_")
            and "Hint" in str(inspect.signature(function).return_annotation)}


def displayed_texts(window: MainWindow) -> list[str]:
    """What the Hints tab shows: each hint, its tooltip, its menu and the buttons' tips."""
    texts = []
    for row in range(window.hints.count()):
        item = window.hints.item(row)
        window.hints.setCurrentRow(row)
        texts += [item.text(), item.toolTip(), window.hints_panel.apply_button.toolTip(),
                  window.hints_panel.restart_button.toolTip()]
        texts += [action.text() for action in window.hints.context_menu(item).actions()]
    return texts


def test_every_hint_speaks_of_controls_and_buttons_not_keys_and_commands(make_window, tmp_path):
    made = every_hint(tmp_path)
    assert builders(hints) | builders(data_hints) <= set(made), "a hint builder without a case here"
    window = make_window()
    engine_words = []
    for hint in (h for found in made.values() for h in found if h is not None):
        window.hints.add_hint(hint)
        engine_words.append(hint.message)
    assert any("`" in text or "python main.py" in text for text in engine_words)  # the engine's words
    texts = displayed_texts(window)
    assert len(texts) > 4 * 20
    for text in texts:
        assert "`" not in text and "python main.py" not in text, text
        assert not KEY_PATTERN.search(text), text
    shown = "\n".join(texts)
    assert "“Learning-rate range test” (Tools menu)" in shown
    assert "Weights is “none (train from scratch)” (Model tab)" in shown
    assert "Apply to next run: Class weights (Data tab) = balanced" in shown


def test_an_applied_fix_names_the_control_and_the_log_keeps_the_key(make_window):
    window = make_window()
    window.hints.add_hint(data_hints.class_imbalance({"cat": 90, "dog": 10}, balanced=False))
    window.hints.setCurrentRow(0)
    window.hints_panel.apply_button.click()
    assert window.config.data.class_weight == "balanced"
    assert window.statusBar().currentMessage() == "Applied: Class weights (Data tab) = balanced"
    assert "data.class_weight = balanced" in window.log.toPlainText()


def test_the_range_test_hints_name_the_tools_menu(make_window):
    lr_range = pytest.importorskip("training.engine.sanity.lr_range")  # imports Keras
    window = make_window()
    rates = [1e-5 * 1.5 ** i for i in range(30)]
    results = (  # diverged at once; flat; a shallow fall with a cautious suggestion
        dict(losses=[2.0, 2.1, 2.2]),
        dict(losses=[1.6] * 30, min_loss_learning_rate=rates[3]),
        dict(losses=[1.6 - 0.002 * i for i in range(30)], suggested_learning_rate=1e-4,
             min_loss_learning_rate=rates[-1], steepest_learning_rate=1e-4, fall=0.04, verdict="shallow"))
    for values in results:
        values = {"suggested_learning_rate": None, "min_loss_learning_rate": None,
                  "steepest_learning_rate": None, **values}
        result = lr_range.LRRangeResult(learning_rates=rates[:len(values["losses"])],
                                        raw_losses=values["losses"], phase="head", **values)
        for hint in lr_range._range_hints(result, window.config):
            assert "python main.py" in hint.message
            window.hints.add_hint(hint)
    shown = "\n".join(displayed_texts(window))
    assert "“Check setup” (Tools menu)" in shown and "“Overfit a tiny subset” (Tools menu)" in shown
    assert "python main.py" not in shown and "`" not in shown


# -- item 7: no stale state ---------------------------------------------------------------------------
CATALOG = [{"name": "SmallCNN", "family": "Small", "default_size": 64, "params_millions": 0.1,
            "imagenet_top1": None, "imagenet_cached": False, "min_size": 48}]


def test_the_settings_error_reads_plainly_and_goes_with_the_setting(qtbot, make_window):
    window = make_window()
    qtbot.waitUntil(lambda: window.plots.height() > 0, timeout=3000)
    plots_height = window.plots.height()
    window._on_tasks_done("catalog", CATALOG)
    banner = window.error_banner
    assert not banner.isHidden()
    assert banner.text().startswith("Image size (Data tab) must be >= 48 for SmallCNN. Received: 32.")
    assert "`" not in banner.text() and not KEY_PATTERN.search(banner.text())
    # The banner sits above the settings, not above the plots, which keep their height.
    assert window.settings_tabs.parentWidget() is banner.parentWidget()
    assert not banner.parentWidget().isAncestorOf(window.plots)
    QApplication.processEvents()
    assert window.plots.height() == plots_height
    window.data_panel.bindings["data.image_size"].widget.setValue(64)
    assert banner.isHidden() and window.config_error == ""


def test_a_new_run_shows_running_not_the_previous_runs_error(qtbot, make_window):
    engine = ScriptedEngine(fail="The data folder vanished. Choose another folder.")
    window = make_window(engine)
    assert isinstance(run_to_end(qtbot, window), Failed)
    window.error_dialog.close()
    assert "vanished" in window.result_panel.outcome.text()
    engine.fail, engine.endless = "", True
    assert window.start_training()
    panel = window.result_panel
    assert panel.outcome.text() == "Running…"
    assert panel.folder.text() == "-" and not panel.open_button.isEnabled()
    assert "vanished" not in window.progress.label.text()
    qtbot.waitUntil(lambda: window.plots.point_counts()["batch_loss"] >= 1, timeout=5000)
    assert panel.outcome.text() == "Running…"
    with qtbot.waitSignal(window.run_finished, timeout=5000):
        window.stop_training()
    assert "stopped" in panel.outcome.text()


def test_a_failed_runs_message_leaves_the_progress_strip_when_the_settings_change(qtbot, make_window):
    window = make_window(ScriptedEngine(fail="The data folder vanished."))
    run_to_end(qtbot, window)
    window.error_dialog.close()
    assert window.progress.bar.format() == "Failed" and "vanished" in window.progress.label.text()
    window.document.refresh()  # nothing changed: the outcome stays
    assert window.progress.bar.format() == "Failed"
    window.regularization_panel.bindings["regularization.label_smoothing"].widget.setValue(0.1)
    assert window.progress.bar.format() == "Idle" and window.progress.label.text() == "Ready."
    assert "vanished" in window.result_panel.outcome.text()  # the run's own record keeps it


class ToolEngine(ScriptedEngine):
    def tool(self, name, config, *, on_event, stop):
        on_event(Log(message="Step 30/100: rate 1.0e-03, smoothed loss 1.2"))
        return {"stopped": False, "hints": [], "num_classes": 3, "expected_loss": 1.0986,
                "initial_loss": 1.1, "regularized_loss": 1.3}


def test_a_tools_status_goes_after_it_finished_and_when_a_run_starts(qtbot, make_window, monkeypatch):
    monkeypatch.setattr(progress, "TOOL_OUTCOME_MS", 300, raising=False)
    window = make_window(ToolEngine())
    with qtbot.waitSignal(window.run_finished, timeout=5000):
        assert window.run_tool("check_setup")
    assert window.progress.bar.format() == "Check setup: done"
    assert "Step 30/100" not in window.progress.label.text()
    qtbot.waitUntil(lambda: window.progress.bar.format() == "Idle", timeout=3000)
    assert window.progress.label.text() == "Ready." and window.progress.label.toolTip() == ""

    monkeypatch.setattr(progress, "TOOL_OUTCOME_MS", 60000)
    qtbot.waitUntil(lambda: not window.is_running(), timeout=5000)
    with qtbot.waitSignal(window.run_finished, timeout=5000):
        window.run_tool("check_setup")
    qtbot.waitUntil(lambda: not window.is_running(), timeout=5000)
    assert window.progress.bar.format() == "Check setup: done"
    with qtbot.waitSignal(window.run_finished, timeout=10000):
        assert window.start_training()
        assert window.progress.bar.format() == "Starting…"
    assert not window.progress.idle_timer.isActive()


class ResumeEngine(ScriptedEngine):
    def resume(self, run_dir, *, on_event, stop):
        config = Config.load(Path(run_dir) / "config.json")
        self.configs.append(config)
        on_event(RunStarted(run_dir=str(run_dir), device="CPU: test", config=config.to_dict()))
        on_event(Finished(run_dir=str(run_dir), stop_reason="completed", best_epoch=2,
                          best_metrics={"val_accuracy": 0.8, "val_loss": 0.5}))


def stopped_run(folder: Path, config: Config) -> Path:
    """A run folder stopped after its first epoch, as the engine leaves one."""
    (folder / "checkpoint").mkdir(parents=True)
    config.save(folder / "config.json")
    (folder / "checkpoint" / "state.json").write_text(json.dumps({"epoch": 1}))
    (folder / "summary.json").write_text(json.dumps({"stop_reason": "stopped"}))
    return folder


def test_a_resumed_run_shows_its_own_settings(qtbot, make_window, tmp_path, monkeypatch):
    other = make_tiny_dataset(tmp_path, classes=2, per_class=4, size=32, name="other_data")
    run_config = small_config(other).with_overrides({"training.head_epochs": 1, "optimizer.learning_rate": 3e-3})
    run_dir = stopped_run(tmp_path / "runs" / "run_7", run_config)
    engine = ResumeEngine()
    window = make_window(engine)
    path = tmp_path / "mine.json"
    assert window.save_config_file(path)
    window.regularization_panel.bindings["regularization.label_smoothing"].widget.setValue(0.2)
    # Unsaved changes to a file are asked about first; Cancel resumes nothing.
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Cancel)
    assert not window.resume_run(run_dir) and not window.is_running()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Discard)
    with qtbot.waitSignal(window.run_finished, timeout=5000):
        assert window.resume_run(run_dir)
        assert window.result_panel.outcome.text() == "Resuming…"
        assert "run_7" in window.statusBar().currentMessage()
    assert engine.configs == [run_config]
    assert window.config == run_config and window.data_panel.dir_edit.text() == str(other)
    assert "run_7 (resumed run)" in window.windowTitle() and not window.isWindowModified()
    assert window.document.path is None  # Save asks for a file: never the run folder's config.json
    assert Config.load(path).regularization.label_smoothing == 0.0  # discarded


# -- item 8: nothing lost ----------------------------------------------------------------------------
def open_window(qtbot, settings: QSettings, config: Config | None = None) -> MainWindow:
    window = MainWindow(config, settings=settings, runner=ScriptedEngine())
    qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot, 10000))
    window.show()
    return window


def test_the_settings_and_runs_folder_come_back_at_the_next_start(qtbot, tmp_path, dataset):
    settings = ini_settings(tmp_path / "settings.ini")
    first = open_window(qtbot, settings, small_config(dataset))
    first.regularization_panel.bindings["regularization.label_smoothing"].widget.setValue(0.2)
    first.data_panel.bindings["data.batch_size"].widget.setValue(4)
    first.data_panel.runs_dir_edit.setText(str(tmp_path / "my_runs"))
    edited = first.config
    assert first.close()

    second = open_window(qtbot, ini_settings(tmp_path / "settings.ini"))
    assert second.config == edited and second.build_config() == edited
    assert second.config.data.dir == str(dataset)
    assert second.data_panel.runs_dir() == tmp_path / "my_runs"
    assert "Restored the settings of the last session" in second.statusBar().currentMessage()
    assert second.windowTitle().startswith("untitled") and not second.isWindowModified()
    # An explicit config (the app's --config) wins over the last session.
    third = open_window(qtbot, ini_settings(tmp_path / "settings.ini"), small_config(dataset))
    assert third.config == small_config(dataset)
    for window in (second, third):
        assert window.close()
    # Settings are also kept while the window is open (a crash loses at most half a second).
    fourth = open_window(qtbot, ini_settings(tmp_path / "settings.ini"))
    fourth.regularization_panel.bindings["regularization.label_smoothing"].widget.setValue(0.3)
    qtbot.waitUntil(lambda: Config.load(tmp_path / "settings-last-settings.json")
                    .regularization.label_smoothing == 0.3, timeout=3000)
    assert fourth.close()


def test_closing_with_unsaved_changes_to_a_file_asks(qtbot, tmp_path, dataset, monkeypatch):
    """Settings without a file are never asked about: they come back at the next start.
    Settings with a file and unsaved changes ask Save / Discard / Cancel."""
    asked = []

    def answer(button):
        def question(*args, **kwargs):
            asked.append(args[2])
            return button
        monkeypatch.setattr(QMessageBox, "question", question)

    answer(QMessageBox.StandardButton.Cancel)
    settings = ini_settings(tmp_path / "settings.ini")
    window = open_window(qtbot, settings, small_config(dataset))
    window.regularization_panel.bindings["regularization.label_smoothing"].widget.setValue(0.1)
    assert window.close() and asked == []  # untitled: kept for the next start, nothing asked

    window = open_window(qtbot, settings)
    path = tmp_path / "mine.json"
    assert window.save_config_file(path)
    window.regularization_panel.bindings["regularization.label_smoothing"].widget.setValue(0.2)
    assert not window.close() and window.isVisible()  # Cancel keeps the window open
    assert "mine.json" in asked[0]

    answer(QMessageBox.StandardButton.Save)
    assert window.close() and len(asked) == 2
    assert Config.load(path).regularization.label_smoothing == 0.2

    window = open_window(qtbot, settings)
    assert "mine.json" in window.windowTitle() and not window.isWindowModified()
    window.regularization_panel.bindings["regularization.label_smoothing"].widget.setValue(0.3)
    answer(QMessageBox.StandardButton.Discard)
    assert window.close() and len(asked) == 3
    assert Config.load(path).regularization.label_smoothing == 0.2
    window = open_window(qtbot, settings)  # discarded changes do not come back
    assert window.config.regularization.label_smoothing == 0.2 and not window.isWindowModified()
    assert window.close() and len(asked) == 3


def test_a_typed_folder_reaches_the_recent_folders(qtbot, make_window, tmp_path):
    typed = make_tiny_dataset(tmp_path, classes=2, per_class=3, size=32, name="typed")
    window = make_window()
    edit = window.data_panel.dir_edit
    edit.clear()
    qtbot.keyClicks(edit, str(tmp_path / "no_such_folder"))
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert str(tmp_path / "no_such_folder") not in window.recent_folders()
    edit.clear()
    qtbot.keyClicks(edit, str(typed))
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert window.recent_folders()[0] == str(typed)
    assert window.data_panel.recent.findData(str(typed)) >= 0
    assert window.config.data.dir == str(typed)


def test_a_window_without_settings_keeps_them_out_of_the_users_own(qtbot, private_qsettings, dataset):
    window = open_window(qtbot, None, small_config(dataset))  # type: ignore[arg-type]
    assert Path(window.settings.fileName()).is_relative_to(private_qsettings)
    assert window.close()

"""Hint fixes (issue 4) and the sanity tools in the window.

Most tests use stand-in engines (no TensorFlow); the last one runs the real setup check
in the engine's child process on tiny data.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from gui.tools import LRRangeDialog
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
from training.events import Hint, Log
from training.service.messages import ToolResult as ToolFinished


def lr_result(phase: str = "head", suggested: float | None = 0.003) -> dict:
    rates = list(np.logspace(-7, 1, 60))
    losses = [1.1 - 0.8 / (1 + math.exp(-(math.log10(r) + 3) * 2)) + (2.0 if r > 1 else 0.0) for r in rates]
    return {"learning_rates": rates, "losses": losses, "raw_losses": losses, "phase": phase,
            "suggested_learning_rate": suggested, "min_loss_learning_rate": 0.03,
            "steepest_learning_rate": 0.003, "diverged": True, "stopped": False, "hints": []}


class ToolEngine(ScriptedEngine):
    """Also answers the sanity tools, as ``gui.worker`` asks a stand-in runner."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tools: list[str] = []

    def tool(self, name, config, *, on_event, stop):
        self.tools.append(name)
        on_event(Log(message=f"{name}: measuring"))
        hint = Hint(id="lr_range_suggestion", severity="info", title="Suggested learning rate: 0.003",
                    message="lower", fixes=[{"optimizer.learning_rate": 0.003}])
        on_event(hint)
        return dict(lr_result(), hints=[hint.to_dict()])


def hint_titles(window: MainWindow) -> list[str]:
    return [window.hints.item(i).text().split("\n")[0] for i in range(window.hints.count())]


def test_a_hint_fix_applies_to_the_next_run_from_its_button_and_menu(qtbot, make_window):
    window = make_window()
    run_to_end(qtbot, window)
    panel = window.hints_panel
    window.hints.setCurrentRow(hint_titles(window).index("Info hint"))
    assert not panel.apply_button.isEnabled()  # nothing to apply
    window.hints.setCurrentRow(0)  # the error hint: optimizer.learning_rate = 1e-4
    assert panel.apply_button.isEnabled() and panel.restart_button.isEnabled()
    panel.apply_button.click()
    assert window.config.optimizer.learning_rate == pytest.approx(1e-4)
    assert window.optimizer_panel.bindings["optimizer.learning_rate"].widget.value() == pytest.approx(1e-4)
    assert window.isWindowModified() and not window.is_running()

    window.set_config(window.config.with_overrides({"optimizer.learning_rate": 0.01}))
    menu = window.hints.context_menu(window.hints.item(0))
    texts = [action.text() for action in menu.actions()]
    assert texts == ["Apply to next run: Learning rate (Optimizer tab) = 0.0001",
                     "Apply and restart: Learning rate (Optimizer tab) = 0.0001"]
    menu.actions()[0].trigger()
    assert window.config.optimizer.learning_rate == pytest.approx(1e-4)


def test_apply_and_restart_stops_the_run_and_starts_one_with_the_fix(qtbot, make_window):
    engine = ScriptedEngine(endless=True)
    window = make_window(engine)
    window.hints.add_hint(Hint(id="lr", severity="error", title="Loss diverging", message="lower it",
                               fixes=[{"optimizer.learning_rate": 2e-4, "training.head_epochs": 1}]))
    assert window.start_training()
    qtbot.waitUntil(lambda: window.plots.point_counts()["batch_loss"] >= 2, timeout=5000)
    window.hints.add_hint(Hint(id="lr", severity="error", title="Loss diverging", message="lower it",
                               fixes=[{"optimizer.learning_rate": 2e-4, "training.head_epochs": 1}]))
    window.hints.setCurrentRow(0)
    window.hints_panel.restart_button.click()
    qtbot.waitUntil(lambda: len(engine.configs) == 2, timeout=10000)  # stopped, then started again
    assert engine.stopped_at is not None and window.is_running()
    assert engine.configs[1].optimizer.learning_rate == pytest.approx(2e-4)
    assert engine.configs[1].training.head_epochs == 1
    assert engine.configs[0].optimizer.learning_rate == pytest.approx(1e-3)


def test_an_invalid_fix_is_refused_with_a_message(make_window):
    window = make_window()
    before = window.config
    window.hints.fix_requested.emit({"optimizer.name": "sgdd"})
    assert "sgdd" in window.error_dialog.text() and window.config == before


def test_lr_range_dialog_applies_the_rate_at_its_marker(qtbot, make_window):
    window = make_window()
    dialog = window.show_lr_range_result(lr_result())
    assert isinstance(dialog, LRRangeDialog) and dialog.isVisible()
    assert dialog.plot.getPlotItem().ctrl.logXCheck.isChecked()  # log x-axis
    assert dialog.marker.movable and dialog.marker.value() == pytest.approx(math.log10(0.003))
    assert dialog.rate() == pytest.approx(0.003)
    dialog.apply_button.click()
    assert window.config.optimizer.learning_rate == pytest.approx(0.003)
    dialog.marker.setValue(math.log10(0.0213))  # as a drag leaves it
    assert dialog.rate_label.text() == "Marker: learning rate 0.021"
    dialog.apply_button.click()
    assert window.config.optimizer.learning_rate == pytest.approx(0.021)
    # A test measured in the fine-tuning phase sets that phase's rate.
    fine = window.show_lr_range_result(lr_result(phase="fine_tune"))
    assert not dialog.isVisible()
    fine.apply_button.click()
    assert window.config.training.fine_tune_learning_rate == pytest.approx(0.003)


def test_tools_menu_runs_a_tool_and_shows_its_hints_and_plot(qtbot, make_window):
    engine = ToolEngine()
    window = make_window(engine)
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Tools")
    names = [action.objectName() for action in menu.actions()]
    assert names == ["check_setupAction", "overfit_tiny_subsetAction", "lr_range_testAction"]
    with qtbot.waitSignal(window.run_finished, timeout=5000) as blocker:
        window.tool_actions["lr_range_test"].trigger()
        assert not window.start_action.isEnabled()  # one job at a time
    assert isinstance(blocker.args[0], ToolFinished) and engine.tools == ["lr_range_test"]
    qtbot.waitUntil(lambda: not window.is_running(), timeout=5000)
    assert window.start_action.isEnabled() and not window.resume_action.isEnabled()
    assert hint_titles(window) == ["Suggested learning rate: 0.003", "Learning-rate range test: try 0.003"]
    assert window.lr_dialog is not None and window.lr_dialog.isVisible()
    assert "measuring" in window.log.toPlainText()
    assert window.plots.point_counts()["val_loss"] == 0  # a tool is not a run


def test_check_setup_runs_in_the_engine_process(qtbot, tmp_path):
    data = make_tiny_dataset(tmp_path, classes=3, per_class=8, size=32)
    config = small_config(data)
    window = MainWindow(config, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot))
    window.show()
    with qtbot.waitSignal(window.run_finished, timeout=120000) as blocker:
        assert window.run_tool("check_setup")
    last = blocker.args[0]
    assert isinstance(last, ToolFinished), getattr(last, "message", last)
    assert last.result["num_classes"] == 3
    assert last.result["expected_loss"] == pytest.approx(math.log(3))
    assert any(title.startswith("Setup check") for title in hint_titles(window))
    qtbot.waitUntil(lambda: not window.is_running(), timeout=10000)
    assert not Path(window.data_panel.runs_dir()).exists() or not any(Path(window.data_panel.runs_dir()).iterdir())

"""The Search dialog: the space it sends, its messages for bad input, and a real tiny search in
the engine process (table, plot, Stop, "train the best for longer")."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from gui import engine_calls
from gui.window import MainWindow
from tests.conftest import stop_run_before_close
from tests.helpers import make_tiny_dataset
from training.api import Config, default_config
from training.events import BatchEnd, Finished, RunStarted
from training.search import (
    BEST_CONFIG_FILE,
    SearchFinished,
    SearchStarted,
    StageStarted,
    TrialFinished,
    TrialStarted,
    read_trials_csv,
)

QUIET = {"augmentation.horizontal_flip": False, "augmentation.rotation": 0.0, "augmentation.zoom": 0.0,
         "augmentation.translation": 0.0}


@pytest.fixture(autouse=True)
def no_helper_process(monkeypatch):
    """The settings' helper process (plans, previews) would import Keras beside the search."""
    def planned(config, steps_per_epoch):
        return {"fine_tune": [config.optimizer.learning_rate] * (config.training.fine_tune_epochs * steps_per_epoch)}

    def preview(config, paths, size, seed):
        images = np.zeros((len(paths), size, size, 3), np.uint8)
        return images, images

    monkeypatch.setattr(engine_calls, "planned_learning_rates", planned)
    monkeypatch.setattr(engine_calls, "augmentation_preview", preview)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("search-gui"), classes=3, per_class=8, size=32)


def tiny_config(data: Path, **overrides) -> Config:
    return default_config().with_overrides({
        "data.dir": str(data), "model.backbone": "SmallCNN", "model.weights": "none",
        "data.image_size": 32, "data.batch_size": 8, "training.head_epochs": 0,
        "training.fine_tune_epochs": 1, **QUIET, **overrides})


class ScriptedSearch:
    """A stand-in engine: ``search`` records what it was sent and reports three trials (the
    accuracies given) and a best_config.json; calling it trains (records the config)."""

    def __init__(self, accuracies=(0.5, 0.9, 0.7)) -> None:
        self.accuracies = accuracies
        self.sent: dict = {}
        self.trained: list[Config] = []

    def search(self, config, *, out_dir, trials, space, options, on_event, stop):
        self.sent = {"config": config, "out_dir": out_dir, "trials": trials, "space": space, "options": options}
        Path(out_dir).mkdir(parents=True)
        on_event(SearchStarted(out_dir=out_dir, trials=len(self.accuracies), space=space))
        on_event(StageStarted(stage="coarse", trials=len(self.accuracies), epochs=1, space=space))
        for number, accuracy in enumerate(self.accuracies, start=1):
            params = {key: (entry["choices"][number % len(entry["choices"])] if "choices" in entry
                            else entry["low"] * (1 + number)) for key, entry in space.items()}
            run_dir = f"{out_dir}/trial-{number:03d}"
            on_event(TrialStarted(trial=number, stage="coarse", run_dir=run_dir, params=params, epochs=1))
            on_event(RunStarted(run_dir=run_dir, device="CPU: test", config=config.to_dict()))
            on_event(Finished(run_dir=run_dir, stop_reason="completed", best_epoch=1))
            on_event(TrialFinished(trial=number, stage="coarse", run_dir=run_dir, status="completed",
                                   val_accuracy=accuracy, val_loss=1 - accuracy, params=params))
        best = config.with_overrides({"training.fine_tune_epochs": 3})
        best.save(Path(out_dir) / BEST_CONFIG_FILE)
        on_event(SearchFinished(out_dir=out_dir, stop_reason="completed", best_trial=2,
                                best_config=str(Path(out_dir) / BEST_CONFIG_FILE),
                                best_metrics={"val_accuracy": 0.9, "val_loss": 0.1}))

    def __call__(self, config, *, run_dir, on_event, stop):
        self.trained.append(config)
        on_event(Finished(run_dir=str(run_dir), stop_reason="completed", best_epoch=0))


@pytest.fixture
def make_window(qtbot, tmp_path):
    def make(config: Config, runner=None) -> MainWindow:
        settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(config, settings=settings, runner=runner)
        window.confirm_close_during_training = lambda: True  # never a modal question in tests
        window.data_panel.runs_dir_edit.setText(str(tmp_path / "runs"))
        qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot, 60000))
        window.show()
        return window
    return make


def rows(dialog) -> list[list[str]]:
    table = dialog.view.table
    return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def test_the_dialog_sends_the_space_the_user_ticked_and_shows_the_trials(qtbot, make_window, dataset):
    engine = ScriptedSearch()
    window = make_window(tiny_config(dataset, **{"model.backbone": "MobileNetV2", "model.weights": "imagenet",
                                                 "training.mode": "fine_tune", "training.head_epochs": 1}), engine)
    window.search_action.trigger()
    dialog = window.search_dialog
    assert dialog.isVisible()
    # The rows speak the controls' words, one per setting of the default space.
    labels = {key: row.check.text() for key, row in dialog.rows.items()}
    assert labels["optimizer.learning_rate"] == "Learning rate"
    assert labels["model.head.dropout"] == "Dropout"
    assert labels["training.fine_tune_layers"] == "Fine-tune top layers"
    for key, row in dialog.rows.items():
        row.check.setChecked(key in ("optimizer.learning_rate", "model.head.dropout", "training.fine_tune_layers"))
    rate = dialog.rows["optimizer.learning_rate"]
    rate.low.setText("1e-4")
    rate.high.setText("0.01")
    dropout = dialog.rows["model.head.dropout"]
    dropout.high.setText("0.3")
    dialog.rows["training.fine_tune_layers"].choices.setText("20, all")
    dialog.trials_spin.setValue(3)
    dialog.median_box.setChecked(False)
    with qtbot.waitSignal(window.lifecycle.ended, timeout=10000):
        assert dialog.start()
    assert engine.sent["space"] == {
        "optimizer.learning_rate": {"low": 1e-4, "high": 0.01, "log": True},
        "model.head.dropout": {"low": 0.0, "high": 0.3, "log": False},
        "training.fine_tune_layers": {"choices": [20, "all"]},
    }
    assert engine.sent["trials"] == 3 and engine.sent["options"] == {"median_pruning": False}
    assert Path(engine.sent["out_dir"]).parent == Path(window.data_panel.runs_dir())
    assert Path(engine.sent["out_dir"]).name.startswith("search-")
    assert engine.sent["config"] == window.config
    qtbot.waitUntil(lambda: not window.is_running(), timeout=5000)

    # The table: the most accurate first, one column per searched setting, by its label.
    headers = [dialog.view.table.horizontalHeaderItem(c).text() for c in range(dialog.view.table.columnCount())]
    assert headers == ["Trial", "Stage", "Status", "Val accuracy", "Val loss", "Learning rate", "Dropout",
                       "Fine-tune top layers"]
    table = rows(dialog)
    assert [row[0] for row in table] == ["2", "3", "1"]
    assert [row[3] for row in table] == ["0.900", "0.700", "0.500"]
    assert table[0][5] == "0.0003" and table[0][7] == "20"
    assert dialog.view.table.item(0, 0).font().bold() and not dialog.view.table.item(1, 0).font().bold()
    # The plot: one point a trial, on a log axis for the learning rate, the best ringed.
    assert dialog.view.plot_knob.currentData() == "optimizer.learning_rate"
    assert dialog.view.plot.getPlotItem().ctrl.logXCheck.isChecked()
    points = sorted(dialog.view.plot_points())
    assert [x for x, _ in points] == pytest.approx([2e-4, 3e-4, 4e-4]) and [y for _, y in points] == [0.5, 0.9, 0.7]
    assert list(dialog.view.best_point.yData) == [0.9]
    dialog.view.plot_knob.setCurrentIndex(2)  # the choices: one tick per choice
    assert not dialog.view.plot.getPlotItem().ctrl.logXCheck.isChecked()
    assert sorted(x for x, _ in dialog.view.plot_points()) == [0.0, 1.0, 1.0]
    assert "Search completed. Best: trial 2" in dialog.status.text()
    assert "Trial 2 completed: validation accuracy 0.900" in window.log.toPlainText()

    # Train the best for longer: its settings, 3x its epochs, into the window, and a run.
    dialog.longer_spin.setValue(3)
    assert dialog.longer_label.text() == "= 12 epochs"  # head 1 + fine-tune 3, times 3
    with qtbot.waitSignal(window.run_finished, timeout=10000):
        assert dialog.train_best_button.isEnabled()
        dialog.train_best_button.click()
    assert window.config.training.fine_tune_epochs == 9
    assert window.model_panel.bindings["training.fine_tune_epochs"].widget.value() == 9
    assert engine.trained[-1].training.fine_tune_epochs == 9
    assert window.document.path is None and "best settings of search-" in window.windowTitle()
    assert not dialog.isVisible()


BAD_INPUT = [  # (what the user does, what the message says)
    (lambda d: [row.check.setChecked(False) for row in d.rows.values()], "Tick at least one setting"),
    (lambda d: d.rows["model.head.dropout"].high.setText("0"), "Dropout: “Low” (0) must be below “High” (0)"),
    (lambda d: d.rows["optimizer.learning_rate"].low.setText("0"),
     "Learning rate: a log-scale range needs “Low” above 0"),
    (lambda d: d.rows["optimizer.weight_decay"].high.setText("lots"),
     "Weight decay: “High” must be a number. Received: 'lots'"),
    (lambda d: d.rows["training.fine_tune_layers"].choices.setText(" , "), "Fine-tune top layers: list at least one"),
    (lambda d: d.rows["model.head.dropout"].high.setText("1.5"), "Dropout (Model tab)"),  # the engine refuses it
]


def test_bad_input_is_refused_with_a_message_naming_the_control(make_window, dataset):
    engine = ScriptedSearch()
    window = make_window(tiny_config(dataset, **{"model.backbone": "MobileNetV2", "model.weights": "imagenet",
                                                 "training.mode": "fine_tune", "training.head_epochs": 1}), engine)
    for edit, message in BAD_INPUT:
        window.search_dialog = None  # a fresh dialog, with the default ranges
        dialog = window.open_search_dialog()
        edit(dialog)
        assert not dialog.start()
        assert message in dialog.message.text(), dialog.message.text()
        assert not engine.sent and not window.is_running()
        dialog.rows["model.head.dropout"].low.setText("0.1")  # any edit clears the message
        assert dialog.message.text() == ""
        dialog.close()


def test_an_output_folder_with_files_is_refused(make_window, dataset, tmp_path):
    engine = ScriptedSearch()
    window = make_window(tiny_config(dataset), engine)
    dialog = window.open_search_dialog()
    assert dialog.folder_edit.text() == "" and "new search folder" in dialog.folder_edit.placeholderText()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    dialog.folder_edit.setText(str(tmp_path / "full"))
    assert not dialog.start()
    assert dialog.message.text().startswith("Output folder: ") and "already holds files" in dialog.message.text()
    assert not engine.sent


def test_a_real_search_in_the_engine_process_fills_the_table_and_the_plot(qtbot, make_window, dataset, tmp_path):
    window = make_window(tiny_config(dataset))
    dialog = window.open_search_dialog()
    for key, row in dialog.rows.items():
        row.check.setChecked(key in ("model.head.dropout", "regularization.label_smoothing"))
    dialog.trials_spin.setValue(3)
    dialog.folder_edit.setText(str(tmp_path / "my-search"))
    started = time.monotonic()
    with qtbot.waitSignal(window.lifecycle.ended, timeout=120000) as blocker:
        assert dialog.start()
        assert not dialog.start_button.isEnabled() and dialog.stop_button.isEnabled()
        assert not window.start_action.isEnabled()  # one job at a time: no run beside the search
    kind, outcome = blocker.args
    assert kind == "search" and isinstance(outcome, SearchFinished), getattr(outcome, "message", outcome)
    assert outcome.stop_reason == "completed" and outcome.best_trial in (1, 2, 3)
    print(f"3 trials in {time.monotonic() - started:.0f} s")
    table = rows(dialog)
    assert len(table) == 3 and {row[2] for row in table} == {"completed"}
    accuracies = [float(row[3]) for row in table]
    assert accuracies == sorted(accuracies, reverse=True)
    assert table[0][0] == str(outcome.best_trial)
    assert sorted(y for _, y in dialog.view.plot_points()) == pytest.approx(sorted(accuracies), abs=5e-4)
    assert len(read_trials_csv(tmp_path / "my-search")) == 3
    assert dialog.view.plot_knob.count() == 2 and dialog.view.plot_knob.itemText(0) == "Dropout"
    qtbot.waitUntil(lambda: dialog.train_best_button.isEnabled(), timeout=10000)

    trained = []
    window.start_training = lambda: trained.append(window.config) or True
    dialog.longer_spin.setValue(2)
    assert dialog.train_best()
    best = Config.load(tmp_path / "my-search" / BEST_CONFIG_FILE)
    assert trained[0].training.fine_tune_epochs == 2 * best.training.fine_tune_epochs == 2
    assert trained[0].model.head.dropout == best.model.head.dropout
    assert window.model_panel.bindings["training.fine_tune_epochs"].widget.value() == 2


def test_stop_ends_a_real_search(qtbot, make_window, dataset):
    window = make_window(tiny_config(dataset, **{"training.fine_tune_epochs": 60}))
    dialog = window.open_search_dialog()
    for key, row in dialog.rows.items():
        row.check.setChecked(key == "model.head.dropout")
    dialog.trials_spin.setValue(3)
    batches = []
    window.lifecycle.event.connect(lambda event: isinstance(event, BatchEnd) and batches.append(event))
    with qtbot.waitSignal(window.lifecycle.ended, timeout=120000) as blocker:
        assert dialog.start()
        qtbot.waitUntil(lambda: len(batches) >= 3, timeout=90000)
        requested = time.monotonic()
        dialog.stop_button.click()
        assert not dialog.stop_button.isEnabled()
    assert time.monotonic() - requested < 20
    outcome = blocker.args[1]
    assert isinstance(outcome, SearchFinished) and outcome.stop_reason == "stopped"
    table = rows(dialog)
    assert len(table) == 1 and table[0][2] == "stopped"
    assert batches[-1].epoch < 20  # the first trial (20 coarse epochs) was cut short
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=10000)
    assert window.start_action.isEnabled()

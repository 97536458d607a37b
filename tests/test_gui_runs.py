"""The Runs tab and the Compare dialog (issue 14, parts 1-3, the window's side).

Two real, tiny runs are made once for the module (SmallCNN, 32 px, 24 images): one that
finished (2 epochs) and one stopped after its first epoch of two (resumable), with other
settings. The others are copies of those: a finished run of one epoch with other settings
still (its config.json, summary.json and metrics.csv edited as such a run writes them), and
the other statuses, left as a kill, a stop before any checkpoint, a failure or a damaged
file would leave them. The window's engine is a stand-in
that records what it is asked to train or resume and writes a run folder like a real run.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSettings, Qt

from gui.runs_panel import COLUMNS, RUN_ROLE
from gui.window import MainWindow
from tests.conftest import stop_run_before_close
from tests.helpers import make_tiny_dataset
from training.api import run_config, run_training
from training.config import Config
from training.events import EpochEnd, Finished, RunStarted

TINY = {"model.backbone": "SmallCNN", "model.weights": "none", "data.image_size": 32,
        "data.batch_size": 8, "training.head_epochs": 0, "training.fine_tune_epochs": 1}
STATUSES = {"finished-a": "finished", "finished-b": "finished", "resumable": "resumable",
            "killed": "resumable", "stopped": "stopped", "failed": "failed", "damaged": "damaged"}


def tiny_config(data: Path, **overrides) -> Config:
    return Config().with_overrides({**TINY, "data.dir": str(data), **overrides})


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """The real runs: name -> run folder (and ``data``, the images)."""
    base = tmp_path_factory.mktemp("gui-runs")
    data = make_tiny_dataset(base, classes=2, per_class=12, size=32)
    runs = base / "made"
    b = run_training(tiny_config(data, **{"optimizer.learning_rate": 0.0003, "model.head.dropout": 0.4,
                                          "training.fine_tune_epochs": 2}),
                     run_dir=runs / "finished-b", on_event=lambda e: None)
    assert b.stop_reason == "completed", b.error
    stop = threading.Event()

    def stop_after_first_epoch(event) -> None:
        if isinstance(event, EpochEnd):
            stop.set()
    resumable = run_training(tiny_config(data, **{"training.fine_tune_epochs": 2}), run_dir=runs / "resumable",
                             on_event=stop_after_first_epoch, stop=stop)
    assert resumable.stop_reason == "stopped" and resumable.best_epoch == 1, resumable.error
    one_epoch(runs / "finished-b", runs / "finished-a", learning_rate=0.003)
    return {"finished-a": runs / "finished-a", "finished-b": runs / "finished-b",
            "resumable": runs / "resumable", "data": data}


def one_epoch(source: Path, run_dir: Path, learning_rate: float) -> None:
    """A copy of a finished run, as a run of one epoch at another learning rate leaves it."""
    shutil.copytree(source, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["optimizer"]["learning_rate"] = config["training"]["fine_tune_learning_rate"] = learning_rate
    config["training"]["fine_tune_epochs"] = 1
    config["model"]["head"]["dropout"] = 0.2
    (run_dir / "config.json").write_text(json.dumps(config))
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    (run_dir / "metrics.csv").write_text("\n".join(lines[:2]) + "\n")
    header, first = lines[0].split(","), lines[1].split(",")
    best = {key: float(value) for key, value in zip(header, first) if key not in ("epoch", "phase")}
    edit_summary(run_dir, best_epoch=1, best_metrics=best, epochs_completed=1, epochs_planned=1)


def edit_summary(run_dir: Path, **changes) -> None:
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(changes)
    path.write_text(json.dumps(summary))


@pytest.fixture
def root(tmp_path, made) -> Path:
    """A runs folder with a run of every status."""
    root = tmp_path / "runs"
    for name in ("finished-a", "finished-b", "resumable"):
        shutil.copytree(made[name], root / name)
    killed = root / "killed"  # a kill leaves no summary; the checkpoint remains
    shutil.copytree(made["resumable"], killed)
    (killed / "summary.json").unlink()
    stopped = root / "stopped"  # stopped before its first epoch ended: nothing to continue from
    shutil.copytree(made["resumable"], stopped)
    shutil.rmtree(stopped / "checkpoint")
    edit_summary(stopped, best_epoch=0, best_metrics={}, epochs_completed=0)
    failed = root / "failed"
    shutil.copytree(made["resumable"], failed)
    shutil.rmtree(failed / "checkpoint")
    edit_summary(failed, stop_reason="failed", error="The engine ran out of memory.", best_epoch=0,
                 best_metrics={})
    damaged = root / "damaged"
    shutil.copytree(made["finished-a"], damaged)
    (damaged / "config.json").write_text("{not json", encoding="utf-8")
    return root


class RecordingEngine:
    """The window's engine: records each config it trains (writing a small run folder, as a
    finished run leaves it) and each folder it resumes."""

    def __init__(self) -> None:
        self.configs: list[Config] = []
        self.resumed: list[str] = []

    def __call__(self, config, *, run_dir, on_event, stop):
        self.configs.append(config)
        Path(run_dir).mkdir(parents=True)
        config.save(Path(run_dir) / "config.json")
        metrics = {"val_accuracy": 0.5, "val_loss": 0.7}
        (Path(run_dir) / "summary.json").write_text(json.dumps({
            "stop_reason": "completed", "best_epoch": 1, "best_metrics": metrics,
            "started_at": "2031-01-01T10:00:00+00:00"}))
        on_event(RunStarted(run_dir=str(run_dir), device="CPU: test", config=config.to_dict()))
        on_event(Finished(run_dir=str(run_dir), stop_reason="completed", best_epoch=1, best_metrics=metrics))

    def resume(self, run_dir, *, on_event, stop):
        self.resumed.append(str(run_dir))
        on_event(Finished(run_dir=str(run_dir), stop_reason="completed", best_epoch=2, best_metrics={}))


@pytest.fixture
def window(qtbot, tmp_path, made, root):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(tiny_config(made["data"]), settings=settings, runner=RecordingEngine())
    window.data_panel.runs_dir_edit.setText(str(root))
    qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot))
    window.show()
    with qtbot.waitSignal(window.runs_panel.listed, timeout=15000):
        window.runs_action.trigger()  # File > Runs: the tab lists the folder when shown
    assert window.output_tabs.currentWidget() is window.runs_panel
    return window


def rows(panel) -> dict[str, dict[str, str]]:
    """The rows shown: run name -> {column title: text}."""
    shown = {}
    for row in range(panel.proxy.rowCount()):
        cells = {title: panel.proxy.index(row, column).data() for column, title in enumerate(COLUMNS)}
        shown[Path(panel.proxy.index(row, 0).data(RUN_ROLE)).name] = cells
    return shown


def select(panel, *names: str) -> None:
    by_name = {Path(run).name: run for run in panel.visible_runs()}
    panel.select_runs([by_name[name] for name in names])


def click_header(qtbot, panel, title: str) -> None:
    header = panel.view.horizontalHeader()
    column = COLUMNS.index(title)
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# -- the table ------------------------------------------------------------------------------------
def test_the_table_lists_every_run_with_its_status_and_figures(window, root):
    shown = rows(window.runs_panel)
    assert {name: cells["Status"].lower() for name, cells in shown.items()} == STATUSES
    b = shown["finished-b"]
    best = summary(root / "finished-b")["best_metrics"]
    assert b["Val accuracy"] == f"{100 * best['val_accuracy']:.1f} %"
    assert (b["Backbone"], b["Size"], b["Best epoch"]) == ("SmallCNN", "32", str(summary(root / "finished-b")["best_epoch"]))
    # The changed settings in the window's words: control labels and values, never config keys.
    assert "Learning rate = 0.0003" in b["Changed settings"] and "Dropout = 0.4" in b["Changed settings"]
    assert "optimizer." not in b["Changed settings"] and "model." not in b["Changed settings"]
    assert shown["stopped"]["Val accuracy"] == "-" and shown["failed"]["Best epoch"] == "-"
    status_tip = window.runs_panel.proxy.index(
        window.runs_panel.visible_runs().index(str(root / "resumable")), COLUMNS.index("Status")).data(
        Qt.ItemDataRole.ToolTipRole)
    assert "after epoch 1 of 2" in status_tip and "Resume continues it" in status_tip and "--resume" not in status_tip
    assert "7 runs in" in window.runs_panel.message.text()


def test_sorting_by_a_figure_is_numeric_and_runs_without_one_come_last(qtbot, window, root):
    # As text, "10.5" < "100.5" < "9.5"; as numbers, 9.5 < 10.5 < 100.5.
    for name, loss in (("finished-a", 9.5), ("finished-b", 100.5), ("resumable", 10.5)):
        edit_summary(root / name, best_metrics={**summary(root / name)["best_metrics"], "val_loss": loss})
    with qtbot.waitSignal(window.runs_panel.listed, timeout=15000):
        window.runs_panel.refresh_button.click()
    panel = window.runs_panel
    with_loss = {name for name, cells in rows(panel).items() if cells["Val loss"] != "-"}
    assert with_loss == {"finished-a", "finished-b", "resumable", "killed", "damaged"}
    click_header(qtbot, panel, "Val loss")
    first = panel.view.horizontalHeader().sortIndicatorOrder()
    click_header(qtbot, panel, "Val loss")
    assert panel.view.horizontalHeader().sortIndicatorOrder() != first
    for _ in range(2):
        click_header(qtbot, panel, "Val loss")
        names = [Path(run).name for run in panel.visible_runs()]
        losses = [float(rows(panel)[name]["Val loss"]) for name in names[:len(with_loss)]]
        ascending = panel.view.horizontalHeader().sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
        assert losses == sorted(losses, reverse=not ascending)
        assert set(names[:len(with_loss)]) == with_loss  # runs without a validation loss come last, both ways
        assert 9.5 in losses and 100.5 in losses


def test_the_filter_and_the_status_filter_hide_rows(qtbot, window):
    panel = window.runs_panel
    qtbot.keyClicks(panel.filter_edit, "dropout = 0.4")
    assert set(rows(panel)) == {"finished-b"}
    assert "1 shown" in panel.message.text()
    panel.filter_edit.clear()
    panel.status_box.setCurrentIndex(panel.status_box.findData("resumable"))
    assert set(rows(panel)) == {"resumable", "killed"}
    qtbot.keyClicks(panel.filter_edit, "killed")
    assert set(rows(panel)) == {"killed"}
    panel.status_box.setCurrentIndex(0)
    panel.filter_edit.clear()
    assert set(rows(panel)) == set(STATUSES)


# -- one run ----------------------------------------------------------------------------------------
def test_opening_a_run_shows_its_curves(qtbot, window, root):
    panel = window.runs_panel
    for name, epochs in (("finished-b", 2), ("resumable", 1)):
        index = panel.visible_runs().index(str(root / name))
        where = panel.view.visualRect(panel.proxy.index(index, 1)).center()
        with qtbot.waitSignal(panel.opened, timeout=10000):
            # A double-click is a press, a release and a second press on the same row.
            qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=where)
            qtbot.mouseDClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=where)
        for plot, key in ((panel.loss_plot, "loss"), (panel.loss_plot, "val_loss"),
                          (panel.accuracy_plot, "val_accuracy")):
            x, y = plot.series[key].curve.getData()
            assert list(x) == [float(e) for e in range(1, epochs + 1)] and all(math.isfinite(v) for v in y)
        best = summary(root / name)["best_epoch"]
        assert name in panel.detail_title.text() and f"Best epoch {best}:" in panel.detail_title.text()


def test_load_settings_puts_the_runs_settings_into_the_controls(window, root):
    panel = window.runs_panel
    select(panel, "finished-b")
    assert window.config.optimizer.learning_rate != 0.0003
    panel.load_button.click()
    assert window.config.to_dict() == run_config(root / "finished-b").to_dict()
    assert window.optimizer_panel.bindings["optimizer.learning_rate"].get() == 0.0003
    assert window.model_panel.bindings["model.head.dropout"].get() == 0.4
    # The settings have no file: saving can never write over the run's config.json.
    assert window.document.path is None and "finished-b" in window.windowTitle()
    assert "finished-b" in window.statusBar().currentMessage()
    select(panel, "damaged")
    assert not panel.load_button.isEnabled() and not panel.again_button.isEnabled()


def test_resume_is_offered_only_for_a_resumable_run_and_resumes_it(qtbot, window, root):
    panel = window.runs_panel
    for name, status in STATUSES.items():
        select(panel, name)
        assert panel.resume_button.isEnabled() == (status == "resumable"), name
    select(panel, "killed")
    panel.set_running(True)  # while a job runs, nothing else starts
    assert not panel.resume_button.isEnabled() and not panel.again_button.isEnabled()
    panel.set_running(False)
    with qtbot.waitSignal(window.run_finished, timeout=15000):
        panel.resume_button.click()
    assert window.runs.runner.resumed == [str(root / "killed")]


def test_run_again_trains_with_the_runs_settings_and_the_new_run_is_listed(qtbot, window, root):
    panel = window.runs_panel
    select(panel, "finished-b")
    with qtbot.waitSignal(panel.listed, timeout=15000) as listed:
        panel.again_button.click()
    (config,) = window.runs.runner.configs
    assert config.to_dict() == run_config(root / "finished-b").to_dict()
    assert listed.args == [len(STATUSES) + 1]  # the window's run ended: the table lists it too
    assert panel.visible_runs()[0].startswith(str(root))  # the newest first


def test_run_again_says_in_the_log_whether_the_new_run_reproduced_the_old_one(window, root, tmp_path):
    shutil.copytree(root / "finished-b", tmp_path / "again")  # as a run that repeated it exactly
    window._reproducing = root / "finished-b"
    window._on_lifecycle_ended("train", Finished(run_dir=str(tmp_path / "again"), stop_reason="completed",
                                                 best_epoch=2, best_metrics={}))
    log = window.log.toPlainText()
    assert "Same files with the same content as" in log and "reproduced" in log
    assert window._reproducing is None


def test_the_evaluation_button_shows_the_run_in_the_results_tab(window, root):
    panel = window.runs_panel
    select(panel, "finished-a")
    assert panel.results_button.isEnabled()  # every finished run is evaluated as it ends
    panel.results_button.click()
    assert window.output_tabs.currentWidget() is window.results_view
    assert window.results_view.run_dir == str(root / "finished-a") and window.results_view.current() is not None


# -- several runs -------------------------------------------------------------------------------------
def flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return out


def test_compare_overlays_one_curve_a_run_and_lists_exactly_the_differing_settings(qtbot, window, root):
    panel = window.runs_panel
    select(panel, "finished-a")
    assert not panel.compare_button.isEnabled()
    names = ["finished-a", "finished-b", "resumable"]
    select(panel, *names)
    assert panel.compare_button.isEnabled()
    panel.compare_button.click()
    qtbot.waitUntil(lambda: panel.compare_dialog is not None, timeout=10000)
    dialog = panel.compare_dialog
    shown = [Path(run.run_dir).name for run in dialog.runs]
    assert sorted(shown) == sorted(names)
    epochs = {"finished-a": 1, "finished-b": 2, "resumable": 1}
    for plot in dialog.plots:
        assert len(plot.series) == 3
        for run in dialog.runs:
            x, _ = plot.series[run.run_dir].curve.getData()
            assert len(x) == epochs[Path(run.run_dir).name]
        assert [label.text for _, label in plot.legend.items] == shown
    configs = [flat(json.loads((root / name / "config.json").read_text())) for name in shown]
    differing = [key for key in configs[0] if any(config[key] != configs[0][key] for config in configs)]
    assert dialog.diff_keys == differing
    assert {"optimizer.learning_rate", "model.head.dropout", "training.fine_tune_epochs"} <= set(differing)
    assert "model.backbone" not in differing and "data.dir" not in differing
    table = dialog.diff_table
    assert table.rowCount() == len(differing)
    assert table.verticalHeaderItem(differing.index("optimizer.learning_rate")).text() == \
        window.words.control("optimizer.learning_rate")  # the control's label, not the key
    expected = {(row, column) for row, key in enumerate(differing) for column, config in enumerate(configs)
                if config[key] != configs[0][key]}
    assert set(dialog.highlighted(table)) == expected
    assert [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())] == shown
    # Best metrics side by side, the best validation accuracy highlighted.
    accuracies = [summary(root / name)["best_metrics"]["val_accuracy"] for name in shown]
    row = 2  # Status, Best epoch, Validation accuracy, ...
    assert dialog.metrics_table.verticalHeaderItem(row).text() == "Validation accuracy"
    assert {c for r, c in dialog.highlighted(dialog.metrics_table) if r == row} == \
        {c for c, value in enumerate(accuracies) if value == max(accuracies)}

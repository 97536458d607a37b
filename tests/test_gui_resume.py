"""Resume from the window (issue 5): a real run stopped after its first epoch, continued
with Run > Resume in the same folder; and the checks on folders that cannot be resumed.

The real run loads TensorFlow in child processes (about 5 s each on 2 cores): SmallCNN,
no pretrained weights, 32 px, 3 classes x 10 images, 3 epochs.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog

from gui.window import MainWindow
from tests.conftest import stop_run_before_close
from tests.helpers import make_tiny_dataset
from training.api import default_config, resume_problem
from training.events import EpochEnd, Finished


def tiny_config(data: Path, **overrides):
    values = {"data.dir": str(data), "model.backbone": "SmallCNN", "model.weights": "none",
              "data.image_size": 32, "data.batch_size": 8, "training.head_epochs": 1,
              "training.fine_tune_epochs": 2, "augmentation.rotation": 0.0}
    values.update(overrides)
    return default_config().with_overrides(values)


@pytest.fixture
def window(qtbot, tmp_path):
    data = make_tiny_dataset(tmp_path, classes=3, per_class=10, size=32)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(tiny_config(data), settings=settings, prewarm=True)
    window.confirm_close_during_training = lambda: True
    window.data_panel.runs_dir_edit.setText(str(tmp_path / "runs"))
    qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot))
    window.show()
    yield window
    if window.worker is not None:
        window.worker.cancel()
        qtbot.waitUntil(lambda: not window.is_running(), timeout=60000)


def test_a_run_stopped_after_epoch_1_resumes_from_the_window_and_finishes(qtbot, window):
    window.runs.spawn_warm_engine()

    def stop_after_first_epoch(event):
        if isinstance(event, EpochEnd) and window.lifecycle.job_kind == "train":
            window.stop_training()

    window.runs.event.connect(stop_after_first_epoch)
    with qtbot.waitSignal(window.run_finished, timeout=120000) as blocker:
        assert window.start_training()
    stopped = blocker.args[0]
    assert isinstance(stopped, Finished) and stopped.stop_reason == "stopped", stopped
    run_dir = Path(stopped.run_dir)
    done = json.loads((run_dir / "checkpoint" / "state.json").read_text())["epoch"]
    assert 1 <= done < 3
    qtbot.waitUntil(window.resume_action.isEnabled, timeout=10000)
    assert window.lifecycle.resumable_run_dir == str(run_dir)

    window.runs.event.disconnect(stop_after_first_epoch)
    with qtbot.waitSignal(window.run_finished, timeout=120000) as blocker:
        window.resume_action.trigger()
        assert window.lifecycle.job_kind == "resume" and not window.resume_action.isEnabled()
    last = blocker.args[0]
    assert isinstance(last, Finished) and last.stop_reason == "completed", last
    assert last.run_dir == str(run_dir)
    with open(run_dir / "metrics.csv", newline="") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == [1, 2, 3]
    # The plots show the epochs before the resume too, and the run cannot be resumed again.
    assert window.plots.point_counts()["val_loss"] == 3
    qtbot.waitUntil(lambda: not window.is_running(), timeout=10000)
    assert not window.resume_action.isEnabled() and resume_problem(run_dir)


def test_resume_run_menu_explains_a_folder_that_cannot_be_resumed(qtbot, window, tmp_path, monkeypatch):
    finished = tmp_path / "finished"
    (finished / "checkpoint").mkdir(parents=True)
    window.config.save(finished / "config.json")
    (finished / "checkpoint" / "state.json").write_text(json.dumps({"epoch": 3}))
    (finished / "summary.json").write_text(json.dumps({"stop_reason": "completed"}))
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, expected in ((finished, "already finished"), (empty, "not a run folder")):
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, f=folder, **k: str(f))
        window.resume_run_action.trigger()
        assert expected in window.error_dialog.text()
        window.error_dialog.close()
    assert not window.is_running()
    (finished / "summary.json").write_text(json.dumps({"stop_reason": "stopped"}))
    (finished / "checkpoint" / "state.json").write_text(json.dumps({"epoch": 1}))
    assert resume_problem(finished) == ""

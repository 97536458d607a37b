"""The window with the real engine: a child process trains a tiny model, then a stop.

These load TensorFlow in child processes (about 5 s each on 2 cores), so they are
few and tiny: SmallCNN, no pretrained weights, 32 px, 3 classes x 10 images.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from gui.window import MainWindow
from tests.conftest import stop_run_before_close
from tests.helpers import make_tiny_dataset
from training.api import Config, default_config, fine_tune_learning_rate, resolve_mode
from training.events import Finished


@pytest.fixture
def window(qtbot, tmp_path):
    data = make_tiny_dataset(tmp_path, classes=3, per_class=10, size=32)
    config = default_config().with_overrides({
        "data.dir": str(data), "model.backbone": "SmallCNN", "model.weights": "none",
        "data.image_size": 32, "data.batch_size": 8, "training.mode": "fine_tune",
        "training.head_epochs": 1, "training.fine_tune_epochs": 1, "augmentation.rotation": 0.1,
    })
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(config, settings=settings, prewarm=True)
    window.confirm_close_during_training = lambda: True  # never a modal question in tests
    window.data_panel.runs_dir_edit.setText(str(tmp_path / "runs"))
    qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot, 60000))
    window.show()
    yield window
    if window.worker is not None:
        window.worker.cancel()
        qtbot.waitUntil(lambda: not window.is_running(), timeout=60000)


def test_a_real_run_trains_in_a_child_process_and_fills_the_window(qtbot, window, tmp_path):
    window.after_shown()  # starts the helper process (catalog, device, previews) and a warm engine
    warm = window.runs.warm_engine
    assert warm is not None and warm.poll() is None
    with qtbot.waitSignal(window.run_finished, timeout=120000) as blocker:
        assert window.start_training()
    last = blocker.args[0]
    assert isinstance(last, Finished), getattr(last, "message", last)
    assert last.stop_reason == "completed" and last.best_epoch in (1, 2)
    # The config the engine received is the one the widgets describe (the engine fills
    # in the values left to it: the phases of the mode, and the fine-tuning rate).
    expected = window.build_config()
    assert expected == window.last_run_config
    assert expected.training.fine_tune_learning_rate is None
    expected = resolve_mode(expected)
    expected.training.fine_tune_learning_rate = fine_tune_learning_rate(expected)
    assert window.run_started_event.config == expected.to_dict()
    assert Config.load(Path(last.run_dir) / "config.json") == expected
    counts = window.plots.point_counts()
    assert counts["val_loss"] == 2 and counts["val_accuracy"] == 2 and counts["batch_loss"] >= 2
    assert [m.value() for m in window.plots.accuracy_plot.markers] == [1.0]
    assert window.result_panel.export_button.isEnabled()
    assert (Path(last.run_dir) / "best.keras").is_file()
    assert window.device_label.text().startswith("Device: CPU")
    assert warm.poll() == 0  # the warm process ran this run and exited cleanly
    qtbot.waitUntil(lambda: window.runs.warm_engine is not None, timeout=5000)  # ready for the next
    # The helper process answered while training ran in another process.
    qtbot.waitUntil(lambda: window.augmentation_panel.preview_count >= 1, timeout=60000)
    qtbot.waitUntil(lambda: window.model_panel.table.item(0, 1).text() != "…", timeout=30000)


def test_stop_during_a_real_run_keeps_a_valid_run_folder(qtbot, window):
    window.model_panel.bindings["training.head_epochs"].widget.setValue(50)
    with qtbot.waitSignal(window.run_finished, timeout=120000) as blocker:
        assert window.start_training()
        qtbot.waitUntil(lambda: window.plots.point_counts()["val_loss"] >= 1, timeout=90000)
        requested = time.monotonic()
        window.stop_action.trigger()
    stopped_after = time.monotonic() - requested
    last = blocker.args[0]
    assert isinstance(last, Finished) and last.stop_reason == "stopped"
    assert stopped_after < 20
    assert window.plots.point_counts()["val_loss"] < 50
    summary = json.loads((Path(last.run_dir) / "summary.json").read_text())
    assert summary  # the engine finished writing the run folder
    qtbot.waitUntil(window.start_action.isEnabled, timeout=10000)

"""The Export dialog: the chosen formats are exported one after another off the GUI thread,
each result (verified or failed, with its figures) lands in the table, and the window can be
used meanwhile. The exports themselves are tested in tests/test_export.py."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtWidgets import QApplication

from gui import engine_calls
from gui.export_dialog import CHOICES, ExportDialog
from gui.window import MainWindow
from tests.conftest import stop_run_before_close
from training.api import Config
from training.events import Finished

FIGURES = {"agreement": 1.0, "max_probability_difference": 3e-7, "accuracy": 0.9, "file_bytes": 2_400_000,
           "ms_per_image": 1.25}


@pytest.fixture
def calls(monkeypatch):
    made: list[tuple] = []
    gui_thread = threading.get_ident()

    def export_run(run_dir, fmt, quantize="none"):
        assert threading.get_ident() != gui_thread, "an export must never run on the GUI thread"
        made.append((run_dir, fmt, quantize))
        time.sleep(0.05)
        if fmt == "onnx":
            return {"folder": f"{run_dir}/export/onnx", "format": fmt, "quantize": quantize, "passed": False,
                    "verification": {**FIGURES, "agreement": 0.5},
                    "message": "top-1 agrees on 50 % of the validation images"}
        if fmt == "saved_model":
            raise engine_calls.EngineCallError("The engine process stopped unexpectedly")
        return {"folder": f"{run_dir}/export/{fmt}", "format": fmt, "quantize": quantize, "passed": True,
                "verification": FIGURES, "message": ""}

    monkeypatch.setattr(engine_calls, "export_run", export_run)
    return made


def test_the_dialog_exports_each_chosen_format_and_shows_its_verification(qtbot, tmp_path, calls):
    dialog = ExportDialog(tmp_path / "run")
    qtbot.addWidget(dialog)
    dialog.show()
    assert {(n, q) for n, q, _ in dialog.chosen()} == {("keras", "none"), ("tflite", "none"), ("onnx", "none")}
    dialog.boxes[("saved_model", "none")].setChecked(True)
    dialog.boxes[("tflite", "int8")].setChecked(True)
    with qtbot.waitSignal(dialog.finished_all, timeout=10000) as blocker:
        assert dialog.start()
        assert not dialog.export_button.isEnabled()  # one batch at a time
    results = blocker.args[0]
    assert results[0]["format"] == "keras" and len(results) == 5
    assert [call[1:] for call in calls] == [(n, q) for n, q, _ in CHOICES if (n, q) in
                                           {("keras", "none"), ("saved_model", "none"), ("tflite", "none"),
                                            ("tflite", "int8"), ("onnx", "none")}]
    rows = {dialog.table.item(r, 0).text(): [dialog.table.item(r, c).text() for c in range(7)]
            for r in range(dialog.table.rowCount())}
    assert rows["Keras (.keras)"][1:] == ["verified", "2.3 MB", "100.0 %", "3e-07", "90.0 %", "1.25"]
    assert rows["ONNX"][1].startswith("failed: top-1 agrees on 50 %")
    assert rows["TensorFlow SavedModel"][1] == "failed: The engine process stopped unexpectedly"
    assert "Failed: TensorFlow SavedModel, ONNX" in dialog.status.text()
    assert dialog.export_button.isEnabled() and dialog.progress.value() == 5


def test_a_finished_run_offers_the_export_and_file_menu_opens_any_run(qtbot, tmp_path, calls):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_bytes(b"stand-in")
    window = MainWindow(Config(), runner=lambda *a, **k: None)
    qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot))
    window.show()
    panel = window.result_panel
    assert not panel.deploy_button.isEnabled()
    panel.show_result(Finished(run_dir=str(run), stop_reason="completed", best_epoch=2,
                               best_metrics={"val_accuracy": 0.9}, seconds=3.0))
    assert panel.deploy_button.isEnabled()
    panel.deploy_button.click()
    dialog = panel.export_dialog
    assert dialog is not None and dialog.isVisible() and dialog.run_dir == run
    with qtbot.waitSignal(dialog.finished_all, timeout=10000):
        dialog.start()
        QApplication.processEvents()
        assert window.isEnabled()  # the window stays usable while the engine exports
    dialog.close()
    assert window.export_run(tmp_path / "not-a-run") is None  # says why in an error dialog
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    assert "no best model" in window.error_dialog.text()
    window.error_dialog.close()
    other = window.export_run(run)
    assert other is not None and other.isVisible()
    other.close()


def test_the_export_runs_in_an_engine_process_of_its_own(tmp_path):
    """The real path: a tiny run, exported and verified by the export helper process."""
    from tests.helpers import make_tiny_dataset
    from training.api import run_training

    data = make_tiny_dataset(tmp_path / "data", classes=2, per_class=6, size=32)
    config = Config().with_overrides({"data.dir": str(data), "model.backbone": "SmallCNN",
                                      "model.weights": "none", "data.image_size": 32,
                                      "training.fine_tune_epochs": 1, "training.head_epochs": 0})
    run_training(config, run_dir=tmp_path / "run", on_event=lambda e: None)
    try:
        result = engine_calls.export_run(str(tmp_path / "run"), "onnx")
        assert result["passed"], result["message"]
        assert result["verification"]["agreement"] == 1.0
        assert (tmp_path / "run" / "export" / "onnx" / "model.onnx").is_file()
        with pytest.raises(engine_calls.EngineCallError, match="^[^:]* is not a finished run folder: best.keras is missing"):
            engine_calls.export_run(str(tmp_path / "data"), "onnx")
    finally:
        engine_calls.shutdown()

"""The Predict tab: images dropped onto it (or onto the window while it is shown) are listed
with the top classes the engine gives them; the options reach the engine; the selected
image's Grad-CAM overlay is drawn. The engine is a stand-in (its prediction is tested in
tests/test_cli.py and the real Grad-CAM path in tests/test_gui_results.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from gui import engine_calls
from gui.predict_panel import PredictPanel
from gui.window import MainWindow
from tests.conftest import stop_run_before_close
from tests.helpers import make_tiny_dataset
from training.api import Config


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("predict"), classes=2, per_class=3, size=32)


@pytest.fixture
def run_dir(tmp_path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "best.keras").write_bytes(b"stand-in")
    return folder


@pytest.fixture
def engine(monkeypatch):
    """predict_images and grad_cam stand-ins; records their calls; never on the GUI thread."""
    gui_thread = threading.get_ident()
    calls: dict[str, list] = {"predict": [], "grad_cam": []}

    def predict_images(run, paths, top_k=5, tta=False):
        assert threading.get_ident() != gui_thread, "prediction must never run on the GUI thread"
        calls["predict"].append((run, list(paths), top_k, tta))
        results = []
        for item in paths:
            files = sorted(Path(item).rglob("*.png")) if Path(item).is_dir() else [Path(item)]
            for path in files:
                if path.suffix != ".png":
                    results.append({"path": str(path), "error": "not an image"})
                    continue
                first = "circle" if "circle" in str(path) else "square"
                second = "square" if first == "circle" else "circle"
                top = [{"class": first, "probability": 0.8 if not tta else 0.9},
                       {"class": second, "probability": 0.2 if not tta else 0.1}]
                results.append({"path": str(path), "top": top[:top_k]})
        return results

    def grad_cam(run, path, class_name=None):
        assert threading.get_ident() != gui_thread, "Grad-CAM must never run on the GUI thread"
        calls["grad_cam"].append((run, path, class_name))
        overlay = np.zeros((32, 32, 3), np.uint8)
        overlay[..., 0] = 200
        return {"image": np.full((32, 32, 3), 50, np.uint8), "heatmap": np.ones((32, 32), np.float32),
                "overlay": overlay, "class": class_name or "circle", "probability": 0.8,
                "top": [{"class": "circle", "probability": 0.8}, {"class": "square", "probability": 0.2}]}

    monkeypatch.setattr(engine_calls, "predict_images", predict_images)
    monkeypatch.setattr(engine_calls, "grad_cam", grad_cam)
    return calls


@pytest.fixture
def panel(qtbot):
    widget = PredictPanel()
    qtbot.addWidget(widget)
    widget.resize(900, 500)
    widget.show()
    return widget


def drop(target, paths: list[Path]) -> QDropEvent:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    target.dropEvent(event)
    return event


def item_texts(panel: PredictPanel) -> list[str]:
    return [panel.list.item(i).text() for i in range(panel.list.count())]


def test_dropped_images_are_listed_with_their_top_classes(qtbot, panel, run_dir, images, engine):
    panel.set_run(run_dir)
    assert "Drop images or a folder here" in panel.status.text()
    files = sorted((images / "circle").iterdir())[:2]
    with qtbot.waitSignal(panel.predicted, timeout=5000):
        event = drop(panel, files)
    assert event.isAccepted()
    assert engine["predict"] == [(str(run_dir), [str(f) for f in files], 5, False)]
    assert item_texts(panel) == [f"{f.name}\ncircle  80.0 %  ·  square  20.0 %" for f in files]
    assert "2 images classified with run" in panel.status.text()
    # A folder: the engine finds its images; they join the list.
    with qtbot.waitSignal(panel.predicted, timeout=5000):
        drop(panel, [images / "square"])
    assert len(item_texts(panel)) == 5
    assert item_texts(panel)[-1].endswith("square  80.0 %  ·  circle  20.0 %")
    qtbot.waitUntil(lambda: all(not panel.list.item(i).icon().isNull() for i in range(panel.list.count())),
                    timeout=5000)


def test_the_options_reach_the_engine_and_classify_the_list_again(qtbot, panel, run_dir, images, engine):
    panel.set_run(run_dir)
    files = sorted((images / "square").iterdir())[:2]
    with qtbot.waitSignal(panel.predicted, timeout=5000):
        panel.add_paths([str(f) for f in files])
    with qtbot.waitSignal(panel.predicted, timeout=5000):
        panel.tta_box.setChecked(True)
    assert engine["predict"][-1] == (str(run_dir), [str(f) for f in files], 5, True)
    assert item_texts(panel)[0].endswith("square  90.0 %  ·  circle  10.0 %") and panel.list.count() == 2
    with qtbot.waitSignal(panel.predicted, timeout=5000):
        panel.top_k.setValue(1)
    assert engine["predict"][-1][2:] == (1, True) and item_texts(panel)[0].endswith("square  90.0 %")
    with qtbot.waitSignal(panel.predicted, timeout=5000):
        drop(panel, [images / "circle" / sorted(p.name for p in (images / "circle").iterdir())[0]])
    assert engine["predict"][-1][2:] == (1, True) and panel.list.count() == 3


def test_an_unreadable_file_is_listed_with_its_reason(qtbot, panel, run_dir, tmp_path, engine):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    panel.set_run(run_dir)
    with qtbot.waitSignal(panel.predicted, timeout=5000):
        drop(panel, [notes])
    assert item_texts(panel) == ["notes.txt\nCannot be classified: not an image"]
    assert "1 could not be read" in panel.status.text()


def test_a_run_without_a_model_is_refused_with_a_reason(panel, tmp_path, images, engine):
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    panel.set_run(empty)
    drop(panel, [images / "circle"])
    assert engine["predict"] == []
    assert "has no best model (best.keras)" in panel.status.text()


def test_the_selected_image_shows_its_grad_cam(qtbot, panel, run_dir, images, engine):
    panel.set_run(run_dir)
    files = sorted((images / "circle").iterdir())[:2]
    with qtbot.waitSignal(panel.grad_cam.shown, timeout=5000):  # the first row is selected
        drop(panel, files)
    with qtbot.waitSignal(panel.grad_cam.shown, timeout=5000):
        panel.list.setCurrentRow(1)
    assert engine["grad_cam"][-1] == (str(run_dir), str(files[1]), None)
    drawn = panel.grad_cam.image.image
    assert drawn is not None and drawn.pixelColor(5, 5).red() == 200
    assert "“circle” (80.0 %)" in panel.grad_cam.caption.text()


def test_images_dropped_on_the_window_go_to_the_predict_tab_while_it_is_shown(qtbot, tmp_path, run_dir,
                                                                              images, engine):
    window = MainWindow(Config().with_overrides({"data.dir": str(images)}), runner=lambda *a, **k: None)
    qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot))
    window.show()
    window.predict_panel.set_run(run_dir)
    other = make_tiny_dataset(tmp_path, classes=2, per_class=2, size=32, name="other")
    window.output_tabs.setCurrentWidget(window.predict_panel)
    with qtbot.waitSignal(window.predict_panel.predicted, timeout=5000):
        drop(window, [other / "circle"])
    assert window.predict_panel.inputs == [str(other / "circle")]
    assert window.config.data.dir == str(images)  # the data folder stays
    window.output_tabs.setCurrentWidget(window.hints_panel)
    drop(window, [other])
    assert window.config.data.dir == str(other)  # elsewhere a dropped folder is the data

"""The Results tab reads a run's evaluation folder: the confusion matrix shows the file's
counts, a cell lists exactly its images (worst first), Top losses lists them all, paths go to
the clipboard, a missing or damaged file is a message, and the selected image's Grad-CAM
overlay is drawn. The engine is a stand-in here, except in the last test."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QGuiApplication

from gui import engine_calls
from gui.results import ResultsView
from gui.window import MainWindow
from tests.conftest import stop_run_before_close
from tests.helpers import make_tiny_dataset
from training.api import Config
from training.evaluation.reading import read_evaluation
from training.events import Finished, RunStarted

CLASSES = ["circle", "square", "triangle"]
# (true class index, image number) -> predicted class index: four mistakes of three kinds.
MISTAKES = {(0, 1): 2, (0, 3): 2, (1, 0): 0, (2, 2): 1}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("results"), classes=3, per_class=4, size=32)


def write_evaluation(run_dir: Path, data: Path, *, split: str = "validation", accuracy: float | None = None,
                     tta: bool = False) -> list[dict]:
    """An evaluation folder as the engine writes it; returns its rows (predictions.csv)."""
    rows = []
    losses = iter(np.random.default_rng(1).permutation(np.linspace(0.05, 3.0, 12)))
    for true, name in enumerate(CLASSES):
        for number, path in enumerate(sorted((data / name).iterdir())):
            predicted = MISTAKES.get((true, number), true)
            loss = float(next(losses))
            rows.append({"path": str(path), "true": name, "predicted": CLASSES[predicted],
                         "confidence": round(float(np.exp(-loss)), 4) if predicted == true else 0.7,
                         "loss": round(loss, 4)})
    matrix = [[0] * 3 for _ in CLASSES]
    for row in rows:
        matrix[CLASSES.index(row["true"])][CLASSES.index(row["predicted"])] += 1
    right = sum(matrix[i][i] for i in range(3))
    folder = run_dir / ("evaluation" if split == "validation" else "evaluation-test")
    folder.mkdir(parents=True, exist_ok=True)
    figures = {"precision": 0.7, "recall": 0.6, "f1": 0.65, "support": 4}
    report = {"classes": CLASSES, "split": split, "data": str(data), "runs": [str(run_dir)], "images": 12,
              "accuracy": right / 12 if accuracy is None else accuracy, "loss": 0.81,
              "top_k_accuracy": {"k": 2, "value": 11 / 12},
              "per_class": {name: dict(figures) for name in CLASSES},
              "macro_avg": dict(figures, support=12), "weighted_avg": dict(figures, support=12),
              "confusion_matrix": matrix,
              "top_losses": sorted(rows, key=lambda r: -r["loss"])[:5], "tta": tta,
              "accuracy_without_tta": 0.5 if tta else None, "skipped": [], "date": "2025-01-01T00:00:00"}
    (folder / "evaluation.json").write_text(json.dumps(report))
    with open(folder / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "true", "predicted", "confidence", "loss", *CLASSES])
        for row in rows:
            writer.writerow([row["path"], row["true"], row["predicted"], row["confidence"], row["loss"],
                             0.2, 0.3, 0.5])
    return rows


@pytest.fixture
def run(tmp_path, images) -> tuple[Path, list[dict]]:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "best.keras").write_bytes(b"stand-in")
    return run_dir, write_evaluation(run_dir, images)


@pytest.fixture
def view(qtbot):
    widget = ResultsView()
    qtbot.addWidget(widget)
    widget.resize(1200, 600)
    widget.show()
    return widget


def click_cell(qtbot, view: ResultsView, row: int, column: int) -> None:
    index = view.matrix_model.index(row, column)
    view.matrix.scrollTo(index)
    qtbot.mouseClick(view.matrix.viewport(), Qt.MouseButton.LeftButton,
                     pos=view.matrix.visualRect(index).center())


def test_the_matrix_shows_the_counts_of_the_file_with_the_diagonal_set_apart(view, run):
    run_dir, _ = run
    assert view.show_run(run_dir)
    report = json.loads((run_dir / "evaluation" / "evaluation.json").read_text())
    model = view.matrix_model
    assert [model.headerData(i, Qt.Orientation.Horizontal) for i in range(3)] == CLASSES
    assert [model.headerData(i, Qt.Orientation.Vertical) for i in range(3)] == CLASSES
    shown = [[int(model.index(r, c).data()) for c in range(3)] for r in range(3)]
    assert shown == report["confusion_matrix"] == [[2, 0, 2], [1, 3, 0], [0, 1, 3]]
    right = model.index(1, 1).data(Qt.ItemDataRole.FontRole)
    assert isinstance(right, QFont) and right.bold()
    assert model.index(0, 2).data(Qt.ItemDataRole.FontRole) is None
    hue = {(r, c): model.index(r, c).data(Qt.ItemDataRole.BackgroundRole).color().hue() for r, c in
           ((0, 0), (0, 2))}
    assert 90 < hue[(0, 0)] < 150 and (hue[(0, 2)] < 20 or hue[(0, 2)] > 340)  # green and red
    assert "Accuracy 66.7 %" in view.summary.text() and "top-2 accuracy 91.7 %" in view.summary.text()
    assert "12 images" in view.summary.text()
    assert view.split_box.count() == 1  # no test set: validation only
    assert view.run_label.text() == "run run"  # which run the figures are of
    rows = [view.per_class.item(r, 0).text() for r in range(view.per_class.rowCount())]
    assert rows == [*CLASSES, "Macro avg", "Weighted avg"]
    assert view.per_class.item(4, 4).text() == "12"


def test_clicking_a_cell_lists_exactly_its_images_worst_first(qtbot, view, run):
    run_dir, rows = run
    view.show_run(run_dir)
    for true, predicted in ((0, 2), (1, 0), (2, 2), (1, 2)):
        click_cell(qtbot, view, true, predicted)
        expected = [r for r in rows if (r["true"], r["predicted"]) == (CLASSES[true], CLASSES[predicted])]
        expected.sort(key=lambda r: -r["loss"])
        assert view.gallery.paths() == [r["path"] for r in expected]
    assert "No image of “square” was answered “triangle”" in view.gallery.title.text()
    click_cell(qtbot, view, 0, 2)
    assert "“circle” taken for “triangle”: 2 images" in view.gallery.title.text()
    # One cell: its classes are in the title, so the columns show confidence and loss.
    assert all(view.gallery.view.isColumnHidden(c) for c in (3, 4))
    # Thumbnails come from the files, decoded in the background.
    model = view.gallery.model
    qtbot.waitUntil(lambda: all(model.item(r, 0).data(Qt.ItemDataRole.DecorationRole) is not None
                                for r in range(model.rowCount())), timeout=5000)
    # Any column sorts; the loss column numerically.
    view.gallery.view.sortByColumn(view.gallery.COLUMNS.index("Loss"), Qt.SortOrder.AscendingOrder)
    assert view.gallery.paths() == [r["path"] for r in sorted(
        (r for r in rows if (r["true"], r["predicted"]) == ("circle", "triangle")), key=lambda r: r["loss"])]


def test_top_losses_lists_every_image_by_loss_and_copies_their_paths(qtbot, view, run):
    run_dir, rows = run
    view.show_run(run_dir)
    click_cell(qtbot, view, 1, 1)
    qtbot.mouseClick(view.gallery.top_button, Qt.MouseButton.LeftButton)
    by_loss = [r["path"] for r in sorted(rows, key=lambda r: -r["loss"])]
    assert view.gallery.paths() == by_loss
    assert not any(view.gallery.view.isColumnHidden(c) for c in (3, 4))
    QGuiApplication.clipboard().clear()
    qtbot.mouseClick(view.gallery.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text().splitlines() == by_loss
    click_cell(qtbot, view, 0, 2)
    view.gallery.select_row(1)
    assert view.gallery.copy_paths(only_selected=True) == [view.gallery.paths()[1]]
    assert QGuiApplication.clipboard().text() == view.gallery.paths()[1]
    menu = view.gallery.context_menu()
    assert [a.text() for a in menu.actions()] == [
        "Open containing folder", "Copy paths of the selected images", "Copy all paths"]


def test_a_missing_or_damaged_evaluation_is_a_message_not_a_traceback(view, tmp_path, images):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "best.keras").write_bytes(b"stand-in")
    assert not view.show_run(run_dir)
    assert "This run has no evaluation yet" in view.summary.text()
    assert view.evaluate_button.text() == "Evaluate" and view.evaluate_button.isEnabled()
    assert view.matrix_model.rowCount() == 0
    folder = run_dir / "evaluation"
    folder.mkdir()
    (folder / "evaluation.json").write_text('{"classes": ["a", "b"], "accuracy": 0.5,')
    assert not view.show_run(run_dir)
    assert "is not valid JSON" in view.summary.text() and "Evaluate the run again" in view.summary.text()
    (folder / "evaluation.json").write_text(json.dumps({"classes": ["a", "b"], "accuracy": 0.5, "loss": 1.0,
                                                        "confusion_matrix": [[1, 2]]}))
    assert not view.show_run(run_dir)
    assert "is damaged: `confusion_matrix` is not 2 rows of 2 counts" in view.summary.text()
    (folder / "evaluation.json").write_bytes(b"\xff\xfe not text")
    assert not view.show_run(run_dir)
    assert "not UTF-8" in view.summary.text()
    # A damaged predictions.csv: the figures still show; the gallery says why it is empty.
    write_evaluation(run_dir, images)
    with open(folder / "predictions.csv", "a") as handle:
        handle.write(f"{images}/circle/x.png,circle,square,not-a-number,1.0,0.1,0.2,0.7\n")
    assert view.show_run(run_dir)
    assert view.matrix_model.rowCount() == 3
    assert "predictions.csv is damaged at line 14" in view.gallery.title.text()
    assert view.show_cell(0, 2) == [] and view.gallery.paths() == []
    (folder / "predictions.csv").unlink()
    assert view.show_run(run_dir)
    assert "predictions.csv is missing" in view.gallery.title.text()


def test_the_held_out_test_split_has_its_own_choice(view, run, images):
    run_dir, _ = run
    write_evaluation(run_dir, images, split="test", accuracy=0.25)
    view.show_run(run_dir)
    assert [view.split_box.itemText(i) for i in range(view.split_box.count())] == [
        "Validation — picked the best epoch", "Test — held out, never seen"]
    assert "Accuracy 66.7 %" in view.summary.text()
    view.split_box.setCurrentIndex(1)
    view.split_box.activated.emit(1)
    assert view.split == "test" and "Accuracy 25.0 %" in view.summary.text()
    assert read_evaluation(run_dir / "evaluation-test").report["split"] == "test"


def test_evaluate_again_runs_in_the_background_with_tta_and_shows_the_new_figures(qtbot, view, run,
                                                                                    images, monkeypatch):
    run_dir, _ = run
    gui_thread = threading.get_ident()
    calls, release = [], threading.Event()

    def evaluate_run(folder, split="validation", tta=False, on_progress=None):
        assert threading.get_ident() != gui_thread, "evaluation must never run on the GUI thread"
        calls.append((folder, split, tta))
        on_progress(16, 48)  # as the engine process reports images scored
        release.wait(10)
        write_evaluation(Path(folder), images, accuracy=0.75, tta=tta)
        return {"folder": str(Path(folder) / "evaluation")}

    monkeypatch.setattr(engine_calls, "evaluate_run", evaluate_run)
    view.show_run(run_dir)
    view.tta_box.setChecked(True)
    qtbot.mouseClick(view.evaluate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(calls))
    assert view.progress.isVisible() and not view.evaluate_button.isEnabled()
    assert "with test-time augmentation…" in view.summary.text()
    qtbot.waitUntil(lambda: view.progress.maximum() == 48)
    assert view.progress.value() == 16 and view.progress.format() == "16/48"
    with qtbot.waitSignal(view.loaded, timeout=10000):
        release.set()
    assert calls == [(str(run_dir), "validation", True)]
    assert not view.progress.isVisible() and view.evaluate_button.isEnabled()
    assert "Accuracy 75.0 %" in view.summary.text()
    assert "with test-time augmentation (50.0 % without)" in view.summary.text()


def test_a_failed_evaluation_says_why_in_the_windows_words(qtbot, view, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "best.keras").write_bytes(b"stand-in")

    def evaluate_run(folder, split="validation", tta=False, on_progress=None):
        raise engine_calls.EngineCallError("No validation images: set `data.validation_split` above 0.")

    monkeypatch.setattr(engine_calls, "evaluate_run", evaluate_run)
    view.show_run(run_dir)
    with qtbot.waitSignal(view.evaluation_failed, timeout=5000) as blocker:
        qtbot.mouseClick(view.evaluate_button, Qt.MouseButton.LeftButton)
    assert "data.validation_split" not in blocker.args[0]
    assert blocker.args[0] in view.summary.text() and "The evaluation failed" in view.summary.text()


def overlay_arrays(size: int = 32) -> dict:
    image = np.full((size, size, 3), 90, np.uint8)
    heatmap = np.linspace(0, 1, size * size, dtype=np.float32).reshape(size, size)
    overlay = image.copy()
    overlay[..., 0] = (heatmap * 255).astype(np.uint8)
    return {"image": image, "heatmap": heatmap, "overlay": overlay}


def test_the_selected_image_shows_its_grad_cam_overlay_and_another_class_can_be_explained(
        qtbot, view, run, monkeypatch):
    run_dir, _ = run
    gui_thread = threading.get_ident()
    calls = []

    def grad_cam(folder, path, class_name=None):
        assert threading.get_ident() != gui_thread, "Grad-CAM must never run on the GUI thread"
        calls.append((folder, path, class_name))
        explained = class_name or "triangle"
        top = [{"class": c, "probability": p}
               for c, p in (("triangle", 0.7), ("circle", 0.2), ("square", 0.1))]
        return {**overlay_arrays(), "class": explained,
                "probability": next(t["probability"] for t in top if t["class"] == explained), "top": top}

    monkeypatch.setattr(engine_calls, "grad_cam", grad_cam)
    view.show_run(run_dir)
    click_cell(qtbot, view, 0, 2)
    first = view.gallery.paths()[0]
    with qtbot.waitSignal(view.grad_cam.shown, timeout=5000):
        view.gallery.select_row(0)
    assert calls == [(str(run_dir), first, None)]
    drawn = view.grad_cam.image.image
    assert drawn is not None and (drawn.width(), drawn.height()) == (32, 32)
    assert drawn.pixelColor(31, 31).red() == 255 and drawn.pixelColor(0, 0).red() == 0  # the overlay
    caption = view.grad_cam.caption.text()
    assert "“triangle” (70.0 %)" in caption and "true class “circle”" in caption
    box = view.grad_cam.class_box
    assert [box.itemText(i) for i in range(box.count())] == ["triangle", "circle", "square"]
    with qtbot.waitSignal(view.grad_cam.shown, timeout=5000):
        box.setCurrentIndex(1)
        box.activated.emit(1)
    assert calls[-1] == (str(run_dir), first, "circle")
    caption = view.grad_cam.caption.text()
    assert "Where the model looked for “circle” (20.0 %); its answer is “triangle”" in caption
    view.grad_cam.heat_box.setChecked(False)
    assert view.grad_cam.image.image.pixelColor(31, 31).red() == 90  # the image alone


def test_a_finished_run_shows_its_results_and_any_run_opens_from_the_file_menu(qtbot, tmp_path, images):
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "best.keras").write_bytes(b"stand-in")
    write_evaluation(other, images, accuracy=0.5)

    def engine(config, *, run_dir, on_event, stop):
        Path(run_dir).mkdir(parents=True)
        on_event(RunStarted(run_dir=str(run_dir), device="CPU: test", config=config.to_dict()))
        (Path(run_dir) / "best.keras").write_bytes(b"model")
        write_evaluation(Path(run_dir), images)
        on_event(Finished(run_dir=str(run_dir), stop_reason="completed", best_epoch=1,
                          best_metrics={"val_accuracy": 0.67}, seconds=1.0))

    window = MainWindow(Config().with_overrides({"data.dir": str(images)}), runner=engine)
    window.data_panel.runs_dir_edit.setText(str(tmp_path / "runs"))
    qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot))
    window.show()
    titles = [window.output_tabs.tabText(i) for i in range(window.output_tabs.count())]
    assert titles[-3:] == ["Result", "Results", "Predict"]
    with qtbot.waitSignal(window.run_finished, timeout=10000):
        assert window.start_training()
    run_dir = window.result_panel.run_dir
    assert window.results_view.run_dir == run_dir and "Accuracy 66.7 %" in window.results_view.summary.text()
    assert window.predict_panel.run_dir() == run_dir
    action = window.results_action
    assert action in window.menuBar().actions()[0].menu().actions()
    assert window.open_run_results(other)
    assert window.output_tabs.currentWidget() is window.results_view
    assert "Accuracy 50.0 %" in window.results_view.summary.text()
    assert window.predict_panel.run_dir() == str(other)


@pytest.mark.skipif(not (Path(__file__).parent.parent / "training" / "inference" / "gradcam.py").is_file()
                    or not (Path(__file__).parent.parent / "training" / "evaluation").is_dir(),
                    reason="the engine's evaluation and Grad-CAM are not in this tree yet")
def test_the_real_engine_evaluates_a_tiny_run_and_explains_an_image(qtbot, tmp_path, monkeypatch):
    from training.api import run_training

    monkeypatch.setattr(engine_calls, "IN_PROCESS", True)
    data = make_tiny_dataset(tmp_path / "data", classes=2, per_class=8, size=32)
    config = Config().with_overrides({"data.dir": str(data), "model.backbone": "SmallCNN",
                                      "model.weights": "none", "data.image_size": 32,
                                      "training.fine_tune_epochs": 1, "training.head_epochs": 0})
    run_training(config, run_dir=tmp_path / "run", on_event=lambda e: None)
    view = ResultsView()
    qtbot.addWidget(view)
    view.show()
    view.show_run(tmp_path / "run")
    with qtbot.waitSignal(view.loaded, timeout=120000):
        view.evaluate()
    evaluation = view.current()
    assert evaluation is not None and evaluation.classes == ["circle", "square"]
    counts = [[int(view.matrix_model.index(r, c).data()) for c in range(2)] for r in range(2)]
    assert counts == evaluation.matrix and sum(map(sum, counts)) == len(evaluation.predictions) > 0
    view.show_top_losses()
    with qtbot.waitSignal(view.grad_cam.shown, timeout=120000) as blocker:
        view.gallery.select_row(0)
    result = blocker.args[0]
    assert result["overlay"].dtype == np.uint8 and result["overlay"].shape == (32, 32, 3)
    assert view.grad_cam.image.image is not None


def test_the_results_and_predict_tabs_get_room_under_the_plots_and_give_it_back(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from gui.window import TALL_OUTPUT_SHARE, MainWindow

    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), prewarm=False)
    qtbot.addWidget(window)
    window.resize(1024, 700)
    window.show()
    qtbot.waitExposed(window)
    before = window.plots_splitter.sizes()
    window.output_tabs.setCurrentWidget(window.results_view)
    tall = window.plots_splitter.sizes()
    assert tall[1] >= TALL_OUTPUT_SHARE * sum(tall) - 2 and tall[1] > before[1]
    window.output_tabs.setCurrentWidget(window.predict_panel)  # stays tall between the two
    assert window.plots_splitter.sizes() == tall
    window.output_tabs.setCurrentWidget(window.log)
    assert window.plots_splitter.sizes() == before

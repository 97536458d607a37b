"""Screenshots of the real window for the README: ``docs/screenshots/*.png``.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Runs the real app offscreen at 1440x900 on a shapes sample, trains a small model from
scratch with the real engine (a child process, about a minute on 2 CPU cores), grabs the
window with each settings tab shown, then the same window at 1024x700 (the smallest size
every tab and button fits), then the Results tab (the run's evaluation: confusion matrix,
its images, a Grad-CAM overlay) and the Predict tab (a few images classified by the run),
then runs the learning-rate range test and grabs its plot.
Re-run it whenever the UI changes.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE = (1440, 900)
SMALL = (1024, 700)
MAX_BYTES = 300_000
SHOTS = (  # file name, settings tab, output tab
    ("training.png", "Data", "Result"),
    ("model.png", "Model", "Hints"),
    ("augmentation.png", "Augmentation", "Log"),
    ("optimizer.png", "Optimizer", "Result"),
)
SMALL_SHOTS = (
    ("training-1024x700.png", "Data", "Hints"),
    ("model-1024x700.png", "Model", "Result"),
)


def wait(app, seconds: float, until=None) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        if until is not None and until():
            return True
        time.sleep(0.02)
    return until is None


def save_small(image, path: Path) -> int:
    """PNG, palette-quantized when that is needed to stay under MAX_BYTES."""
    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    picture = Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGB")
    picture.save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the real window.")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from gui.plots import configure_pyqtgraph
    from gui.window import MainWindow
    from training.api import default_config
    from training.data.sample import make_shapes_dataset

    app = QApplication.instance() or QApplication([])
    configure_pyqtgraph()
    tmp = Path(tempfile.mkdtemp(prefix="screenshots-"))
    # Shapes whose classes also differ in hue, learned from scratch (no frozen random
    # backbone, which learns nothing): SmallCNN reaches ~1.0 validation accuracy within 4-5
    # epochs here in about 20 CPU-seconds, so the plots show a run that works. (The
    # built-in sample, with random backgrounds, stayed near 0.3 at 64 px in 8 epochs.)
    data = make_shapes_dataset(tmp / "shapes", classes=4, per_class=60, size=64, seed=3, easy=True)
    config = default_config().with_overrides({
        "data.dir": str(data), "model.backbone": "SmallCNN", "model.weights": "none",
        "data.image_size": 64, "data.batch_size": 16, "training.mode": "from_scratch",
        "training.head_epochs": 0, "training.fine_tune_epochs": 8, "training.fine_tune_layers": "all",
        "optimizer.learning_rate": 0.003, "model.batch_norm_momentum": 0.9,
    })
    window = MainWindow(config, settings=QSettings(str(tmp / "ui.ini"), QSettings.Format.IniFormat))
    window.data_panel.runs_dir_edit.setText(str(tmp / "runs"))
    window.show()
    window.resize(*SIZE)
    window.after_shown()
    ready = wait(app, 120, lambda: window.augmentation_panel.preview_count > 0
                 and window.optimizer_panel.plan[1]
                 and window.model_panel.table.item(1, 1).text() != "…")
    print(f"settings ready: {ready}", flush=True)
    done: list[object] = []
    window.run_finished.connect(done.append)
    window.start_training()
    wait(app, 600, lambda: bool(done))
    wait(app, 1.0)
    print(f"run: {done[0] if done else 'did not finish'}", flush=True)
    tabs = {window.settings_tabs.tabText(i): i for i in range(window.settings_tabs.count())}
    outputs = {window.output_tabs.tabText(i): i for i in range(window.output_tabs.count())}
    for shots, window_size in ((SHOTS, SIZE), (SMALL_SHOTS, SMALL)):
        window.resize(*window_size)
        for name, settings_tab, output_tab in shots:
            window.settings_tabs.setCurrentIndex(tabs[settings_tab])
            window.output_tabs.setCurrentIndex(outputs[output_tab])
            wait(app, 0.3)
            size = save_small(window.grab().toImage(), out / name)
            print(f"{out / name}: {size // 1024} KB", flush=True)
    window.resize(*SIZE)
    shoot_results(app, window, out)
    shoot_predict(app, window, out, data)
    # The learning-rate range test (Tools menu), run by the engine process, and its plot.
    window.output_tabs.setCurrentIndex(outputs["Hints"])
    done.clear()
    window.run_tool("lr_range_test")
    wait(app, 300, lambda: bool(done))
    wait(app, 1.0)
    if window.lr_dialog is not None:
        dialog = window.lr_dialog
        print(f"lr range test suggested {dialog.result.get('suggested_learning_rate')}", flush=True)
        dialog.resize(760, 520)
        wait(app, 0.3)
        size = save_small(dialog.grab().toImage(), out / "lr_range_test.png")
        print(f"{out / 'lr_range_test.png'}: {size // 1024} KB", flush=True)
        dialog.close()
    else:
        print(f"lr range test: {done[0] if done else 'did not finish'}", flush=True)
    # The same window after the system switched to a dark palette.
    app.setPalette(dark_palette())
    window.settings_tabs.setCurrentIndex(tabs["Data"])
    window.output_tabs.setCurrentIndex(outputs["Result"])
    wait(app, 0.5)
    size = save_small(window.grab().toImage(), out / "dark.png")
    print(f"{out / 'dark.png'}: {size // 1024} KB", flush=True)
    window.close()
    return 0


def _with_tall_output(window):
    """The plots' splitter, its sizes, after giving the output tabs most of the height (as a
    user does by dragging its handle to study the results)."""
    splitter = window.plots.parentWidget()
    sizes = splitter.sizes()
    splitter.setSizes([sum(sizes) - 560, 560])
    return splitter, sizes


def shoot_results(app, window, out: Path) -> None:
    """The Results tab: the cell with the most mistakes (or the top losses), the first image's
    Grad-CAM."""
    view = window.results_view
    evaluation = view.current()
    if evaluation is None:
        print(f"results: nothing to show ({view.summary.text()})", flush=True)
        return
    splitter, sizes = _with_tall_output(window)
    window.output_tabs.setCurrentWidget(view)
    wait(app, 0.3)
    mistakes = [(count, row, column) for row, counts in enumerate(evaluation.matrix)
                for column, count in enumerate(counts) if row != column and count]
    if mistakes:
        _, row, column = max(mistakes)
        view.matrix.setCurrentIndex(view.matrix_model.index(row, column))
        view.show_cell(row, column)
    else:
        view.show_top_losses()
    shown: list[object] = []
    view.grad_cam.shown.connect(shown.append)
    view.gallery.select_row(0)
    wait(app, 180, lambda: bool(shown))
    wait(app, 1.0)  # the thumbnails
    size = save_small(window.grab().toImage(), out / "results.png")
    print(f"{out / 'results.png'}: {size // 1024} KB (Grad-CAM: {'yes' if shown else 'no'})", flush=True)
    splitter.setSizes(sizes)


def shoot_predict(app, window, out: Path, data: Path) -> None:
    """The Predict tab with two images of each class classified, the first one explained."""
    panel = window.predict_panel
    splitter, sizes = _with_tall_output(window)
    window.output_tabs.setCurrentWidget(panel)
    paths = [str(path) for folder in sorted(p for p in data.iterdir() if p.is_dir())
             for path in sorted(folder.iterdir())[:2]]
    shown: list[object] = []
    panel.grad_cam.shown.connect(shown.append)
    panel.add_paths(paths)
    wait(app, 180, lambda: bool(shown))
    wait(app, 1.0)
    size = save_small(window.grab().toImage(), out / "predict.png")
    print(f"{out / 'predict.png'}: {size // 1024} KB ({panel.list.count()} images listed)", flush=True)
    splitter.setSizes(sizes)


def dark_palette():
    from PySide6.QtGui import QColor, QPalette

    palette = QPalette()
    roles = QPalette.ColorRole
    for role in (roles.Text, roles.ButtonText, roles.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    for role, colour in ((roles.Window, "#2b2b2b"), (roles.WindowText, "#e8e8e8"), (roles.Base, "#1e1e1e"),
                         (roles.AlternateBase, "#2f2f2f"), (roles.Text, "#e8e8e8"), (roles.Button, "#353535"),
                         (roles.ButtonText, "#e8e8e8"), (roles.Highlight, "#3d7ad6"),
                         (roles.HighlightedText, "#ffffff"), (roles.ToolTipBase, "#353535"),
                         (roles.ToolTipText, "#e8e8e8"), (roles.PlaceholderText, "#9a9a9a"),
                         (roles.Mid, "#555555")):
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
            palette.setColor(group, role, QColor(colour))
    return palette


if __name__ == "__main__":
    sys.exit(main())

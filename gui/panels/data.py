"""The Data panel: folder, validation, image size, batch size; what the scan found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QWidget,
)

from gui.forms import ConfigForm, control, hbox, tooltip
from gui.tasks import BackgroundTasks
from training.api import Config, scan_folder
from training.config import BUILTIN_SAMPLE
from training.data.images import ImageLoadError, load_thumbnail
from training.files import display_path, is_folder

THUMBNAIL_PX = 56
THUMBNAILS_PER_CLASS = 4
THUMBNAIL_CLASSES = 12


def class_counts(scan: Any) -> dict[str, int]:
    """Images per class from a ScanResult (``counts()`` as a dict or a list)."""
    counts = scan.counts()
    if isinstance(counts, dict):
        return {str(k): int(v) for k, v in counts.items()}
    return {name: int(n) for name, n in zip(scan.classes, counts)}


def sample_paths(scan: Any, per_class: int, max_classes: int | None = None) -> list[tuple[str, str]]:
    """Up to ``per_class`` (class, path) pairs from each class, spread over the class."""
    by_class: dict[int, list[str]] = {}
    for path, label in zip(scan.files, scan.labels):
        by_class.setdefault(int(label), []).append(str(path))
    pairs = []
    for index, name in enumerate(scan.classes[:max_classes]):
        files = by_class.get(index, [])
        picks = np.linspace(0, len(files) - 1, num=min(per_class, len(files))).astype(int) if files else []
        pairs += [(name, files[i]) for i in picks]
    return pairs


def load_thumbnails(pairs: list[tuple[str, str]], size: int) -> list[tuple[str, str, QImage]]:
    """Decodes small thumbnails with the engine's own decoder (no TensorFlow), so a file the
    training would refuse (a PostScript file named .png, a FIFO) is never opened here either;
    runs off the GUI thread."""
    thumbnails = []
    for name, path in pairs:
        try:
            pixels = np.ascontiguousarray(load_thumbnail(path, size))
        except ImageLoadError:  # a broken file just has no thumbnail
            continue
        height, width = pixels.shape[:2]
        qimage = QImage(pixels.tobytes(), width, height, width * 3, QImage.Format.Format_RGB888).copy()
        thumbnails.append((name, path, qimage))
    return thumbnails


class ClassCountPlot(pg.PlotWidget):
    """Horizontal bars, one per class, so imbalance shows at a glance."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("classCountPlot")
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setMenuEnabled(False)
        self.setLabel("bottom", "images")
        self.setToolTip("Images per class. Very uneven bars mean the model may favour big classes: "
                        "consider 'balanced' class weights.")
        self.counts: dict[str, int] = {}
        self.setFixedHeight(90)

    def set_counts(self, counts: dict[str, int]) -> None:
        self.counts = dict(counts)
        self.clear()
        names = list(counts)
        if not names:
            return
        values = [counts[n] for n in names]
        positions = np.arange(len(names))[::-1]
        bars = pg.BarGraphItem(x0=0, y=positions, height=0.7, width=values, brush="#4c78a8")
        self.addItem(bars)
        self.getAxis("left").setTicks([[(int(p), _short(display_path(n))) for p, n in zip(positions, names)]])
        self.setFixedHeight(min(50 + 18 * len(names), 420))
        self.setXRange(0, max(values) * 1.05 or 1, padding=0)
        self.setYRange(-0.6, len(names) - 0.4, padding=0)


def _short(name: str, limit: int = 14) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


class DataPanel(ConfigForm):
    """Data settings plus the scan of the chosen folder."""

    folder_chosen = Signal(str)      # a folder picked by dialog, drop or recent list
    scanned = Signal(object)         # the ScanResult of the current folder
    scan_failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scan: Any = None
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)
        self._build_folder_group()
        self._build_split_group()
        self._build_found_group()
        self.finish()

    # -- building -----------------------------------------------------------------------
    def _build_folder_group(self) -> None:
        form = self.group("Images", "dataFolderGroup")
        self.dir_edit = QLineEdit()
        self.dir_edit.setPlaceholderText("folder with one subfolder per class")
        browse = QPushButton("Browse…")
        browse.setObjectName("browseDataButton")
        browse.setToolTip("Choose the folder of images (Ctrl+O).")
        browse.clicked.connect(self.choose_folder)
        self.row(form, "data.dir", self.dir_edit, field=hbox(self.dir_edit, browse))
        self.recent = QComboBox()
        self.recent.setObjectName("recentFolders")
        self.recent.setToolTip("Folders you trained on recently.")
        self.recent.activated.connect(self._on_recent_activated)
        form.addRow("Recent:", self.recent)
        sample = QPushButton("Use built-in sample (shapes)")
        sample.setObjectName("useSampleButton")
        sample.setToolTip("A small generated data set of coloured shapes, to try the app.")
        sample.clicked.connect(lambda: self.set_folder(BUILTIN_SAMPLE))
        form.addRow("", sample)
        self.runs_dir_edit = QLineEdit("runs")
        self.runs_dir_edit.setObjectName("runsDir")
        self.runs_dir_edit.setToolTip(tooltip("ui.runs_dir"))
        form.addRow("Runs folder:", self.runs_dir_edit)

    def _build_split_group(self) -> None:
        form = self.group("Validation and batches", "dataSplitGroup")
        self.row(form, "data.validation_split")
        self.validation_edit = control("data.validation_dir")
        browse = QPushButton("Browse…")
        browse.setObjectName("browseValidationButton")
        browse.setToolTip(tooltip("data.validation_dir"))
        browse.clicked.connect(self._on_browse_validation_clicked)
        # Empty means null; any other text is the path as typed (the config's own value).
        self.row(form, "data.validation_dir", self.validation_edit, field=hbox(self.validation_edit, browse),
                 get=lambda: self.validation_edit.text() or None)
        for key in ("data.image_size", "data.batch_size", "data.class_weight", "data.seed"):
            self.row(form, key)

    def _build_found_group(self) -> None:
        form = self.group("Found in the folder", "dataFoundGroup")
        self.summary = QLabel("No folder scanned yet.")
        self.summary.setObjectName("scanSummary")
        self.summary.setWordWrap(True)
        form.addRow(self.summary)
        self.count_plot = ClassCountPlot()
        form.addRow(self.count_plot)
        self.thumbnails = QListWidget()
        self.thumbnails.setObjectName("classThumbnails")
        self.thumbnails.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbnails.setIconSize(QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.thumbnails.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.thumbnails.setMovement(QListWidget.Movement.Static)
        self.thumbnails.setFixedHeight(2 * (THUMBNAIL_PX + 28) + 8)
        self.thumbnails.setToolTip("A few images of each class, as found on disk.")
        form.addRow(self.thumbnails)
        self.problems = QListWidget()
        self.problems.setObjectName("skippedFiles")
        self.problems.setFixedHeight(90)
        self.problems.setToolTip("Files that will not be used, and why. Broken images are skipped; "
                                 "hidden files, system folders and non-images are ignored.")
        form.addRow(QLabel("Skipped and ignored files:"))
        form.addRow(self.problems)

    # -- folder choice --------------------------------------------------------------------
    def choose_folder(self) -> None:
        start = self.dir_edit.text() if is_folder(self.dir_edit.text()) else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Choose the image folder", start)
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str) -> None:
        """Puts ``folder`` into ``data.dir`` and scans it (dialog, drop, recent list)."""
        self.dir_edit.setText(folder)
        self._on_field_changed()
        self.folder_chosen.emit(folder)

    def set_recent(self, folders: list[str]) -> None:
        self.recent.clear()
        self.recent.addItem("choose a recent folder…", None)
        for folder in folders:
            self.recent.addItem(folder, folder)

    def runs_dir(self) -> Path:
        return Path(self.runs_dir_edit.text().strip() or "runs").expanduser().absolute()

    def _on_recent_activated(self, index: int) -> None:
        folder = self.recent.itemData(index)
        if folder:
            self.set_folder(folder)

    def _on_browse_validation_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the validation folder", str(Path.home()))
        if folder:
            self.validation_edit.setText(folder)
            self._on_field_changed()

    # -- scanning ---------------------------------------------------------------------------
    def after_load(self, config: Config) -> None:
        self.rescan()

    def on_field_changed(self) -> None:
        folder = self.dir_edit.text().strip()
        if self.scan is None or folder != getattr(self, "_scanned_dir", None):
            self.rescan()

    def rescan(self) -> None:
        folder = self.dir_edit.text().strip()
        self._scanned_dir = folder
        if not folder:
            return
        self.summary.setText(f"Scanning {folder} …")
        self.tasks.submit("scan", scan_folder, folder)

    def _on_tasks_done(self, name: str, result: Any) -> None:
        if name == "scan":
            self._show_scan(result)
        elif name == "thumbnails":
            self._show_thumbnails(result)

    def _on_tasks_failed(self, name: str, error: Exception) -> None:
        if name == "scan":
            self.scan = None
            self.summary.setText(f"Cannot use this folder: {error}")
            self.count_plot.set_counts({})
            self.thumbnails.clear()
            self.problems.clear()
            self.scan_failed.emit(str(error))

    def _show_scan(self, scan: Any) -> None:
        self.scan = scan
        counts = class_counts(scan)
        total = sum(counts.values())
        text = (f"{len(counts)} classes, {total} images; {len(scan.skipped)} skipped, "
                f"{len(scan.ignored)} ignored.")
        if scan.warnings:
            text += "\n" + "\n".join(f"⚠ {warning}" for warning in scan.warnings)
        self.summary.setText(text)
        self.count_plot.set_counts(counts)
        self.problems.clear()
        for kind, entries in (("skipped", scan.skipped), ("ignored", scan.ignored)):
            for path, reason in entries:
                self.problems.addItem(f"{kind}: {display_path(Path(path).name)} - {reason}")
                self.problems.item(self.problems.count() - 1).setToolTip(display_path(path))
        self.thumbnails.clear()
        pairs = sample_paths(scan, THUMBNAILS_PER_CLASS, THUMBNAIL_CLASSES)
        self.tasks.submit("thumbnails", load_thumbnails, pairs, THUMBNAIL_PX)
        self.scanned.emit(scan)

    def _show_thumbnails(self, thumbnails: list[tuple[str, str, QImage]]) -> None:
        self.thumbnails.clear()
        for name, path, image in thumbnails:
            item = QListWidgetItem(QPixmap.fromImage(image), _short(display_path(name), 9))
            item.setToolTip(f"{display_path(name)}\n{display_path(path)}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            self.thumbnails.addItem(item)

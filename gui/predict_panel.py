"""The Predict tab: a trained run classifies images dropped onto it, and shows where it looked.

Images (or folders, searched with their subfolders by the engine) come by drag and drop,
onto this tab or onto the window while this tab is shown, or through "Add images…". The
engine process classifies them (``engine_calls.predict_images``) off the GUI thread; each
row shows a thumbnail and the top classes with their probabilities. Selecting a row shows
its Grad-CAM overlay. Changing the run, the number of classes or test-time augmentation
classifies the listed images again.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from gui import engine_calls
from gui.gradcam_view import GradCamWidget, load_thumbnail_images, percent
from gui.tasks import BackgroundTasks
from gui.words import PLAIN, Words
from training.data.images import IMAGE_EXTENSIONS
from training.files import display_path, file_kind
from training.rundir import BEST_MODEL

THUMBNAIL_PX = 64
DEFAULT_TOP_K = 5
MAX_TOP_K = 20
# Edits of the number of classes come several a second with the arrows: classify once they pause.
RECLASSIFY_DELAY_MS = 400
PATH_ROLE = Qt.ItemDataRole.UserRole


def dropped_paths(mime: QMimeData) -> list[str]:
    """The local files and folders in a drag's data (web links and the like are ignored)."""
    if not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]


class PredictPanel(QWidget):
    """The Predict tab (see the module's docstring)."""

    predicted = Signal(list)    # each batch's results, once listed

    def __init__(self, parent: QWidget | None = None, *, words: Words | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("predictPanel")
        self.setAcceptDrops(True)
        self.words = words or PLAIN
        self.inputs: list[str] = []     # what was added (files and folders), in order
        self.results: list[dict[str, Any]] = []
        self._generation = 0            # results of older settings are dropped when they come
        self._batches = itertools.count(1)
        self._pending: set[str] = set()
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)
        self._reclassify_timer = QTimer(self)
        self._reclassify_timer.setSingleShot(True)
        self._reclassify_timer.setInterval(RECLASSIFY_DELAY_MS)
        self._reclassify_timer.timeout.connect(self.classify_again)
        self._build()
        self.classify_again()  # says what to do first

    def _build(self) -> None:
        self.run_box = QComboBox()
        self.run_box.setObjectName("predictRun")
        self.run_box.setToolTip("The run whose best model classifies the images.")
        self.run_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.run_box.setMinimumContentsLength(12)
        self.run_box.activated.connect(self._on_run_box_activated)
        self.choose_button = QPushButton("Choose run…")
        self.choose_button.setObjectName("chooseRunButton")
        self.choose_button.setToolTip("Choose a run folder (one with a best model) to classify with.")
        self.choose_button.clicked.connect(self._on_choose_button_clicked)
        self.add_button = QPushButton("Add images…")
        self.add_button.setObjectName("addImagesButton")
        self.add_button.setToolTip("Choose images to classify (or drop images or folders onto this tab).")
        self.add_button.clicked.connect(self._on_add_button_clicked)
        self.top_k = QSpinBox()
        self.top_k.setObjectName("predictTopK")
        self.top_k.setRange(1, MAX_TOP_K)
        self.top_k.setValue(DEFAULT_TOP_K)
        self.top_k.setToolTip("How many classes to list for each image, most likely first.")
        self.top_k.valueChanged.connect(self._on_settings_changed)
        self.tta_box = QCheckBox("Test-time augmentation")
        self.tta_box.setObjectName("predictTta")
        self.tta_box.setToolTip("Average the answers over flipped and cropped copies of each image: "
                                "often a little more accurate, several times slower.")
        self.tta_box.toggled.connect(self._on_settings_changed)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setObjectName("clearPredictionsButton")
        self.clear_button.setToolTip("Remove every image from the list.")
        self.clear_button.clicked.connect(self.clear)
        self.progress = QProgressBar()
        self.progress.setObjectName("predictProgress")
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(100)
        self.progress.hide()
        self.status = QLabel()
        self.status.setObjectName("predictStatus")
        self.status.setWordWrap(True)
        self.list = QListWidget()
        self.list.setObjectName("predictList")
        self.list.setMinimumSize(40, 40)
        self.list.setIconSize(QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.currentItemChanged.connect(self._on_list_current_item_changed)
        self.grad_cam = GradCamWidget(words=self.words)
        run_row = QHBoxLayout()
        run_row.addWidget(QLabel("Run:"))
        run_row.addWidget(self.run_box, 1)
        run_row.addWidget(self.choose_button)
        # Short rows: the tab fits beside the settings of an 800 px window.
        images = QHBoxLayout()
        images.addWidget(self.add_button)
        images.addWidget(self.clear_button)
        images.addWidget(self.progress)
        images.addStretch(1)
        options = QHBoxLayout()
        options.addWidget(QLabel("Classes shown:"))
        options.addWidget(self.top_k)
        options.addWidget(self.tta_box)
        options.addStretch(1)
        body = QSplitter(Qt.Orientation.Horizontal)
        body.setObjectName("predictSplitter")
        body.addWidget(self.list)
        body.addWidget(self.grad_cam)
        body.setStretchFactor(0, 1)
        body.setCollapsible(0, False)
        body.setCollapsible(1, False)
        body.setSizes([520, 260])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(run_row)
        layout.addLayout(images)
        layout.addLayout(options)
        layout.addWidget(self.status)
        layout.addWidget(body, 1)

    # -- the run -------------------------------------------------------------------------------
    def run_dir(self) -> str:
        return self.run_box.currentData() or ""

    def set_run(self, run_dir: str | Path) -> None:
        """Chooses ``run_dir`` (added at the top of the chooser if new); listed images are
        classified again by it."""
        run_dir = str(run_dir)
        index = self.run_box.findData(run_dir)
        if index < 0:
            self.run_box.insertItem(0, Path(run_dir).name or run_dir, run_dir)
            self.run_box.setItemData(0, display_path(run_dir), Qt.ItemDataRole.ToolTipRole)
            index = 0
        changed = self.run_box.currentIndex() != index
        self.run_box.setCurrentIndex(index)
        if changed or not self.results:
            self.classify_again()
        self._update_controls()

    def _on_run_box_activated(self, _: int) -> None:
        self.classify_again()

    def _on_choose_button_clicked(self) -> None:
        start = str(Path(self.run_dir()).parent) if self.run_dir() else ""
        folder = QFileDialog.getExistingDirectory(self, "Choose a run", start)
        if folder:
            self.set_run(folder)

    # -- images in ----------------------------------------------------------------------------
    def add_paths(self, paths: list[str]) -> bool:
        """Classifies ``paths`` (images or folders) with the chosen run, in the background."""
        paths = [str(p) for p in paths if str(p)]
        if not paths:
            return False
        self.inputs += paths
        problem = self.run_problem()
        if problem:
            self.status.setText(f"{len(self.inputs)} items wait for a run. {problem}")
        else:
            self._submit(paths)
        return True

    def run_problem(self) -> str:
        """Why the chosen run cannot classify ("" when it can)."""
        if not self.run_dir():
            return "Choose a run above (a run folder with a best model)."
        if file_kind(Path(self.run_dir()) / BEST_MODEL) != "file":
            return (f"{display_path(self.run_dir())} has no best model ({BEST_MODEL}): choose a run "
                    "folder whose run completed at least one epoch.")
        return ""

    def _submit(self, paths: list[str]) -> None:
        name = f"predict-{self._generation}-{next(self._batches)}"
        self._pending.add(name)
        self.status.setText(f"Classifying {_count(paths)} with {Path(self.run_dir()).name}…")
        self.tasks.submit(name, engine_calls.predict_images, self.run_dir(), paths,
                          self.top_k.value(), self.tta_box.isChecked())
        self._update_controls()

    def classify_again(self) -> None:
        """Lists the added images anew, classified with the current run and options."""
        self._generation += 1
        self._pending.clear()
        self.results = []
        self.list.clear()
        self.grad_cam.clear()
        problem = self.run_problem()
        if problem:
            self.status.setText(f"{problem} Then drop images or a folder here (or Add images…).")
        elif self.inputs:
            self._submit(list(self.inputs))
        else:
            self.status.setText(f"Drop images or a folder here (or Add images…) to classify them with "
                                f"{Path(self.run_dir()).name}.")
        self._update_controls()

    def clear(self) -> None:
        self.inputs = []
        self.classify_again()

    def _on_settings_changed(self, *_: object) -> None:
        if self.inputs and not self.run_problem():
            self._reclassify_timer.start()

    def _on_add_button_clicked(self) -> None:
        patterns = " ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS))
        paths, _ = QFileDialog.getOpenFileNames(self, "Add images", "", f"Images ({patterns});;All files (*)")
        self.add_paths(paths)

    def accepts(self, mime: QMimeData) -> bool:
        return bool(dropped_paths(mime))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if self.accepts(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        if self.add_paths(dropped_paths(event.mimeData())):
            event.acceptProposedAction()

    # -- results -------------------------------------------------------------------------------
    def _on_tasks_done(self, name: str, result: Any) -> None:
        if name.startswith("thumbnails-"):
            self._show_thumbnails(name, result)
            return
        if name not in self._pending:
            return  # classified with settings that have changed since
        self._pending.discard(name)
        rows = [row for row in result if isinstance(row, dict)]
        self.results += rows
        for row in rows:
            self.list.addItem(self._item(row))
        paths = [row["path"] for row in rows if "top" in row]
        if paths:
            self.tasks.submit(f"thumbnails-{self._generation}-{name}", load_thumbnail_images, paths,
                              THUMBNAIL_PX)
        failed = sum(1 for row in rows if "error" in row)
        self.status.setText(f"{len(self.results)} images classified with {Path(self.run_dir()).name}"
                            + (f"; {failed} could not be read" if failed else "")
                            + ". Select one to see where the model looked.")
        if self.list.currentRow() < 0 and self.list.count():
            self.list.setCurrentRow(0)
        self._update_controls()
        self.predicted.emit(rows)

    def _on_tasks_failed(self, name: str, error: Exception) -> None:
        if name.startswith("thumbnails-") or name not in self._pending:
            return
        self._pending.discard(name)
        self.status.setText(f"Could not classify the images: {self.words.plain(str(error))}")
        self._update_controls()

    def _item(self, row: dict[str, Any]) -> QListWidgetItem:
        path = str(row.get("path", ""))
        name = Path(path).name or path
        if "error" in row:
            item = QListWidgetItem(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning),
                                   f"{name}\nCannot be classified: {row['error']}")
        else:
            top = row.get("top") or []
            lines = [f"{entry.get('class')}  {percent(entry.get('probability'))}" for entry in top]
            item = QListWidgetItem(f"{name}\n" + "  ·  ".join(lines))
            item.setData(PATH_ROLE, path)
        item.setToolTip(display_path(path))
        return item

    def _show_thumbnails(self, name: str, thumbnails: list[tuple[str, QImage]]) -> None:
        if not name.startswith(f"thumbnails-{self._generation}-"):
            return
        by_path = dict(thumbnails)
        for row in range(self.list.count()):
            item = self.list.item(row)
            image = by_path.get(item.data(PATH_ROLE))
            if image is not None:
                item.setIcon(QIcon(QPixmap.fromImage(image)))

    def _on_list_current_item_changed(self, current: QListWidgetItem | None, _: Any) -> None:
        path = current.data(PATH_ROLE) if current is not None else None
        if path and not self.run_problem():
            self.grad_cam.explain(self.run_dir(), path)
        else:
            self.grad_cam.clear()

    def _update_controls(self) -> None:
        self.progress.setVisible(bool(self._pending))
        self.clear_button.setEnabled(bool(self.inputs))
        self.add_button.setEnabled(True)
        self.run_box.setToolTip(display_path(self.run_dir()) if self.run_dir() else
                                "The run whose best model classifies the images.")

    def shutdown(self) -> None:
        self.tasks.shutdown()
        self.grad_cam.tasks.shutdown()


def _count(paths: list[str]) -> str:
    folders = sum(1 for p in paths if file_kind(p) == "folder")
    files = len(paths) - folders
    parts = [f"{files} image{'s' if files != 1 else ''}" if files else "",
             f"{folders} folder{'s' if folders != 1 else ''}" if folders else ""]
    return " and ".join(p for p in parts if p)

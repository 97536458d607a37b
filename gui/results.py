"""The Results tab: how a run's best model does on its validation (or held-out test) images.

The engine writes ``RUN_DIR/evaluation/`` (and ``evaluation-test/`` for a held-out test set)
at the end of every run: ``evaluation.json`` (accuracy, per-class figures, the confusion
matrix) and ``predictions.csv`` (one row an image). This tab only reads those two files
(``training.evaluation.reading``); "Evaluate again" (optionally with test-time augmentation) asks the engine process to write
them anew, off the GUI thread (``engine_calls.evaluate_run``).

The confusion matrix is a table of counts (rows: true class, columns: predicted class);
clicking a cell lists the images of that cell, highest loss first, and selecting an image
shows its Grad-CAM overlay (``gui.gradcam_view``, shared with the Predict tab): where the
model looked to give its answer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPoint,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QBrush,
    QColor,
    QDesktopServices,
    QFont,
    QGuiApplication,
    QImage,
    QPixmap,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui import engine_calls
from gui.gradcam_view import GradCamWidget, load_thumbnail_images, percent
from gui.tasks import BackgroundTasks
from gui.words import PLAIN, Words
from training.evaluation import default_folder
from training.evaluation.reading import (
    Evaluation,
    EvaluationFileError,
    EvaluationMissing,
    Prediction,
    evaluation_folders,
    is_number,
    read_evaluation,
)
from training.files import display_path, file_kind
from training.rundir import BEST_MODEL

# (split, what the selector says about it); the engine names their folders (``default_folder``)
# and ``training.evaluation.reading`` reads them.
SPLITS = (("validation", "Validation — picked the best epoch"),
          ("test", "Test — held out, never seen"))
SPLIT_WORDS = {"validation": "validation images", "test": "held-out test images"}
THUMBNAIL_PX = 48
# Thumbnails decoded per gallery: the first rows in the order shown (a cell of thousands
# would otherwise keep a thread decoding for minutes).
MAX_THUMBNAILS = 200
NAME_COLUMN_PX = 150
PATH_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


# -- the confusion matrix --------------------------------------------------------------------------
class ConfusionModel(QAbstractTableModel):
    """Counts with a colour by their share of the true class: green on the diagonal
    (right answers, also in bold), red elsewhere, so mistakes stand out at a glance."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.classes: list[str] = []
        self.matrix: list[list[int]] = []

    def set_matrix(self, classes: list[str], matrix: list[list[int]]) -> None:
        self.beginResetModel()
        self.classes, self.matrix = list(classes), [list(row) for row in matrix]
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(self.classes)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(self.classes)

    def share(self, row: int, column: int) -> float:
        total = sum(self.matrix[row])
        return self.matrix[row][column] / total if total else 0.0

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        count, share, right = self.matrix[row][column], self.share(row, column), row == column
        if role == Qt.ItemDataRole.DisplayRole:
            return str(count)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.BackgroundRole:
            return QBrush(_blend("#2e7d32" if right else "#c62828", share))
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(QColor("white" if share > 0.5 else "black"))
        if role == Qt.ItemDataRole.FontRole and right:
            font = QFont()
            font.setBold(True)
            return font
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            true, predicted = self.classes[row], self.classes[column]
            what = (f"{count} of the images of “{true}” were recognised ({share:.0%})" if right
                    else f"{count} images of “{true}” were taken for “{predicted}” "
                         f"({share:.0%} of {true})")
            return f"{what}. Click to see them."
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 (Qt override)
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if section >= len(self.classes):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.classes[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            side = "True class" if orientation == Qt.Orientation.Vertical else "Predicted class"
            return f"{side}: {self.classes[section]}"
        return None


def _blend(colour: str, share: float) -> QColor:
    """White at share 0, ``colour`` at share 1 (a faint tint for any non-zero count)."""
    target = QColor(colour)
    amount = 0.0 if share <= 0 else 0.12 + 0.88 * min(1.0, share)
    return QColor(*(round(255 + (channel - 255) * amount)
                    for channel in (target.red(), target.green(), target.blue())))


# -- the images of a cell ------------------------------------------------------------------------
class GalleryWidget(QWidget):
    """Images with their true and predicted class, confidence and loss; sortable by any
    column (highest loss first at the start); "Top losses", open the folder, copy paths."""

    image_selected = Signal(str, str)  # path, true class
    top_losses_requested = Signal()

    # The figures the list is sorted by first: the classes come last, left out for one cell.
    COLUMNS = ("Image", "Loss", "Confidence", "True", "Predicted")
    CLASS_COLUMNS = (3, 4)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resultsGallery")
        self.rows: list[Prediction] = []
        self.title = QLabel("Click a cell of the matrix to see its images.")
        self.title.setObjectName("galleryTitle")
        self.title.setWordWrap(True)
        self.model = QStandardItemModel(0, len(self.COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView()
        self.view.setObjectName("galleryView")
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setIconSize(QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setMinimumSize(40, 40)  # scrolls: never what keeps a small window wide
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(THUMBNAIL_PX + 6)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._on_view_custom_context_menu_requested)
        self.view.selectionModel().currentRowChanged.connect(self._on_view_current_row_changed)
        self.top_button = QPushButton("Top losses")
        self.top_button.setObjectName("topLossesButton")
        self.top_button.setToolTip("All images, the most confidently wrong first: mislabelled "
                                   "images and hard cases gather at the top.")
        self.top_button.clicked.connect(self.top_losses_requested)
        self.open_button = QPushButton("Open folder")
        self.open_button.setObjectName("openImageFolderButton")
        self.open_button.setToolTip("Open the folder that contains the selected image.")
        self.open_button.clicked.connect(self.open_containing_folder)
        self.copy_button = QPushButton("Copy paths")
        self.copy_button.setObjectName("copyPathsButton")
        self.copy_button.setToolTip("Copy the paths of the images listed here, one a line.")
        self.copy_button.clicked.connect(self.copy_paths)
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        # The buttons stand in a column beside the list: nothing is cut in a narrow window.
        buttons = QVBoxLayout()
        for button in (self.top_button, self.open_button, self.copy_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.view, 1)
        row.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(row, 1)
        self._update_buttons()

    def show_rows(self, title: str, rows: list[Prediction], *, one_cell: bool = False) -> None:
        """Lists ``rows``, highest loss first; thumbnails follow in the background.
        ``one_cell``: the rows share their true and predicted class (the title names them),
        so those columns are left out and confidence and loss stay in sight."""
        self.rows = list(rows)
        self.title.setText(title)
        self.model.removeRows(0, self.model.rowCount())
        for row in self.rows:
            name = QStandardItem(Path(row.path).name)
            name.setData(row.path, PATH_ROLE)
            name.setData(Path(row.path).name.lower(), SORT_ROLE)
            name.setToolTip(display_path(row.path))
            items = [name, _number_item(f"{row.loss:.3f}", row.loss),
                     _number_item(percent(row.confidence), row.confidence),
                     _text_item(row.true), _text_item(row.predicted)]
            self.model.appendRow(items)
        self.view.sortByColumn(self.COLUMNS.index("Loss"), Qt.SortOrder.DescendingOrder)
        for column in self.CLASS_COLUMNS:
            self.view.setColumnHidden(column, one_cell)
        # Long file names are elided in the middle: the figures beside them stay in sight.
        # (The thumbnails come later: their room is counted now.)
        wanted = self.view.sizeHintForColumn(0) + THUMBNAIL_PX + 12
        self.view.horizontalHeader().resizeSection(0, min(NAME_COLUMN_PX, wanted))
        self._update_buttons()
        shown = self.paths()[:MAX_THUMBNAILS]
        if shown:
            self.tasks.submit("thumbnails", load_thumbnail_images, shown, THUMBNAIL_PX)

    def paths(self) -> list[str]:
        """The listed images' paths in the order shown."""
        return [self.proxy.index(r, 0).data(PATH_ROLE) for r in range(self.proxy.rowCount())]

    def selected_paths(self) -> list[str]:
        return [index.data(PATH_ROLE) for index in self.view.selectionModel().selectedRows(0)]

    def select_row(self, row: int) -> None:
        self.view.selectRow(row)
        self.view.setCurrentIndex(self.proxy.index(row, 0))

    def copy_paths(self, only_selected: bool = False) -> list[str]:
        """Puts the listed (or the selected) images' paths on the clipboard, one a line."""
        paths = self.selected_paths() if only_selected else self.paths()
        QGuiApplication.clipboard().setText("\n".join(display_path(p) for p in paths))
        return paths

    def open_containing_folder(self) -> None:
        paths = self.selected_paths() or self.paths()[:1]
        if paths:
            QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(paths[0])))

    def clear(self, title: str) -> None:
        self.show_rows(title, [])

    def _update_buttons(self) -> None:
        for button in (self.open_button, self.copy_button):
            button.setEnabled(bool(self.rows))

    def _on_tasks_done(self, _: str, thumbnails: list[tuple[str, QImage]]) -> None:
        by_path = {path: image for path, image in thumbnails}
        for row in range(self.model.rowCount()):
            item = self.model.item(row, 0)
            image = by_path.get(item.data(PATH_ROLE))
            if image is not None:
                item.setData(QPixmap.fromImage(image), Qt.ItemDataRole.DecorationRole)

    def _on_view_current_row_changed(self, current: QModelIndex, _: QModelIndex) -> None:
        if current.isValid():
            path = self.proxy.index(current.row(), 0).data(PATH_ROLE)
            true = self.proxy.index(current.row(), self.COLUMNS.index("True")).data()
            self.image_selected.emit(path, true)

    def _on_view_custom_context_menu_requested(self, position: QPoint) -> None:
        self.context_menu().popup(self.view.viewport().mapToGlobal(position))

    def context_menu(self) -> QMenu:
        menu = QMenu(self)
        menu.setObjectName("galleryMenu")
        menu.addAction("Open containing folder", self.open_containing_folder).setEnabled(bool(self.rows))
        menu.addAction("Copy paths of the selected images",
                       lambda: self.copy_paths(only_selected=True)).setEnabled(bool(self.selected_paths()))
        menu.addAction("Copy all paths", self.copy_paths).setEnabled(bool(self.rows))
        return menu


def _text_item(text: str) -> QStandardItem:
    item = QStandardItem(text)
    item.setData(text.lower(), SORT_ROLE)
    return item


def _number_item(text: str, value: float) -> QStandardItem:
    item = QStandardItem(text)
    item.setData(float(value), SORT_ROLE)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


# -- the tab --------------------------------------------------------------------------------------
class ResultsView(QWidget):
    """The Results tab (see the module's docstring). ``show_run(run_dir)`` shows any run."""

    loaded = Signal(str)        # the split shown, after (re)loading a run's evaluation
    evaluation_failed = Signal(str)
    evaluation_progress = Signal(int, int)  # images scored, of all; emitted from the worker thread

    def __init__(self, parent: QWidget | None = None, *, words: Words | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resultsView")
        self.words = words or PLAIN
        self.run_dir = ""
        self.evaluations: dict[str, Evaluation] = {}
        self.problems: dict[str, str] = {}  # split -> why it cannot be shown
        self.split = "validation"
        self._evaluating = ""  # the run folder being evaluated again, if any
        self.tasks = BackgroundTasks(self, workers=1)
        self.evaluation_progress.connect(self._on_self_evaluation_progress)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)
        self._build()
        self.show_message("No run to show yet: the results of a run appear here when it finishes "
                          "(or open one: File > Open run results…).")

    def _build(self) -> None:
        self.split_box = QComboBox()
        self.split_box.setObjectName("resultsSplit")
        self.split_box.setToolTip("Validation images chose the best epoch, so their figures are a "
                                  "little optimistic; a held-out test set was never used in training.")
        self.split_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.split_box.activated.connect(self._on_split_box_activated)
        self.tta_box = QCheckBox("Test-time augmentation")
        self.tta_box.setObjectName("resultsTta")
        self.tta_box.setToolTip("Average the answers over flipped and cropped copies of each image "
                                "when evaluating again: often a little more accurate, several times slower.")
        self.evaluate_button = QPushButton("Evaluate again")
        self.evaluate_button.setObjectName("evaluateButton")
        self.evaluate_button.setToolTip("Score the run's best model on these images again "
                                        "(in the engine process; the window stays usable).")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.progress = QProgressBar()
        self.progress.setObjectName("evaluateProgress")
        self.progress.setRange(0, 0)  # busy until the engine reports the first images scored
        self.progress.setMaximumWidth(120)
        self.progress.hide()
        self.run_label = QLabel()
        self.run_label.setObjectName("resultsRun")
        self.run_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.run_label.setMinimumWidth(20)  # a long run name never widens the window
        self.summary = QLabel()
        self.summary.setObjectName("resultsSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.matrix_model = ConfusionModel(self)
        self.matrix = QTableView()
        self.matrix.setObjectName("confusionMatrix")
        self.matrix.setModel(self.matrix_model)
        self.matrix.setMinimumSize(40, 40)
        self.matrix.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.matrix.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.matrix.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.matrix.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.matrix.setToolTip("Rows: the true class; columns: the class the model answered. "
                               "The diagonal (green, bold) counts the right answers.")
        self.matrix.clicked.connect(self._on_matrix_clicked)
        self.matrix.activated.connect(self._on_matrix_clicked)
        self.per_class = QTableWidget(0, 5)
        self.per_class.setObjectName("perClassTable")
        self.per_class.setHorizontalHeaderLabels(["Class", "Precision", "Recall", "F1", "Images"])
        self.per_class.setMinimumSize(40, 40)
        self.per_class.verticalHeader().hide()
        self.per_class.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.per_class.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.per_class.setToolTip("Precision: of the images answered as this class, the share that "
                                  "is. Recall: of the images of this class, the share found. F1: "
                                  "both in one number.")
        self.gallery = GalleryWidget()
        self.gallery.top_losses_requested.connect(self.show_top_losses)
        self.gallery.image_selected.connect(self._on_gallery_image_selected)
        self.grad_cam = GradCamWidget(words=self.words)
        self._lay_out()

    def _lay_out(self) -> None:
        # Two short rows rather than one long one: the tab fits beside an 800 px window's settings.
        evaluate = QHBoxLayout()
        evaluate.addWidget(self.tta_box)
        evaluate.addWidget(self.evaluate_button)
        evaluate.addWidget(self.progress)
        evaluate.addStretch(1)
        axes = QLabel("Rows: true class · columns: predicted")
        axes.setWordWrap(True)
        matrix_box = QWidget()
        matrix_layout = QVBoxLayout(matrix_box)
        matrix_layout.setContentsMargins(0, 0, 0, 0)
        matrix_layout.addWidget(axes)
        matrix_layout.addWidget(self.matrix, 1)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(matrix_box)
        left.addWidget(self.per_class)
        self.body = QSplitter(Qt.Orientation.Horizontal)
        self.body.setObjectName("resultsSplitter")
        self.body.addWidget(left)
        self.body.addWidget(self.gallery)
        self.body.addWidget(self.grad_cam)
        # Every pane gives up its share when the window is small (the list alone would vanish).
        for index, stretch in enumerate((2, 3, 1)):
            self.body.setStretchFactor(index, stretch)
        for index in range(3):
            self.body.setCollapsible(index, False)
        self.body.setSizes([280, 560, 170])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        split = QHBoxLayout()
        split.addWidget(self.split_box)
        split.addWidget(self.run_label, 1)
        layout.addLayout(split)
        layout.addLayout(evaluate)
        layout.addWidget(self.summary)
        layout.addWidget(self.body, 1)

    # -- showing a run ------------------------------------------------------------------------
    def show_run(self, run_dir: str | Path, split: str | None = None) -> bool:
        """Reads the run's evaluation folders and shows one (validation by default).
        Returns False (and says why in the tab) when there is none to show."""
        self.run_dir = str(run_dir)
        self.run_label.setText(f"run {Path(run_dir).name}")
        self.run_label.setToolTip(display_path(run_dir))
        self.evaluations, self.problems = {}, {}
        folders = evaluation_folders(run_dir)
        for name in ("validation", *[s for s in folders if s != "validation"]):
            try:
                folder = folders.get(name, default_folder(Path(run_dir), name))
                self.evaluations[name] = read_evaluation(folder)
            except EvaluationMissing:
                self.problems[name] = (f"This run has no evaluation yet. Evaluate scores its best model "
                                       f"on its {SPLIT_WORDS.get(name, 'images')}.")
            except EvaluationFileError as error:
                self.problems[name] = str(error)
        self.split_box.clear()
        for name, label in SPLITS:
            if name == "validation" or name in self.evaluations:
                self.split_box.addItem(label, name)
        wanted = split if split in self.evaluations else "validation"
        return self.show_split(wanted)

    def show_split(self, split: str) -> bool:
        self.split = split
        index = self.split_box.findData(split)
        if index >= 0:
            self.split_box.setCurrentIndex(index)
        evaluation = self.evaluations.get(split)
        if evaluation is None:
            self.show_message(self.problems.get(split, "This run has no evaluation yet."), evaluate=True)
            return False
        self._show_evaluation(evaluation)
        self.loaded.emit(split)
        return True

    def current(self) -> Evaluation | None:
        return self.evaluations.get(self.split)

    def show_message(self, text: str, *, evaluate: bool = False) -> None:
        """A tab with nothing to show but ``text`` (and the Evaluate button where it helps)."""
        self.summary.setText(text)
        self.summary.setToolTip("")
        self.body.hide()  # an empty matrix, list and picture would only say it again
        self.matrix_model.set_matrix([], [])
        self.per_class.setRowCount(0)
        self.gallery.clear("")
        self.grad_cam.clear()
        self.evaluate_button.setText("Evaluate" if evaluate else "Evaluate again")
        self._update_controls()

    def _show_evaluation(self, evaluation: Evaluation) -> None:
        report = evaluation.report
        self.evaluate_button.setText("Evaluate again")
        self.body.show()
        self.summary.setText(self._summary_text(report))
        self.summary.setToolTip(f"Written {report.get('date', '')} in {display_path(evaluation.folder)}")
        self.matrix_model.set_matrix(evaluation.classes, evaluation.matrix)
        self._fill_per_class(report, evaluation.classes)
        self._fit_panes()
        self.grad_cam.clear()
        if evaluation.predictions_problem:
            self.gallery.clear(evaluation.predictions_problem)
        else:
            self.show_top_losses()
        self._update_controls()

    def _fit_panes(self) -> None:
        """The matrix's pane as wide as the whole matrix (up to half the tab), the rest to
        the gallery and the heat map: the matrix is what a person reads first."""
        self.matrix.resizeColumnsToContents()
        self.matrix.resizeRowsToContents()
        frame = 2 * self.matrix.frameWidth() + self.matrix.verticalScrollBar().sizeHint().width()
        wanted = self.matrix.verticalHeader().sizeHint().width() + self.matrix.horizontalHeader().length() + frame
        total = sum(self.body.sizes()) or self.body.width()
        if total <= 0:
            return
        left = max(min(wanted, total // 2), total // 4)
        rest = total - left
        self.body.setSizes([left, rest * 2 // 3, rest - rest * 2 // 3])

    def _summary_text(self, report: dict[str, Any]) -> str:
        parts = [f"Accuracy {percent(report.get('accuracy'))}"]
        top = report.get("top_k_accuracy")
        if isinstance(top, dict) and is_number(top.get("value")):
            parts.append(f"top-{top.get('k')} accuracy {percent(top['value'])}")
        parts.append(f"loss {float(report['loss']):.3f}")
        images = report.get("images")
        parts.append(f"{images} images" if isinstance(images, int) else "")
        text = " · ".join(p for p in parts if p)
        if report.get("tta"):
            without = report.get("accuracy_without_tta")
            text += (" · with test-time augmentation" +
                     (f" ({percent(without)} without)" if is_number(without) else ""))
        skipped = report.get("skipped")
        if isinstance(skipped, list) and skipped:
            text += f" · {len(skipped)} images could not be read and were left out"
        return text

    def _fill_per_class(self, report: dict[str, Any], classes: list[str]) -> None:
        per_class = report.get("per_class") if isinstance(report.get("per_class"), dict) else {}
        rows = [(name, per_class.get(name)) for name in classes]
        rows += [("Macro avg", report.get("macro_avg")), ("Weighted avg", report.get("weighted_avg"))]
        self.per_class.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        for row, (name, figures) in enumerate(rows):
            figures = figures if isinstance(figures, dict) else {}
            support = figures.get("support")
            cells = [name, *(_fraction(figures.get(k)) for k in ("precision", "recall", "f1")),
                     str(int(support)) if is_number(support) else "-"]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if row >= len(classes):
                    item.setFont(bold)
                    item.setToolTip(AVERAGE_TIPS[name])
                self.per_class.setItem(row, column, item)

    def _update_controls(self) -> None:
        running = self.tasks.busy("evaluate")
        has_model = bool(self.run_dir) and file_kind(Path(self.run_dir) / BEST_MODEL) == "file"
        self.evaluate_button.setEnabled(has_model and not running)
        self.evaluate_button.setVisible(bool(self.run_dir))
        self.tta_box.setEnabled(not running)
        self.split_box.setEnabled(not running and self.split_box.count() > 1)
        self.progress.setVisible(running)

    # -- the gallery ------------------------------------------------------------------------------
    def show_cell(self, true: int, predicted: int) -> list[Prediction]:
        """Lists the images of one matrix cell (highest loss first) and returns them."""
        evaluation = self.current()
        if evaluation is None:
            return []
        if evaluation.predictions_problem:
            self.gallery.clear(evaluation.predictions_problem)
            return []
        rows = evaluation.cell(true, predicted)
        truth, answer = evaluation.classes[true], evaluation.classes[predicted]
        if true == predicted:
            title = f"“{truth}” recognised: {len(rows)} images, the least sure first"
        else:
            title = (f"“{truth}” taken for “{answer}”: {len(rows)} images, the most confident "
                     "mistake first")
        if not rows:
            title = f"No image of “{truth}” was answered “{answer}”."
        self.gallery.show_rows(title, rows, one_cell=True)
        self.grad_cam.clear()
        return rows

    def show_top_losses(self) -> list[Prediction]:
        """Lists every image of the evaluation, highest loss first."""
        evaluation = self.current()
        if evaluation is None or evaluation.predictions_problem:
            return []
        self.matrix.clearSelection()
        self.gallery.show_rows(f"Top losses: all {len(evaluation.predictions)} images, the worst first "
                               "(mislabelled images often gather here)", evaluation.predictions)
        self.grad_cam.clear()
        return evaluation.predictions

    def _on_matrix_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.show_cell(index.row(), index.column())

    def _on_gallery_image_selected(self, path: str, true: str) -> None:
        if self.run_dir:
            self.grad_cam.explain(self.run_dir, path, None, true)

    def _on_split_box_activated(self, index: int) -> None:
        self.show_split(self.split_box.itemData(index))

    # -- evaluating again ---------------------------------------------------------------------------
    def evaluate(self, *_: object) -> bool:
        """Asks the engine to evaluate the shown split again (TTA as ticked), in the background."""
        if not self.run_dir or self.tasks.busy("evaluate"):
            return False
        tta = self.tta_box.isChecked()
        what = SPLIT_WORDS.get(self.split, "images")
        self.summary.setText(f"Evaluating the best model on the {what}"
                             f"{' with test-time augmentation' if tta else ''}…")
        self._evaluating = self.run_dir
        self.progress.setRange(0, 0)
        self.tasks.submit("evaluate", engine_calls.evaluate_run, self.run_dir, self.split, tta,
                          self.evaluation_progress.emit)
        self._update_controls()
        return True

    def _on_self_evaluation_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done}/{total}")
        self.progress.setTextVisible(True)

    def _on_tasks_done(self, _: str, result: dict[str, Any]) -> None:
        self._update_controls()
        if self._evaluating == self.run_dir:  # not when another run is shown by now
            self.show_run(self.run_dir, self.split)

    def _on_tasks_failed(self, _: str, error: Exception) -> None:
        self._update_controls()
        if self._evaluating != self.run_dir:
            return
        message = self.words.plain(str(error))
        self.summary.setText(f"The evaluation failed: {message}")
        self.evaluation_failed.emit(message)

    def shutdown(self) -> None:
        for tasks in (self.tasks, self.gallery.tasks, self.grad_cam.tasks):
            tasks.shutdown()


AVERAGE_TIPS = {"Macro avg": "The mean over the classes: each class counts the same, however few its images.",
                "Weighted avg": "The mean over the classes weighted by their images: big classes count more."}


def _fraction(value: Any) -> str:
    return f"{float(value):.3f}" if is_number(value) else "-"

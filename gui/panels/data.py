"""The Data panel: folder, validation and test sets, image size, batch size; the planned
split, what the scan found, and what training would find wrong (checked in the background
after each scan)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QModelIndex, QPoint, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QImage, QKeySequence, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QProgressBar,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from gui.controllers.split_preview import DataCheckRunner, SplitPreview
from gui.forms import ConfigForm, control, hbox, tooltip
from gui.tasks import BackgroundTasks
from gui.words import Words
from training.api import Config, ConfigError, SplitPlan, default_config, scan_folder
from training.config import BUILTIN_SAMPLE, DataConfig, knob_of
from training.data.check import DataCheck, SmallClass
from training.data.images import ImageLoadError, load_thumbnail
from training.experiments.runs_root import default_runs_root
from training.files import display_path, is_folder

THUMBNAIL_PX = 56
THUMBNAILS_PER_CLASS = 4
THUMBNAIL_CLASSES = 12
# A setting edited with the arrows changes several times a second: the check restarts once
# the edits pause.
RECHECK_DELAY_MS = 400


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


def shown_path(path: str, roots: list[str]) -> str:
    """``path`` relative to the first of ``roots`` that holds it (as people read it)."""
    for root in roots:
        if root and Path(path).is_relative_to(root):
            return display_path(os.path.relpath(path, root))
    return display_path(path)


def small_class_text(small: SmallClass) -> str:
    """One line on a class with few validation images, in the Data tab's words."""
    name = display_path(small.name)
    held = small.validation_images
    if held == 0:
        text = f"'{name}': {small.train_images} training images and no validation image"
    else:
        moves = 100.0 / held
        text = (f"'{name}': {small.train_images} training and {held} validation "
                f"image{'s' if held != 1 else ''}: one image moves its validation accuracy by "
                f"{moves:.0f} points")
    if small.needed is None:
        return text + (f". Put at least {small.minimum} of its images in the "
                       f"{knob_of('data.validation_dir').label}.")
    return text + (f". Add images: about {small.needed} in all give {small.minimum} for validation "
                   f"at this {knob_of('data.validation_split').label}.")


def split_text(plan: SplitPlan) -> str:
    """The planned split in a line: "Planned: 48 training, 12 validation and 15 test images."."""
    parts = [f"{plan.train_count:,} training", f"{plan.validation_count:,} validation"]
    if plan.test_counts:
        parts.append(f"{plan.test_count:,} test")
    text = f"Planned: {', '.join(parts[:-1])} and {parts[-1]} images."
    if plan.test_counts:
        text += " The test images are kept out of training and out of choosing the best epoch."
    return text


def split_tooltip(plan: SplitPlan) -> str:
    """Images per class in each part of the planned split, one class a line."""
    lines = []
    for name in plan.classes:
        line = (f"{display_path(name)}: {plan.train_counts.get(name, 0)} training, "
                f"{plan.validation_counts.get(name, 0)} validation")
        if plan.test_counts:
            line += f", {plan.test_counts.get(name, 0)} test"
        lines.append(line)
    return "\n".join(lines)


class FindingsTree(QTreeWidget):
    """The check's findings: a group per kind with its count, one row per file, class or
    copy. Rows are selectable; Ctrl+C or the context menu copies them with full paths."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dataCheckFindings")
        self.setHeaderHidden(True)
        self.setColumnCount(1)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        # Long reasons wrap rather than lose their end; rows then differ in height.
        self.setWordWrap(True)
        self.setUniformRowHeights(False)
        self.setAlternatingRowColors(True)
        self.setItemDelegate(_WrappingDelegate(self))
        self.setMinimumHeight(80)
        self.setMaximumHeight(240)
        self.setToolTip("What training would find wrong with these images. Select rows and press "
                        "Ctrl+C (or right-click) to copy them with their full paths.")
        copy = QAction("Copy", self)
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        copy.triggered.connect(self.copy_selection)
        self.addAction(copy)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_self_context_menu_requested)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self.scheduleDelayedItemsLayout()  # the rows' heights follow the new width

    def add_group(self, title: str, rows: list[tuple[str, str, list[tuple[str, str]]]]) -> QTreeWidgetItem:
        """A group "title (count)" with ``rows``: (shown text, copied text, children as
        (shown, copied) pairs)."""
        group = QTreeWidgetItem(self, [f"{title} ({len(rows)})"])
        group.setData(0, Qt.ItemDataRole.UserRole, f"{title} ({len(rows)})")
        for text, copied, children in rows:
            item = _row(group, text, copied)
            for child_text, child_copied in children:
                _row(item, child_text, child_copied)
            item.setExpanded(True)
        group.setExpanded(True)
        return group

    def texts(self) -> list[str]:
        """Every row's shown text, depth first (tests, and reading it aloud)."""
        found: list[str] = []

        def walk(item: QTreeWidgetItem) -> None:
            for index in range(item.childCount()):
                child = item.child(index)
                found.append(child.text(0))
                walk(child)
        walk(self.invisibleRootItem())
        return found

    def copy_selection(self) -> None:
        """Copies the selected rows (every row when none is selected), full paths included."""
        items = self.selectedItems() or self._all_items()
        lines = [str(item.data(0, Qt.ItemDataRole.UserRole) or item.text(0)) for item in items]
        QGuiApplication.clipboard().setText("\n".join(lines))

    def _all_items(self) -> list[QTreeWidgetItem]:
        items: list[QTreeWidgetItem] = []

        def walk(item: QTreeWidgetItem) -> None:
            for index in range(item.childCount()):
                items.append(item.child(index))
                walk(item.child(index))
        walk(self.invisibleRootItem())
        return items

    def _on_self_context_menu_requested(self, position: QPoint) -> None:
        menu = QMenu(self)
        menu.addAction("Copy", self.copy_selection)
        menu.addAction("Copy all", lambda: (self.clearSelection(), self.copy_selection()))
        menu.exec(self.viewport().mapToGlobal(position))


class _WrappingDelegate(QStyledItemDelegate):
    """Row heights for wrapped text. Qt's own size hint wraps only for a valid rectangle,
    which a tree does not pass: here it is the width the row has in the view."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802 (Qt override)
        view = self.parent()
        depth, parent = 1, index.parent()
        while parent.isValid():
            depth, parent = depth + 1, parent.parent()
        item = QStyleOptionViewItem(option)
        self.initStyleOption(item, index)
        item.rect = QRect(0, 0, max(80, view.viewport().width() - view.indentation() * depth), 1)
        item.features |= QStyleOptionViewItem.ViewItemFeature.WrapText
        return view.style().sizeFromContents(QStyle.ContentsType.CT_ItemViewItem, item, item.rect.size(), view)


def _row(parent: QTreeWidgetItem, text: str, copied: str) -> QTreeWidgetItem:
    item = QTreeWidgetItem(parent, [text])
    item.setToolTip(0, copied)
    item.setData(0, Qt.ItemDataRole.UserRole, copied)
    return item


class DataPanel(ConfigForm):
    """Data settings plus the scan of the chosen folder."""

    folder_chosen = Signal(str)      # a folder picked by dialog, drop or recent list
    scanned = Signal(object)         # the ScanResult of the current folder
    scan_failed = Signal(str)
    checked = Signal(object)         # the DataCheck of the current folder and settings

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scan: Any = None
        self.check: DataCheck | None = None
        self._check_key: tuple | None = None
        # Each scan's number: what a check belongs to.
        self._scan_number = 0
        # (image size, the last check's decoded files): a new check at that size decodes only
        # the files that changed since (a new split, seed or validation share, a rescan).
        self._decoded: tuple[Any, Any] = (None, None)
        self._decoding_size: Any = None
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)
        # Its own thread: a long check never holds up the scan of the next folder.
        self.checker = DataCheckRunner(self)
        self.checker.progressed.connect(self._on_checker_progressed)
        self.checker.finished.connect(self._on_checker_finished)
        self.checker.failed.connect(self._on_checker_failed)
        # The engine's own split of the scan, planned off the GUI thread.
        self.split_preview = SplitPreview(self)
        self.split_preview.planned.connect(self._on_split_preview_planned)
        self._recheck_timer = QTimer(self)
        self._recheck_timer.setSingleShot(True)
        self._recheck_timer.setInterval(RECHECK_DELAY_MS)
        self._recheck_timer.timeout.connect(self.start_check)
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
        self.runs_dir_edit = QLineEdit(str(default_runs_root()))
        self.runs_dir_edit.setObjectName("runsDir")
        self.runs_dir_edit.setToolTip(tooltip("ui.runs_dir"))
        form.addRow("Runs folder:", self.runs_dir_edit)

    def _build_split_group(self) -> None:
        form = self.group("Validation, test and batches", "dataSplitGroup")
        self.row(form, "data.validation_split")
        self.validation_edit = self._folder_row(form, "data.validation_dir", "browseValidationButton",
                                                self._on_browse_validation_clicked)
        self.row(form, "data.test_split")
        self.test_edit = self._folder_row(form, "data.test_dir", "browseTestButton",
                                          self._on_browse_test_clicked)
        self.split_summary = QLabel()
        self.split_summary.setObjectName("splitSummary")
        self.split_summary.setWordWrap(True)
        self.split_summary.hide()
        form.addRow(self.split_summary)
        for key in ("data.image_size", "data.batch_size", "data.class_weight", "data.seed"):
            self.row(form, key)

    def _folder_row(self, form: QFormLayout, key: str, button_name: str, on_browse: Any) -> QLineEdit:
        edit = control(key)
        browse = QPushButton("Browse…")
        browse.setObjectName(button_name)
        browse.setToolTip(tooltip(key))
        browse.clicked.connect(on_browse)
        # Empty means null; any other text is the path as typed (the config's own value).
        self.row(form, key, edit, field=hbox(edit, browse), get=lambda: edit.text() or None)
        return edit

    def _build_found_group(self) -> None:
        form = self.group("Found in the folder", "dataFoundGroup")
        self.summary = QLabel("No folder scanned yet.")
        self.summary.setObjectName("scanSummary")
        self.summary.setWordWrap(True)
        form.addRow(self.summary)
        self.count_plot = ClassCountPlot()
        form.addRow(self.count_plot)
        self._build_check_rows(form)
        self.problems = QListWidget()
        self.problems.setObjectName("skippedFiles")
        self.problems.setFixedHeight(90)
        self.problems.setToolTip("Files that will not be used, and why. Broken images are skipped; "
                                 "hidden files, system folders and non-images are ignored.")
        self.problems_label = QLabel("Skipped and ignored files:")
        form.addRow(self.problems_label)
        form.addRow(self.problems)
        self._show_skipped_rows(False)
        self.thumbnails = QListWidget()
        self.thumbnails.setObjectName("classThumbnails")
        self.thumbnails.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbnails.setIconSize(QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.thumbnails.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.thumbnails.setMovement(QListWidget.Movement.Static)
        self.thumbnails.setFixedHeight(2 * (THUMBNAIL_PX + 28) + 8)
        self.thumbnails.setToolTip("A few images of each class, as found on disk.")
        form.addRow(self.thumbnails)

    def _build_check_rows(self, form: QFormLayout) -> None:
        """The check's progress, its one-paragraph result and its findings, each list in a group."""
        self.check_progress = QProgressBar()
        self.check_progress.setObjectName("dataCheckProgress")
        self.check_progress.setToolTip("Every image is decoded as training decodes it, and the "
                                       "planned split is checked, while you choose the settings.")
        self.check_progress.hide()
        form.addRow(self.check_progress)
        self.check_summary = QLabel()
        self.check_summary.setObjectName("dataCheckSummary")
        self.check_summary.setWordWrap(True)
        self.check_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.check_summary.hide()
        form.addRow(self.check_summary)
        self.findings = FindingsTree()
        self.findings.hide()
        form.addRow(self.findings)

    def _show_skipped_rows(self, visible: bool) -> None:
        self.problems_label.setVisible(visible)
        self.problems.setVisible(visible)

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
        return Path(self.runs_dir_edit.text().strip() or default_runs_root()).expanduser().absolute()

    def _on_recent_activated(self, index: int) -> None:
        folder = self.recent.itemData(index)
        if folder:
            self.set_folder(folder)

    def _on_browse_validation_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the validation folder", str(Path.home()))
        if folder:
            self.validation_edit.setText(folder)
            self._on_field_changed()

    def _on_browse_test_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the test folder", str(Path.home()))
        if folder:
            self.test_edit.setText(folder)
            self._on_field_changed()

    # -- scanning ---------------------------------------------------------------------------
    def after_load(self, config: Config) -> None:
        self.rescan()

    def on_field_changed(self) -> None:
        folder = self.dir_edit.text().strip()
        if self.scan is None or folder != getattr(self, "_scanned_dir", None):
            self.rescan()
            return
        self._update_split()
        if self._check_settings() != self._check_key:
            self._recheck_timer.start()  # the split or the image size changed

    def rescan(self) -> None:
        folder = self.dir_edit.text().strip()
        self._scanned_dir = folder
        self._clear_check()
        self.split_preview.update(None, None)  # the old folder's split is no longer the plan
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
            self._show_skipped_rows(False)
            self._clear_check()
            self._update_split()
            self.scan_failed.emit(str(error))

    def _show_scan(self, scan: Any) -> None:
        self.scan = scan
        self._scan_number += 1
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
        self._show_skipped_rows(self.problems.count() > 0)
        self.thumbnails.clear()
        pairs = sample_paths(scan, THUMBNAILS_PER_CLASS, THUMBNAIL_CLASSES)
        self.tasks.submit("thumbnails", load_thumbnails, pairs, THUMBNAIL_PX)
        self._update_split()
        self.start_check()
        self.scanned.emit(scan)

    def _show_thumbnails(self, thumbnails: list[tuple[str, str, QImage]]) -> None:
        self.thumbnails.clear()
        for name, path, image in thumbnails:
            item = QListWidgetItem(QPixmap.fromImage(image), _short(display_path(name), 9))
            item.setToolTip(f"{display_path(name)}\n{display_path(path)}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            self.thumbnails.addItem(item)

    # -- the check: what training would find wrong ----------------------------------------------
    def start_check(self) -> None:
        """Checks the scanned images with the current settings in the background (a check
        still running is stopped first); nothing while the settings are invalid."""
        self._recheck_timer.stop()
        data = self._data_config()
        self._check_key = self._check_settings()
        if self.scan is None or data is None:
            self._clear_check()
            return
        self._decoding_size = data.image_size
        known = self._decoded[1] if self._decoded[0] == data.image_size else None
        self.checker.start(self.scan, data, data.image_size, known)
        # The findings belong to the settings that made them: they go until the new ones come.
        self.check = None
        self.check_summary.hide()
        self.findings.hide()
        self.check_progress.setRange(0, 0)  # busy until the first count arrives
        self.check_progress.setFormat(f"Checking {len(self.scan.files):,} images…")
        self.check_progress.show()

    def _data_config(self) -> DataConfig | None:
        """The data settings as this panel holds them; None while they are invalid."""
        try:
            return default_config().with_overrides(self.values()).data
        except (ConfigError, ValueError):
            return None

    def _check_settings(self) -> tuple | None:
        """What the check depends on besides the scan: the split and the decoded size."""
        data = self._data_config()
        if data is None:
            return None
        return (self._scan_number, data.validation_split, (data.validation_dir or "").strip(),
                data.test_split, (data.test_dir or "").strip(), data.seed, data.image_size)

    # -- the planned split ----------------------------------------------------------------------
    def _update_split(self) -> None:
        """Plans the split again (in the background) for the scan and the current settings."""
        self.split_preview.update(self.scan, self._data_config())

    def _on_split_preview_planned(self, plan: SplitPlan | None) -> None:
        # No plan: no scan, invalid settings, or data the engine refuses (the check says why).
        if plan is None:
            self.split_summary.hide()
            return
        self.split_summary.setText(split_text(plan))
        self.split_summary.setToolTip(split_tooltip(plan))
        self.split_summary.show()

    def _clear_check(self) -> None:
        self._recheck_timer.stop()
        self.checker.cancel()
        self.check = None
        self._check_key = None
        self.check_progress.hide()
        self.check_summary.hide()
        self.findings.clear()
        self.findings.hide()

    def _on_checker_progressed(self, stage: str, done: int, total: int) -> None:
        if stage == "decode":
            text = f"Checking {total:,} images… %p %"
        else:
            text = "Looking for the same picture in training and validation… %p %"
        self.check_progress.setRange(0, max(total, 1))
        self.check_progress.setValue(done)
        self.check_progress.setFormat(text)

    def _on_checker_finished(self, check: DataCheck) -> None:
        self.check = check
        self._decoded = (self._decoding_size, check.decoded)
        self.check_progress.hide()
        self.check_summary.setText(self._check_summary_text(check))
        self.check_summary.show()
        self._show_findings(check)
        self.checked.emit(check)

    def _on_checker_failed(self, message: str) -> None:
        self.check_progress.hide()
        self.check_summary.setText(message)
        self.check_summary.show()

    def _check_summary_text(self, check: DataCheck) -> str:
        parts = []
        if check.broken:
            count = len(check.broken)
            parts.append(f"{count} image{'s' if count != 1 else ''} cannot be decoded, so training "
                         f"would skip {'it' if count == 1 else 'them'}")
        if check.small_classes:
            count = len(check.small_classes)
            parts.append(f"{count} class{'es have' if count != 1 else ' has'} few validation images")
        groups = check.duplicate_groups
        if groups:
            roles = [check.held_out_role(path) for group in groups for path, _ in group.copies]
            for role in ("validation", "test"):
                copies = roles.count(role)
                if copies:
                    parts.append(f"{copies} {role} image{'s are copies of training images' if copies != 1 else ' is a copy of a training image'}")
        text = f"Checked {check.files:,} images as training reads them: "
        text += "; ".join(parts) + "." if parts else "no problems found."
        if check.plan_problem:
            words = Words.from_forms([("Data", self)])
            text += f"\n⚠ The split cannot be planned: {words.plain(check.plan_problem)}"
        report = check.duplicates
        if report is not None and not report.near_checked:
            text += (f"\nOnly identical files were compared between training and validation: "
                     f"comparing {report.files:,} images for near copies would take about "
                     f"{report.projected_seconds:.0f} s.")
        return text

    def _show_findings(self, check: DataCheck) -> None:
        self.findings.clear()
        roots = [self.scan.root] if self.scan is not None else []
        validation_dir = (self._data_config() or DataConfig()).validation_dir
        if validation_dir:
            roots.append(os.path.abspath(os.path.expanduser(validation_dir)))
        if check.broken:
            self.findings.add_group("Cannot be decoded: training skips these", [
                (f"{shown_path(path, roots)} - {reason}", f"{display_path(path)}\t{reason}", [])
                for path, reason in check.broken])
        if check.small_classes:
            self.findings.add_group("Classes with few validation images", [
                (small_class_text(small), small_class_text(small), []) for small in check.small_classes])
        groups = check.duplicate_groups
        if groups:
            rows = []
            for group in groups:
                children = [(f"{check.held_out_role(path)}: {shown_path(path, roots)} ({_copy_kind(kind)})",
                             f"{check.held_out_role(path)}\t{display_path(path)}\t{_copy_kind(kind)}")
                            for path, kind in group.copies]
                rows.append((f"training: {shown_path(group.train_file, roots)}",
                             f"training\t{display_path(group.train_file)}", children))
            held_out = " and ".join(sorted({check.held_out_role(p) for g in groups for p, _ in g.copies},
                                           reverse=True))
            self.findings.add_group(f"Same picture in training and {held_out}", rows)
        self.findings.setVisible(self.findings.topLevelItemCount() > 0)


def _copy_kind(kind: str) -> str:
    return "identical file" if kind == "identical" else "nearly identical: re-saved, resized or recoloured"

"""The Runs tab: every run under the runs folder in a table, sortable and filterable; open one
(its curves, its settings, its evaluation), resume it, run it again, or compare several.

The list comes from the engine (``training.api.list_runs``: a few small JSON files a run,
about 1 s for 500 runs), read off the GUI thread by ``BackgroundTasks``; so are an opened
run's curves (its metrics.csv) and what Compare needs. The panel acts on the window only
through its signals (load the settings, resume, run again, show the evaluation): the window
owns those paths, the same as its menus use.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QIcon,
    QPainter,
    QPixmap,
    QResizeEvent,
    QShowEvent,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from gui.plots import COLOURS, TrainingPlot
from gui.runs_compare import RunsCompareDialog, load_compared
from gui.tasks import BackgroundTasks
from gui.words import PLAIN, Words
from training import api
from training.evaluation.reading import evaluation_folders
from training.files import display_path
from training.rundir import BEST_MODEL, CONFIG_FILE

# (status, what the filter says, the colour of its dot): the engine's statuses, in its order.
STATUSES = (("running", "Running", "#1f77b4"), ("damaged", "Damaged", "#8c564b"),
            ("finished", "Finished", "#2ca02c"), ("resumable", "Resumable", "#ff7f0e"),
            ("stopped", "Stopped", "#7f7f7f"), ("failed", "Failed", "#d62728"))
# The figures and what sets a run apart come first: in a narrow window they stay in sight.
COLUMNS = ("Run", "Status", "Val accuracy", "Val loss", "Best epoch", "Changed settings", "Started",
           "Backbone", "Size")
# Two-line headers where the title is wider than its figures: more columns in sight.
HEADERS = {"Val accuracy": "Val\naccuracy", "Val loss": "Val\nloss", "Best epoch": "Best\nepoch"}
COLUMN_TIPS = {
    "Run": "The run's folder under the runs folder (its full path in the tooltip).",
    "Status": "finished, resumable (Resume continues it), stopped, failed, damaged, or running now.",
    "Started": "When the run (or its last resume) started, in local time.",
    "Size": "Image size in pixels.",
    "Best epoch": "The epoch whose model was kept: the lowest validation loss.",
    "Val accuracy": "Validation accuracy at the best epoch.",
    "Val loss": "Validation loss at the best epoch.",
    "Changed settings": "The settings of the run that differ from the defaults.",
}
# Shown in columns of their own, so left out of "Changed settings".
OWN_COLUMN_KEYS = ("model.backbone", "data.image_size")
RUN_COLUMN_PX = 160      # a longer run name is elided (its tooltip holds the path)
CHANGED_COLUMN_PX = 360  # so are longer changed settings (their tooltip lists them all)
SORT_ROLE = Qt.ItemDataRole.UserRole + 1   # what a column sorts by (None: no value, listed last)
RUN_ROLE = Qt.ItemDataRole.UserRole + 2    # the run's folder, on the first column
FILTER_ROLE = Qt.ItemDataRole.UserRole + 3  # every text of the row, lower case, on the first column
_RESUME_COMMAND = re.compile(r";? ?continue (it )?with `[^`]*--resume[^`]*`")


# -- the words of a run ------------------------------------------------------------------------
def local_time(text: str | None) -> str:
    try:
        return datetime.fromisoformat(text or "").astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "-"


def _timestamp(text: str | None) -> float | None:
    try:
        return datetime.fromisoformat(text or "").timestamp()
    except ValueError:
        return None


def metric_value(record: Any, key: str) -> float | None:
    value = record.best_metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def loss_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def status_reason(record: Any, words: Words) -> str:
    """Why the run has its status, in the window's words (the CLI's resume command becomes
    the Resume button)."""
    reason = _RESUME_COMMAND.sub("", record.reason or "").strip()
    if record.status == "resumable":
        reason = (reason + "; " if reason else "") + "Resume continues it"
    return words.plain(reason)


def changed_settings(record: Any, words: Words, *, with_tabs: bool = False,
                     shared: frozenset[str] = frozenset()) -> list[str]:
    """``"Learning rate = 0.003"`` for each setting that differs from the defaults (the data
    folder by its name); the ``shared`` keys (the same in every run listed) last, so what sets
    the run apart is read first."""
    shown = []
    keys = sorted(record.changed, key=lambda key: key in shared)  # stable: the config's order otherwise
    for key in keys:
        value = record.changed[key]
        if key in OWN_COLUMN_KEYS:
            continue
        name = words.control(key) if with_tabs else words.label(key)
        if key == "data.dir" and isinstance(value, str):
            text = Path(value).name or value
        else:
            text = words.value(key, value)
        shown.append(f"{name} = {text}")
    return shown


def has_settings(record: Any) -> bool:
    """Whether the run's config.json was read (a damaged one's settings are unknown)."""
    return bool(record.changed) or (record.status != "damaged"
                                    and (Path(record.run_dir) / CONFIG_FILE).is_file())


def shared_keys(records: list[Any]) -> frozenset[str]:
    """The changed settings whose value is the same in every run (of those with a config)."""
    configured = [record for record in records if record.status != "damaged" and record.changed]
    if len(configured) < 2:
        return frozenset()
    first = configured[0].changed
    return frozenset(key for key, value in first.items()
                     if all(key in other.changed and other.changed[key] == value for other in configured[1:]))


def relative_name(run_dir: str, root: Path) -> str:
    try:
        return Path(run_dir).relative_to(root).as_posix()
    except ValueError:
        return Path(run_dir).name


def status_icon(colour: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QBrush(QColor(colour)))
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QIcon(pixmap)


# -- the table ------------------------------------------------------------------------------------
class RunsFilterModel(QSortFilterProxyModel):
    """Sorts by ``SORT_ROLE`` (numbers as numbers; a run without a value last, in either
    order) and keeps the rows whose text holds the filter text and whose status is chosen."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.text = ""
        self.status = ""

    def set_filter(self, text: str, status: str) -> None:
        self.beginFilterChange()
        self.text, self.status = text.strip().lower(), status
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        model = self.sourceModel()
        if self.status and model.index(row, COLUMNS.index("Status"), parent).data(RUN_ROLE) != self.status:
            return False
        return not self.text or self.text in (model.index(row, 0, parent).data(FILTER_ROLE) or "")

    def lessThan(self, left: QModelIndex | QPersistentModelIndex,  # noqa: N802
                 right: QModelIndex | QPersistentModelIndex) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if (a is None) != (b is None):
            # Qt sorts descending by asking lessThan(right, left): a missing value is the
            # largest ascending and the smallest descending, so it ends last in both.
            return (a is None) == (self.sortOrder() == Qt.SortOrder.DescendingOrder)
        return a is not None and a < b


def _item(text: str, sort: Any = None, *, number: bool = False, tip: str = "") -> QStandardItem:
    item = QStandardItem(text)
    item.setEditable(False)
    item.setData(sort if number else text.lower(), SORT_ROLE)
    if number:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if tip:
        item.setToolTip(tip)
    return item


def row_items(record: Any, root: Path, words: Words, icons: dict[str, QIcon],
              shared: frozenset[str] = frozenset()) -> list[QStandardItem]:
    readable = has_settings(record)
    labels = {status: label for status, label, _ in STATUSES}
    accuracy, loss = metric_value(record, "val_accuracy"), metric_value(record, "val_loss")
    changed = changed_settings(record, words, shared=shared)
    reason = status_reason(record, words)
    status = _item(labels.get(record.status, record.status), tip=reason or labels.get(record.status, ""))
    status.setData(record.status, RUN_ROLE)
    status.setIcon(icons.get(record.status, QIcon()))
    items = [
        _item(relative_name(record.run_dir, root), tip=display_path(record.run_dir)),
        status,
        _item(percent(accuracy), accuracy, number=True),
        _item(loss_text(loss), loss, number=True),
        _item(str(record.best_epoch or "-"), record.best_epoch or None, number=True),
        _item(", ".join(changed) or ("(defaults)" if readable else "-"),
              tip="\n".join(changed_settings(record, words, with_tabs=True, shared=shared))
              or ("The default settings." if readable else "Its settings (config.json) cannot be read.")),
        _item(local_time(record.started_at), _timestamp(record.started_at), number=True),
        _item(record.backbone or "-"),
        _item(str(record.image_size or "-"), record.image_size, number=True),
    ]
    items[1].setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    items[0].setData(record.run_dir, RUN_ROLE)
    items[0].setData("\n".join([record.run_dir, reason, *(item.text() for item in items)]).lower(), FILTER_ROLE)
    return items


# -- the panel -----------------------------------------------------------------------------------
class RunsPanel(QWidget):
    """Every run under the runs folder; ``root()`` says which folder (the Data tab's field)."""

    load_settings_requested = Signal(str)  # a run folder whose config.json the settings take
    resume_requested = Signal(str)
    run_again_requested = Signal(str)
    results_requested = Signal(str)        # show the run's evaluation in the Results tab
    failed = Signal(str, str)              # title, message: something the user asked could not be done
    listed = Signal(int)                   # a listing arrived (how many runs)
    opened = Signal(str)                   # an opened run's curves are shown

    def __init__(self, root: Callable[[], Path], *, words: Words | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runsPanel")
        self.root = root
        self.words = words or PLAIN
        self.records: dict[str, Any] = {}   # run folder -> RunRecord, as last listed
        self.shared: frozenset[str] = frozenset()  # changed settings the same in every listed run
        self.listed_root: Path | None = None
        self.opened_run = ""
        self.running = False                # the window runs a job: no Resume, no Run again
        self.compare_dialog: RunsCompareDialog | None = None
        self._stale = True                  # list again when next shown
        self._icons = {status: status_icon(colour) for status, _, colour in STATUSES}
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)
        self._build()
        self._update_buttons()

    # -- building ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("runsFilter")
        self.filter_edit.setPlaceholderText("Filter: any text of the table")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setToolTip("Shows only the runs whose row holds this text (a backbone, a "
                                    "setting such as “Learning rate = 0.003”, a folder name…).")
        self.filter_edit.textChanged.connect(self._on_filter_changed)
        self.status_box = QComboBox()
        self.status_box.setObjectName("runsStatusFilter")
        self.status_box.addItem("All statuses", "")
        for status, label, _ in STATUSES:
            self.status_box.addItem(self._icons[status], label, status)
        self.status_box.setToolTip("Shows only the runs with this status.")
        self.status_box.currentIndexChanged.connect(self._on_filter_changed)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("runsRefreshButton")
        self.refresh_button.setToolTip("List the runs folder again (the Data tab's Runs folder).")
        self.refresh_button.clicked.connect(self.refresh)
        filters = QHBoxLayout()
        filters.setContentsMargins(0, 0, 0, 0)
        filters.addWidget(self.filter_edit, 1)
        filters.addWidget(self.status_box)
        filters.addWidget(self.refresh_button)

        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels([HEADERS.get(name, name) for name in COLUMNS])
        for column, name in enumerate(COLUMNS):
            self.model.horizontalHeaderItem(column).setToolTip(COLUMN_TIPS.get(name, ""))
        self.proxy = RunsFilterModel(self)
        self.proxy.setSourceModel(self.model)
        self.view = QTableView()
        self.view.setObjectName("runsTable")
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(COLUMNS.index("Started"), Qt.SortOrder.DescendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(self.view.fontMetrics().height() + 8)
        self.view.setMinimumSize(40, 40)  # scrolls: never what keeps a small window wide
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setHighlightSections(False)
        self.view.doubleClicked.connect(self._on_view_double_clicked)
        self.view.selectionModel().selectionChanged.connect(self._on_view_selection_changed)

        self.open_button = self._button("Open", "runsOpenButton", self.open_current,
                                        "Show the selected run's curves and summary below (or double-click it).")
        self.results_button = self._button("Evaluation", "runsResultsButton", self._on_results_clicked,
                                           "Show how the run's best model does in the Results tab: accuracy, "
                                           "confusion matrix, its worst mistakes.")
        self.load_button = self._button("Load settings", "runsLoadSettingsButton", self._on_load_clicked,
                                        "Put the run's settings into the settings tabs, to change them "
                                        "and start a new run.")
        self.resume_button = self._button("Resume", "runsResumeButton", self._on_resume_clicked,
                                          "Continue the stopped run from its last completed epoch, in its "
                                          "folder and with its own settings.")
        self.again_button = self._button("Run again", "runsRunAgainButton", self._on_again_clicked,
                                         "Train a new run with exactly this run's settings (they become "
                                         "the window's settings).")
        self.compare_button = self._button("Compare", "runsCompareButton", self.compare,
                                           "Select two or more runs (Ctrl- or Shift-click) to overlay their "
                                           "validation curves and see the settings that differ.")
        self.buttons = (self.open_button, self.results_button, self.compare_button, self.load_button,
                        self.resume_button, self.again_button)
        button_box = QWidget()
        # Its width never holds the window wide: where one row does not fit, two rows do
        # (``resizeEvent``), and an explicit minimum keeps the one-row width out of the sums.
        button_box.setMinimumWidth(1)
        buttons = QGridLayout(button_box)
        buttons.setContentsMargins(0, 0, 0, 0)
        self.button_grid = buttons
        self._button_columns = 0
        self._arrange_buttons(len(self.buttons))
        self.message = QLabel()
        self.message.setObjectName("runsMessage")
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        table_page = QWidget()
        table_layout = QVBoxLayout(table_page)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addLayout(filters)
        table_layout.addWidget(self.view, 1)
        table_layout.addWidget(button_box)
        table_layout.addWidget(self.message)

        self.detail = QWidget()
        self.detail.setObjectName("runDetail")
        self.detail_title = QLabel("Open a run (double-click it) to see its curves here.")
        self.detail_title.setObjectName("runDetailTitle")
        self.detail_title.setWordWrap(True)
        self.detail_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.loss_plot = TrainingPlot("Loss", "loss", "runLossPlot")
        self.accuracy_plot = TrainingPlot("Accuracy", "accuracy", "runAccuracyPlot")
        self.loss_plot.add_series("loss", "train loss", COLOURS["train"], symbol="o")
        self.loss_plot.add_series("val_loss", "val loss", COLOURS["val"], symbol="o")
        self.accuracy_plot.add_series("accuracy", "train accuracy", COLOURS["train"], symbol="o")
        self.accuracy_plot.add_series("val_accuracy", "val accuracy", COLOURS["val"], symbol="o")
        self.accuracy_plot.setYRange(0, 1)
        plots = QHBoxLayout()
        plots.setContentsMargins(0, 0, 0, 0)
        for plot in self.plots:
            plot.setMinimumSize(120, 150)
            plots.addWidget(plot)
        detail_layout = QVBoxLayout(self.detail)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addWidget(self.detail_title)
        detail_layout.addLayout(plots, 1)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("runsSplitter")
        splitter.addWidget(table_page)
        splitter.addWidget(self.detail)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    def _arrange_buttons(self, columns: int) -> None:
        """The buttons in one row, or in rows of ``columns`` where one row would not fit."""
        if columns == self._button_columns:
            return
        self._button_columns = columns
        for button in self.buttons:
            self.button_grid.removeWidget(button)
        for index, button in enumerate(self.buttons):
            self.button_grid.addWidget(button, index // columns, index % columns)
        for column in range(len(self.buttons) + 1):
            self.button_grid.setColumnStretch(column, 1 if column == columns else 0)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        spacing = self.button_grid.horizontalSpacing() if self.button_grid.horizontalSpacing() >= 0 else 6
        one_row = sum(button.sizeHint().width() + spacing for button in self.buttons)
        self._arrange_buttons(len(self.buttons) if self.width() >= one_row else len(self.buttons) // 2)

    def _button(self, text: str, name: str, slot: Callable[[], Any], tip: str) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    @property
    def plots(self) -> tuple[TrainingPlot, TrainingPlot]:
        return self.loss_plot, self.accuracy_plot

    # -- listing -------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Lists the runs folder again, off the GUI thread (``listed`` says when it is done)."""
        self._stale = False
        root = self.root()
        self.message.setText(f"Listing the runs in {display_path(root)}…")
        self.tasks.submit("list", _listing, root)

    def mark_stale(self) -> None:
        """The runs folder changed: list it now when shown, else when next shown."""
        self._stale = True
        if self.isVisible():
            self.refresh()

    def on_run_finished(self, outcome: Any) -> None:
        """A job of the window ended: after a run (not a tool), the table lists it as it ended."""
        if getattr(outcome, "run_dir", ""):
            self.refresh()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._stale:
            self.refresh()

    def _show_runs(self, root: Path, records: list[Any]) -> None:
        selected = set(self.selected_runs())
        current = self.current_run()
        sorting = (self.view.horizontalHeader().sortIndicatorSection(),
                   self.view.horizontalHeader().sortIndicatorOrder())
        self.view.setSortingEnabled(False)  # one sort after the rows, not one per row
        self.model.removeRows(0, self.model.rowCount())
        self.records = {record.run_dir: record for record in records}
        self.listed_root = root
        self.shared = shared_keys(records)
        for record in records:
            self.model.appendRow(row_items(record, root, self.words, self._icons, self.shared))
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(*sorting)
        self._fit_columns()
        self._select(selected, current)
        self._update_message()
        self._update_buttons()
        self.listed.emit(len(records))

    def _fit_columns(self) -> None:
        """Every column as wide as its content, the run's name and the changed settings capped:
        they elide (their tooltips hold all) and the columns after them stay in reach."""
        self.view.resizeColumnsToContents()
        header = self.view.horizontalHeader()
        header.resizeSection(0, min(header.sectionSize(0), RUN_COLUMN_PX))
        changed = COLUMNS.index("Changed settings")
        header.resizeSection(changed, min(header.sectionSize(changed), CHANGED_COLUMN_PX))

    def _select(self, run_dirs: set[str], current: str) -> None:
        selection = self.view.selectionModel()
        for row in range(self.proxy.rowCount()):
            run_dir = self.proxy.index(row, 0).data(RUN_ROLE)
            if run_dir in run_dirs:
                selection.select(self.proxy.index(row, 0), selection.SelectionFlag.Select
                                 | selection.SelectionFlag.Rows)
            if run_dir == current:
                selection.setCurrentIndex(self.proxy.index(row, 0), selection.SelectionFlag.NoUpdate)

    def _update_message(self) -> None:
        root = display_path(self.listed_root or self.root())
        total, shown = self.model.rowCount(), self.proxy.rowCount()
        if not total:
            self.message.setText(f"No runs in {root} yet: each run started here (Run > Start) or "
                                 "from the command line is kept there.")
        else:
            hidden = f", {shown} shown" if shown != total else ""
            self.message.setText(f"{total} run{'s' if total != 1 else ''} in {root}{hidden}.")
        self.message.setToolTip("The runs folder is set in the Data tab (Runs folder).")

    def _on_filter_changed(self, *_: Any) -> None:
        self.proxy.set_filter(self.filter_edit.text(), self.status_box.currentData() or "")
        self._update_message()
        self._update_buttons()

    # -- the selection -----------------------------------------------------------------------------
    def visible_runs(self) -> list[str]:
        """The listed runs' folders, in the order shown."""
        return [self.proxy.index(row, 0).data(RUN_ROLE) for row in range(self.proxy.rowCount())]

    def selected_runs(self) -> list[str]:
        """The selected runs' folders, in the order shown."""
        rows = sorted(index.row() for index in self.view.selectionModel().selectedRows(0))
        return [self.proxy.index(row, 0).data(RUN_ROLE) for row in rows]

    def current_run(self) -> str:
        """The run the buttons act on: the current row when selected, else the first selected."""
        selected = self.selected_runs()
        index = self.view.currentIndex()
        run_dir = self.proxy.index(index.row(), 0).data(RUN_ROLE) if index.isValid() else None
        return run_dir if run_dir in selected else (selected[0] if selected else "")

    def select_runs(self, run_dirs: list[str]) -> None:
        """Selects these runs (those shown), the first one current."""
        self.view.clearSelection()
        self._select(set(run_dirs), run_dirs[0] if run_dirs else "")

    def set_running(self, running: bool) -> None:
        """While the window runs a job, nothing else may start."""
        self.running = running
        self._update_buttons()

    def _update_buttons(self) -> None:
        selected = self.selected_runs()
        record = self.records.get(self.current_run())
        one = len(selected) == 1 and record is not None
        usable = one and record.status != "damaged" and has_settings(record)
        self.open_button.setEnabled(record is not None)
        self.results_button.setEnabled(one and (bool(evaluation_folders(record.run_dir))
                                                or (Path(record.run_dir) / BEST_MODEL).is_file()))
        self.load_button.setEnabled(usable)
        self.resume_button.setEnabled(one and record.status == "resumable" and not self.running)
        self.again_button.setEnabled(usable and not self.running)
        self.compare_button.setEnabled(len(selected) >= 2)

    def _on_view_selection_changed(self, *_: Any) -> None:
        self._update_buttons()

    def _on_view_double_clicked(self, index: QModelIndex) -> None:
        run_dir = self.proxy.index(index.row(), 0).data(RUN_ROLE)
        if run_dir:
            self.open_run(run_dir)

    # -- one run -------------------------------------------------------------------------------------
    def open_current(self) -> None:
        run_dir = self.current_run()
        if run_dir:
            self.open_run(run_dir)

    def open_run(self, run_dir: str) -> None:
        """Shows the run's summary now and its curves once its metrics.csv is read."""
        self.opened_run = run_dir
        record = self.records.get(run_dir) or api.read_run(run_dir)
        self.detail_title.setText(self._summary(run_dir, record))
        self.detail_title.setToolTip(display_path(run_dir))
        for plot in self.plots:
            plot.clear_run()
        self.tasks.submit("metrics", api.read_metrics, run_dir)

    def _summary(self, run_dir: str, record: Any) -> str:
        name = Path(run_dir).name
        if record is None:
            return f"{name}: not a run folder any more."
        labels = {status: label for status, label, _ in STATUSES}
        reason = status_reason(record, self.words)
        lines = [f"<b>{_html(name)}</b> — {labels.get(record.status, record.status).lower()}"
                 + (f": {_html(reason)}" if reason else "")]
        if record.best_epoch:
            lines.append(f"Best epoch {record.best_epoch}: validation accuracy "
                         f"{percent(metric_value(record, 'val_accuracy'))}, validation loss "
                         f"{loss_text(metric_value(record, 'val_loss'))}.")
        facts = [local_time(record.started_at), record.backbone or "", f"{record.image_size} px"
                 if record.image_size else ""]
        lines.append(" · ".join(fact for fact in facts if fact and fact != "-"))
        changed = changed_settings(record, self.words, shared=self.shared)
        lines.append("Changed settings: " + (_html(", ".join(changed)) if changed else "none (the defaults)"))
        return "<br>".join(lines)

    def _show_metrics(self, rows: list[dict[str, Any]]) -> None:
        epochs = [float(row["epoch"]) for row in rows]
        for plot in self.plots:
            for key, series in plot.series.items():
                series.set(epochs, [row.get(key, math.nan) for row in rows])
            plot.redraw()
            plot.enableAutoRange()
        self.accuracy_plot.setYRange(0, 1)
        record = self.records.get(self.opened_run)
        if record is not None and record.best_epoch:
            for plot in self.plots:
                plot.add_marker(record.best_epoch, "best")
        if not rows:
            self.detail_title.setText(self.detail_title.text() + "<br>This run recorded no epoch.")
        self.opened.emit(self.opened_run)

    def _on_results_clicked(self) -> None:
        if self.current_run():
            self.results_requested.emit(self.current_run())

    def _on_load_clicked(self) -> None:
        if self.current_run():
            self.load_settings_requested.emit(self.current_run())

    def _on_resume_clicked(self) -> None:
        if self.current_run():
            self.resume_requested.emit(self.current_run())

    def _on_again_clicked(self) -> None:
        if self.current_run():
            self.run_again_requested.emit(self.current_run())

    # -- several runs --------------------------------------------------------------------------------
    def compare(self) -> bool:
        """Reads the selected runs (off the GUI thread), then opens the Compare dialog."""
        runs = self.selected_runs()
        if len(runs) < 2:
            self.failed.emit("Cannot compare", "Select two or more runs to compare "
                                               "(Ctrl-click or Shift-click in the table).")
            return False
        damaged = [Path(run).name for run in runs if getattr(self.records.get(run), "status", "") == "damaged"]
        if damaged:
            self.failed.emit("Cannot compare", f"{', '.join(damaged)} cannot be read (damaged): leave "
                                               "it out of the selection. Its status tooltip says why.")
            return False
        self.message.setText(f"Reading {len(runs)} runs to compare…")
        self.tasks.submit("compare", load_compared, runs)
        return True

    def _show_comparison(self, runs: list[Any]) -> None:
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        self.compare_dialog = RunsCompareDialog(runs, words=self.words, parent=self)
        self.compare_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.compare_dialog.destroyed.connect(self._on_compare_dialog_destroyed)
        self.compare_dialog.show()

    def _on_compare_dialog_destroyed(self) -> None:
        self.compare_dialog = None

    # -- background results --------------------------------------------------------------------------
    def _on_tasks_done(self, name: str, result: Any) -> None:
        if name == "list":
            self._show_runs(*result)
        elif name == "metrics":
            self._show_metrics(result)
        elif name == "compare":
            self._update_message()
            self._show_comparison(result)

    def _on_tasks_failed(self, name: str, error: Exception) -> None:
        text = self.words.plain(str(error))
        if name == "list":
            self.message.setText(text)
            self.listed.emit(-1)
        elif name == "metrics":
            self.detail_title.setText(self.detail_title.text() + "<br>" + _html(text))
        else:
            self._update_message()
            self.failed.emit("Cannot compare", text)

    def shutdown(self) -> None:
        self.tasks.shutdown()
        if self.compare_dialog is not None:
            self.compare_dialog.close()


def _listing(root: Path) -> tuple[Path, list[Any]]:
    return root, api.list_runs(root)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

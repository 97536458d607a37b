"""The run's hints, its log and the finished-run summary."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QFont
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.export_dialog import ExportDialog
from gui.words import PLAIN, Words
from training.api import export_best_model
from training.events import DataReport, Failed, Finished, Hint, Log

SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


def describe_fix(fix: dict, words: Words | None = None) -> str:
    """A suggested change in the window's words: "Class weights (Data tab) = balanced"."""
    return (words or PLAIN).fix(fix)


def describe_fix_for_log(fix: dict) -> str:
    """The same change as the config file and the CLI spell it: "data.class_weight = balanced"."""
    return ", ".join(f"{key} = {value}" for key, value in fix.items())


class HintsWidget(QListWidget):
    """Engine hints as they arrive, errors first, then warnings, then information.

    A hint's suggested fixes (dicts of dotted config keys to values) are applied from its
    context menu, by double-click (the first fix, to the next run) or by the buttons of
    ``HintsPanel``.
    """

    fix_requested = Signal(dict)       # apply to the settings of the next run
    restart_requested = Signal(dict)   # apply, stop the current run if any, start again

    def __init__(self, parent: QWidget | None = None, *, words: Words | None = None) -> None:
        super().__init__(parent)
        self.words = words or PLAIN  # hints name controls and buttons, not keys and commands
        self.setObjectName("hintsList")
        self.setWordWrap(True)
        self.setAlternatingRowColors(True)
        self.setToolTip("Advice from the engine about this run and its data. A hint that suggests "
                        "a change can apply it: right-click it, use the buttons below, or "
                        "double-click it (applies to the next run).")
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_self_custom_context_menu_requested)
        self.itemDoubleClicked.connect(self._on_self_item_double_clicked)

    def fixes(self, item: QListWidgetItem | None = None) -> list[dict]:
        """The fixes of ``item`` (default: the current hint)."""
        item = item if item is not None else self.currentItem()
        return list(item.data(Qt.ItemDataRole.UserRole) or []) if item is not None else []

    def context_menu(self, item: QListWidgetItem) -> QMenu:
        """One "Apply to next run" and one "Apply and restart" entry per fix."""
        menu = QMenu(self)
        menu.setObjectName("hintMenu")
        for fix in self.fixes(item):
            text = describe_fix(fix, self.words)
            apply = menu.addAction(f"Apply to next run: {text}")
            apply.triggered.connect(lambda _=False, f=fix: self.fix_requested.emit(f))
            restart = menu.addAction(f"Apply and restart: {text}")
            restart.triggered.connect(lambda _=False, f=fix: self.restart_requested.emit(f))
        if menu.isEmpty():
            menu.addAction("This hint suggests no change to the settings").setEnabled(False)
        return menu

    def _on_self_custom_context_menu_requested(self, position: QPoint) -> None:
        item = self.itemAt(position)
        if item is not None:
            self.context_menu(item).popup(self.viewport().mapToGlobal(position))

    def add_hint(self, hint: Hint) -> None:
        icons = {"error": QStyle.StandardPixmap.SP_MessageBoxCritical,
                 "warning": QStyle.StandardPixmap.SP_MessageBoxWarning}
        icon = self.style().standardIcon(icons.get(hint.severity, QStyle.StandardPixmap.SP_MessageBoxInformation))
        item = QListWidgetItem(icon, f"{self.words.plain(hint.title)}\n{self.words.plain(hint.message)}")
        fixes = [fix for fix in hint.fixes if isinstance(fix, dict) and fix]
        item.setData(Qt.ItemDataRole.UserRole, fixes)
        item.setData(Qt.ItemDataRole.UserRole + 1, hint.severity)
        if fixes:
            item.setToolTip("Suggested change (right-click for the choices, double-click to apply "
                            "to the next run):\n" + "\n".join(describe_fix(fix, self.words) for fix in fixes))
        rank = SEVERITY_RANK.get(hint.severity, 3)
        row = 0
        while row < self.count() and SEVERITY_RANK.get(self.item(row).data(Qt.ItemDataRole.UserRole + 1), 3) <= rank:
            row += 1
        self.insertItem(row, item)

    def _on_self_item_double_clicked(self, item: QListWidgetItem) -> None:
        fixes = item.data(Qt.ItemDataRole.UserRole)
        if fixes:
            self.fix_requested.emit(fixes[0])


class HintsPanel(QWidget):
    """The hints list with buttons: apply the selected hint's fix (to the next run, or at
    once with a restart) and the sanity tools, whose results land in this list."""

    def __init__(self, tool_actions: list[QAction], parent: QWidget | None = None, *,
                 words: Words | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("hintsPanel")
        self.list = HintsWidget(words=words)
        self.apply_button = QPushButton("Apply to next run")
        self.apply_button.setObjectName("applyHintButton")
        self.restart_button = QPushButton("Apply and restart")
        self.restart_button.setObjectName("applyRestartHintButton")
        self.apply_button.clicked.connect(lambda: self._emit_first(self.list.fix_requested))
        self.restart_button.clicked.connect(lambda: self._emit_first(self.list.restart_requested))
        self.list.currentItemChanged.connect(self._update_buttons)
        self.list.model().rowsInserted.connect(self._update_buttons)
        self.list.model().rowsRemoved.connect(self._update_buttons)
        # The buttons stand in a column beside the list, so a narrow window (1024 px) never
        # cuts them: the fixes on top, the sanity tools below.
        buttons = QVBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.restart_button)
        buttons.addSpacing(8)
        for action in tool_actions:
            button = QToolButton()
            button.setDefaultAction(action)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    def _emit_first(self, signal: Signal) -> None:
        fixes = self.list.fixes()
        if fixes:
            signal.emit(fixes[0])

    def _update_buttons(self, *_: object) -> None:
        fixes = self.list.fixes()
        self.apply_button.setEnabled(bool(fixes))
        self.restart_button.setEnabled(bool(fixes))
        change = f": {describe_fix(fixes[0], self.list.words)}" if fixes else ""
        self.apply_button.setToolTip(f"Change the settings as the selected hint suggests{change}; "
                                     "the current run (if any) goes on unchanged.")
        self.restart_button.setToolTip(f"Change the settings as the selected hint suggests{change}, "
                                       "stop the current run (keeping its best model) and start a new one.")


class LogWidget(QPlainTextEdit):
    """Engine messages and the data report, with timestamps."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("logView")
        self.setReadOnly(True)
        self.setMaximumBlockCount(20000)
        self.setFont(QFont("monospace", 9))
        self.setToolTip("Messages from the engine and the report about the data of each run.")

    def add(self, message: str, level: str = "info") -> None:
        prefix = "" if level == "info" else f"[{level.upper()}] "
        self.appendPlainText(f"{time.strftime('%H:%M:%S')}  {prefix}{message}")

    def add_data_report(self, report: DataReport) -> None:
        self.add(f"Data: {report.root} - {len(report.classes)} classes")
        for name in report.classes:
            self.add(f"  {name}: {report.train_counts.get(name, 0)} training, "
                     f"{report.validation_counts.get(name, 0)} validation images")
        for entry in report.skipped:
            self.add(f"  skipped {entry.get('path')}: {entry.get('reason')}", "warning")
        for entry in report.ignored:
            self.add(f"  ignored {entry.get('path')}: {entry.get('reason')}")
        for warning in report.warnings:
            self.add(str(warning), "warning")

    def handle_event(self, event: object) -> None:
        if isinstance(event, Log):
            self.add(event.message, event.level)
        elif isinstance(event, DataReport):
            self.add_data_report(event)
        elif isinstance(event, Failed):
            self.add(event.message, "error")
            if event.details:
                self.appendPlainText(event.details)


def export_model(run_dir: str | Path, target: str | Path) -> Path:
    """Copies the run's best model to ``target`` atomically (the run folder's owner does it).

    Raises:
        FileNotFoundError: the run folder holds no saved model.
        OSError: ``target`` cannot be written.
    """
    return export_best_model(run_dir, target)


class FinishedRunPanel(QWidget):
    """Best epoch and validation accuracy of the last run; open its folder; export."""

    def __init__(self, parent: QWidget | None = None, *, words: Words | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("finishedRunPanel")
        self.words = words or PLAIN
        self.run_dir = ""
        self.outcome = QLabel("No run has finished yet.")
        self.outcome.setObjectName("runOutcome")
        self.outcome.setWordWrap(True)
        self.best_epoch = QLabel("-")
        self.best_epoch.setObjectName("bestEpoch")
        self.val_accuracy = QLabel("-")
        self.val_accuracy.setObjectName("bestValAccuracy")
        self.val_loss = QLabel("-")
        self.test_accuracy = QLabel("-")
        self.test_accuracy.setObjectName("testAccuracy")
        self.test_accuracy.setToolTip("The best model on the held-out test images (Data tab: Test share "
                                      "or Test folder): never trained on, never used to choose the "
                                      "epoch, so the honest estimate. The Results tab has the details.")
        self.folder = QLabel("-")
        self.folder.setObjectName("runFolder")
        self.folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open run folder")
        self.open_button.setObjectName("openRunFolderButton")
        self.open_button.setToolTip("Open the folder with the run's model, metrics, config and log.")
        self.export_button = QPushButton("Export .keras…")
        self.export_button.setObjectName("exportModelButton")
        self.export_button.setToolTip("Save a copy of the best model as a .keras file "
                                      "(load it with keras.saving.load_model).")
        self.deploy_button = QPushButton("Export for deployment…")
        self.deploy_button.setObjectName("exportDeployButton")
        self.deploy_button.setToolTip("Keras, SavedModel, TFLite (float16, int8) or ONNX, each "
                                      "checked against the Keras model by its own runtime.")
        self.export_dialog = None
        for button in (self.open_button, self.export_button, self.deploy_button):
            button.setEnabled(False)
        self.open_button.clicked.connect(self._on_open_button_clicked)
        self.export_button.clicked.connect(self._on_export_button_clicked)
        self.deploy_button.clicked.connect(self.open_export_dialog)
        self._build_layout()

    def _build_layout(self) -> None:
        form = QFormLayout()
        form.addRow("Best epoch:", self.best_epoch)
        validation = QLabel("Validation accuracy:")
        validation.setToolTip("Measured on the validation images, which chose the best epoch: "
                              "a little optimistic. A test set gives the honest figure.")
        form.addRow(validation, self.val_accuracy)
        form.addRow("Validation loss:", self.val_loss)
        form.addRow("Test accuracy (held out):", self.test_accuracy)
        form.addRow("Run folder:", self.folder)
        # Two rows, so an 800 px window still shows every button whole.
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)
        deploy = QHBoxLayout()
        deploy.addWidget(self.deploy_button)
        deploy.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.outcome)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(deploy)
        layout.addStretch(1)

    def show_running(self, what: str = "Running…") -> None:
        """A run has started: nothing of the previous run's outcome stays."""
        self.run_dir = ""
        self.outcome.setText(what)
        for label in (self.best_epoch, self.val_accuracy, self.val_loss, self.test_accuracy, self.folder):
            label.setText("-")
        self.open_button.setEnabled(False)
        self.export_button.setEnabled(False)
        self.deploy_button.setEnabled(False)

    def show_result(self, event: Finished | Failed) -> None:
        self.run_dir = event.run_dir
        self.folder.setText(event.run_dir or "-")
        has_folder = bool(event.run_dir) and Path(event.run_dir).is_dir()
        self.open_button.setEnabled(has_folder)
        if isinstance(event, Failed):
            self.outcome.setText(f"The run failed: {self.words.plain(event.message)}")
            self.export_button.setEnabled(False)
            self.deploy_button.setEnabled(False)
            for label in (self.best_epoch, self.val_accuracy, self.val_loss, self.test_accuracy):
                label.setText("-")
            return
        reasons = {"completed": "The run completed.", "early_stopping": "Early stopping ended the run.",
                   "stopped": "You stopped the run; the best model so far was kept.",
                   "diverged": "The run stopped because the loss became NaN or infinite."}
        self.outcome.setText(f"{reasons.get(event.stop_reason, event.stop_reason)} "
                             f"({_duration(event.seconds)})")
        metrics = event.best_metrics or {}
        self.best_epoch.setText(str(event.best_epoch) if event.best_epoch else "none completed")
        self.val_accuracy.setText(_format(metrics.get("val_accuracy"), percent=True)
                                  + " (chose the best epoch)" * bool(metrics.get("val_accuracy") is not None))
        self.val_loss.setText(_format(metrics.get("val_loss")))
        test = (getattr(event, "evaluation", None) or {}).get("test")
        self.test_accuracy.setText(
            f"{_format(test.get('accuracy'), percent=True)} on {test.get('images')} images" if test
            else "no test set (Data tab: Test share)")
        self.export_button.setEnabled(has_folder and event.best_epoch > 0)
        self.deploy_button.setEnabled(has_folder and event.best_epoch > 0)

    def open_export_dialog(self) -> ExportDialog:
        """The Export dialog for this run (non-modal; one at a time)."""
        if self.export_dialog is not None:
            self.export_dialog.close()
        self.export_dialog = open_export_dialog(self.run_dir, self.window())
        return self.export_dialog

    def _on_open_button_clicked(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.run_dir))

    def _on_export_button_clicked(self) -> None:
        suggested = str(Path.home() / f"{Path(self.run_dir).name}.keras")
        target, _ = QFileDialog.getSaveFileName(self, "Export model", suggested, "Keras model (*.keras)")
        if not target:
            return
        if not target.endswith(".keras"):
            target += ".keras"
        try:
            export_model(self.run_dir, target)
        except OSError as error:
            QMessageBox.critical(self, "Export failed", f"Could not export the model: {error}")
            return
        self.window().statusBar().showMessage(f"Model exported to {target}", 8000)


def open_export_dialog(run_dir: str | Path, parent: QWidget) -> ExportDialog:
    dialog = ExportDialog(run_dir, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog


def _format(value: object, percent: bool = False) -> str:
    if value is None:
        return "-"
    value = float(value)
    return f"{value:.1%}" if percent else f"{value:.4f}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds or 0))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"

"""The Export dialog: a run's best model in the formats people deploy, each verified.

Each chosen export runs in an engine process of its own (``engine_calls.export_run``), one
after the other, so the window never waits and the settings' helper process stays free. The
engine writes each export folder, reloads it with the format's own runtime and compares it
with the Keras model on the run's validation images; the table shows those figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui import engine_calls
from gui.tasks import BackgroundTasks
from training.export.options import EXPORT_DIR, FORMATS

# What the dialog offers: (format, quantization, label). Quantized exports only where the
# format takes them (``FormatSpec.quantizations``).
CHOICES = tuple(
    (name, quantize, _label)
    for name, spec in FORMATS.items()
    for quantize in spec.quantizations
    for _label in ({"keras": "Keras (.keras)", "saved_model": "TensorFlow SavedModel",
                    "tflite": "TFLite / LiteRT", "onnx": "ONNX", "openvino": "OpenVINO"}.get(name, name)
                   + ("" if quantize == "none" else f", {quantize}"),)
)
DEFAULT_CHOICES = {("keras", "none"), ("tflite", "none"), ("onnx", "none")}
COLUMNS = ("Format", "Result", "Size", "Top-1 agreement", "Largest difference", "Accuracy", "ms / image")


class ExportDialog(QDialog):
    """Non-modal; ``finished_all`` carries the list of result dicts when every export ended."""

    finished_all = Signal(list)

    def __init__(self, run_dir: str | Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export the model")
        self.run_dir = Path(run_dir)
        self.results: list[dict[str, Any]] = []
        self._queue: list[tuple[str, str, str]] = []
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)
        self.boxes: dict[tuple[str, str], QCheckBox] = {}
        self._build()

    def _build(self) -> None:
        intro = QLabel(f"Exports the best model of {self.run_dir.name} into {EXPORT_DIR}/ in its run "
                       "folder. Each export is reloaded with its own runtime and checked against the "
                       "Keras model on the run's validation images.")
        intro.setWordWrap(True)
        formats = QGroupBox("Formats")
        column = QVBoxLayout(formats)
        for name, quantize, label in CHOICES:
            box = QCheckBox(label)
            box.setObjectName(f"export_{name}_{quantize}")
            box.setChecked((name, quantize) in DEFAULT_CHOICES)
            box.setToolTip(f"Runs with: {FORMATS[name].runtime}")
            column.addWidget(box)
            self.boxes[(name, quantize)] = box
        self.progress = QProgressBar()
        self.progress.setObjectName("exportProgress")
        self.progress.setFormat("%v of %m")
        self.progress.hide()
        self.status = QLabel("")
        self.status.setObjectName("exportStatus")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("exportTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.export_button = QPushButton("Export")
        self.export_button.setObjectName("startExportButton")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.open_button = QPushButton("Open folder")
        self.open_button.setObjectName("openExportFolderButton")
        self.open_button.setEnabled((self.run_dir / EXPORT_DIR).is_dir())
        self.open_button.clicked.connect(self._on_open_button_clicked)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.export_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.open_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        for widget in (intro, formats, self.progress, self.status, self.table):
            layout.addWidget(widget)
        layout.addWidget(buttons)
        self.resize(760, 520)

    # -- running --------------------------------------------------------------------------
    def chosen(self) -> list[tuple[str, str, str]]:
        return [(name, quantize, label) for name, quantize, label in CHOICES
                if self.boxes[(name, quantize)].isChecked()]

    def is_running(self) -> bool:
        return bool(self._queue) or not self.export_button.isEnabled()

    def start(self) -> bool:
        """Exports every chosen format, one after the other, off the GUI thread."""
        chosen = self.chosen()
        if not chosen or self.is_running():
            self.status.setText("Choose at least one format." if not chosen else self.status.text())
            return False
        self.results = []
        self.table.setRowCount(0)
        self._queue = list(chosen)
        self.export_button.setEnabled(False)
        for box in self.boxes.values():
            box.setEnabled(False)
        self.progress.setRange(0, len(chosen))
        self.progress.setValue(0)
        self.progress.show()
        self._next()
        return True

    def _next(self) -> None:
        if not self._queue:
            self._finish()
            return
        name, quantize, label = self._queue[0]
        self.status.setText(f"Exporting {label} and checking it with its runtime…")
        self.tasks.submit("export", engine_calls.export_run, str(self.run_dir), name, quantize)

    def _on_tasks_done(self, _: str, result: dict[str, Any]) -> None:
        self._record(self._queue.pop(0)[2], result)
        self._next()

    def _on_tasks_failed(self, _: str, error: Exception) -> None:
        _, _, label = self._queue.pop(0)
        self._record(label, {"passed": False, "message": str(error), "verification": {}})
        self._next()

    def _record(self, label: str, result: dict[str, Any]) -> None:
        self.results.append({**result, "label": label})
        self.progress.setValue(len(self.results))
        figures = result.get("verification") or {}
        verdict = "verified" if result.get("passed") else f"failed: {result.get('message', '')}"
        cells = (label, verdict, _size(figures.get("file_bytes")), _percent(figures.get("agreement")),
                 _number(figures.get("max_probability_difference")), _percent(figures.get("accuracy")),
                 _number(figures.get("ms_per_image"), "{:.2f}"))
        row = self.table.rowCount()
        self.table.insertRow(row)
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if column == 1:
                item.setToolTip(verdict)
                if not result.get("passed"):
                    item.setForeground(Qt.GlobalColor.red)
            self.table.setItem(row, column, item)

    def _finish(self) -> None:
        failed = [r["label"] for r in self.results if not r.get("passed")]
        self.status.setText(f"Failed: {', '.join(failed)} (nothing was left for those)." if failed else
                            f"All {len(self.results)} exports written and verified in "
                            f"{self.run_dir / EXPORT_DIR}.")
        self.export_button.setEnabled(True)
        for box in self.boxes.values():
            box.setEnabled(True)
        self.open_button.setEnabled((self.run_dir / EXPORT_DIR).is_dir())
        self.finished_all.emit(list(self.results))

    def _on_open_button_clicked(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.run_dir / EXPORT_DIR)))

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        self._queue = self._queue[:1]  # the running export finishes; the rest are dropped
        self.tasks.shutdown()
        super().closeEvent(event)


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f} %"


def _number(value: Any, pattern: str = "{:.2g}") -> str:
    return "-" if value is None else pattern.format(float(value))


def _size(value: Any) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"

"""The Grad-CAM pane and the image view the Results and Predict tabs share.

``GradCamWidget`` shows which parts of one image made a run's best model answer a class;
the engine computes the overlay in its process (``engine_calls.grad_cam``), off the GUI
thread. ``load_thumbnail_images`` decodes the lists' thumbnails with the engine's decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QSizePolicy, QVBoxLayout, QWidget

from gui import engine_calls
from gui.tasks import BackgroundTasks
from gui.words import PLAIN, Words
from training.data.images import ImageLoadError, load_thumbnail
from training.evaluation.reading import is_number

NO_IMAGE = "Select an image to see where the model looked."


def percent(value: Any) -> str:
    return f"{100 * float(value):.1f} %" if is_number(value) else "-"


def array_image(pixels: np.ndarray) -> QImage:
    """A QImage that owns a copy of an RGB uint8 (H, W, 3) array."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    return QImage(pixels.tobytes(), width, height, width * 3, QImage.Format.Format_RGB888).copy()


def load_thumbnail_images(paths: list[str], size: int) -> list[tuple[str, QImage]]:
    """Small thumbnails with the engine's own decoder (off the GUI thread): a file it would
    refuse (a FIFO, a bomb, text named .png) is never opened here either."""
    thumbnails = []
    for path in paths:
        try:
            thumbnails.append((path, array_image(load_thumbnail(path, size))))
        except (ImageLoadError, OSError, ValueError):
            continue  # no thumbnail for a file that is gone or broken; the row stays
    return thumbnails


class ImageView(QWidget):
    """One image, scaled to fit and centred (keeps its aspect ratio; any size)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.setMinimumSize(64, 64)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, image: QImage | None) -> None:
        self.image = image
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(200, 200)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        if self.image is None or self.image.isNull():
            return
        size = self.image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(QPoint((self.width() - size.width()) // 2, (self.height() - size.height()) // 2), size)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform,
                              size.width() < self.image.width())  # sharp pixels when enlarged
        painter.drawImage(target, self.image)
        painter.end()


class GradCamWidget(QWidget):
    """The Grad-CAM overlay of one image: which parts of it made the model answer a class.
    The engine computes it in its process (``engine_calls.grad_cam``), off the GUI thread."""

    shown = Signal(dict)     # the engine's result, once drawn
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, words: Words | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gradCamWidget")
        self.words = words or PLAIN
        self.run_dir = ""
        self.path = ""
        self.true_class = ""
        self.result: dict[str, Any] | None = None
        self.image = ImageView()
        self.image.setObjectName("gradCamImage")
        self.image.setToolTip("Grad-CAM: red marks the parts of the image that pushed the model "
                              "most towards the class explained.")
        self.caption = QLabel(NO_IMAGE)
        self.caption.setObjectName("gradCamCaption")
        self.caption.setWordWrap(True)
        self.class_box = QComboBox()
        self.class_box.setObjectName("gradCamClass")
        self.class_box.setToolTip("Explain another class: where in this image the model saw it.")
        self.class_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_box.setMinimumContentsLength(6)
        self.class_box.activated.connect(self._on_class_box_activated)
        self.heat_box = QCheckBox("Heat map")
        self.heat_box.setObjectName("gradCamHeatMap")
        self.heat_box.setChecked(True)
        self.heat_box.setToolTip("Off: the image alone, as the model saw it.")
        self.heat_box.toggled.connect(self._draw)
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)
        # One control a line: the pane stays narrow beside the list it explains.
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.caption)
        layout.addWidget(QLabel("Explain the class:"))
        layout.addWidget(self.class_box)
        layout.addWidget(self.heat_box)
        self._set_enabled(False)

    def explain(self, run_dir: str, path: str, class_name: str | None = None, true_class: str = "") -> None:
        """Asks the engine for the overlay of ``path`` (for its top class by default)."""
        if (run_dir, path) != (self.run_dir, self.path):
            self.result = None
            self.image.set_image(None)
        self.run_dir, self.path, self.true_class = run_dir, path, true_class
        target = f"“{class_name}”" if class_name else "its answer"
        self.caption.setText(f"Finding where the model looked for {target} in {Path(path).name}…")
        self._set_enabled(False)
        self.tasks.submit("grad_cam", engine_calls.grad_cam, run_dir, path, class_name)

    def clear(self, message: str = NO_IMAGE) -> None:
        self.run_dir = self.path = self.true_class = ""
        self.result = None
        self.image.set_image(None)
        self.class_box.clear()
        self.caption.setText(message)
        self._set_enabled(False)

    def _set_enabled(self, enabled: bool) -> None:
        self.class_box.setEnabled(enabled)
        self.heat_box.setEnabled(enabled)

    def _on_tasks_done(self, _: str, result: dict[str, Any]) -> None:
        if not self.path:
            return  # cleared while the engine worked: another run or list is shown now
        self.result = result
        top = [entry.get("class") for entry in result.get("top") or [] if isinstance(entry, dict)]
        classes = top or [result.get("class", "")]
        self.class_box.clear()
        self.class_box.addItems([str(name) for name in classes])
        self.class_box.setCurrentText(str(result.get("class", "")))
        answer = top[0] if top else ""
        explained = str(result.get("class", ""))
        text = f"Where the model looked for “{explained}” ({percent(result.get('probability'))})"
        if answer and answer != explained:
            text += f"; its answer is “{answer}”"
        if self.true_class:
            text += f"; true class “{self.true_class}”"
        self.caption.setText(text + ".")
        self._set_enabled(True)
        self._draw()
        self.shown.emit(result)

    def _on_tasks_failed(self, _: str, error: Exception) -> None:
        if not self.path:
            return
        message = self.words.plain(str(error))
        self.caption.setText(f"No Grad-CAM for {Path(self.path).name}: {message}")
        self.failed.emit(message)

    def _draw(self, *_: object) -> None:
        if self.result is None:
            return
        key = "overlay" if self.heat_box.isChecked() else "image"
        self.image.set_image(array_image(np.asarray(self.result[key])))

    def _on_class_box_activated(self, index: int) -> None:
        name = self.class_box.itemText(index)
        if self.path and name and name != (self.result or {}).get("class"):
            self.explain(self.run_dir, self.path, name, self.true_class)

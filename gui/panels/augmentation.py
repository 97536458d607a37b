"""The Augmentation panel: one toggle and strength per augmentation, and a live preview.

The preview decodes 8 real images of the loaded folder and passes them through the
engine's own augmentation (``preview_augmentation``) off the GUI thread; a change of
setting restarts a 300 ms debounce timer so dragging a spin box asks for one preview.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.forms import ConfigForm, NumberBox, hbox, tooltip
from gui.tasks import BackgroundTasks
from training.api import Config
from training.config import knob_of

FLIPS = ("augmentation.horizontal_flip", "augmentation.vertical_flip")
STRENGTHS = ("augmentation.rotation", "augmentation.zoom", "augmentation.translation",
             "augmentation.random_crop", "augmentation.brightness", "augmentation.contrast",
             "augmentation.saturation", "augmentation.hue", "augmentation.gaussian_noise",
             "augmentation.cutout", "augmentation.mixup", "augmentation.cutmix", "augmentation.randaugment")
PREVIEW_COUNT = 8  # two rows: the toggles and the grid fit the tab at 1280x800
PREVIEW_COLUMNS = 4
PREVIEW_PX = 76  # four across fit the narrowest sidebar (380 px)
PREVIEW_MAX_SIZE = 160
DEBOUNCE_MS = 300


def make_preview(config: Config, paths: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Original and augmented images (uint8, N x S x S x 3); runs off the GUI thread."""
    from gui import engine_calls

    size = min(config.data.image_size or 128, PREVIEW_MAX_SIZE)
    return engine_calls.augmentation_preview(config, paths, size, seed)


def to_pixmap(image: np.ndarray, size: int) -> QPixmap:
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    height, width = image.shape[:2]
    qimage = QImage(image.data, width, height, width * 3, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(qimage).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                            Qt.TransformationMode.SmoothTransformation)


class StrengthWidget(QWidget):
    """A checkbox that switches an augmentation on, with its strength beside it; switched on,
    the strength starts at the knob's typical value."""

    def __init__(self, key: str) -> None:
        super().__init__()
        row = knob_of(key)
        self.check = QCheckBox(row.label)
        self.value = NumberBox(row)
        self.suggested = float(row.typical or row.step or 0.0)
        self.value.setValue(self.suggested)
        self.value.setEnabled(False)
        self.check.toggled.connect(self.value.setEnabled)
        for widget in (self, self.check, self.value):
            widget.setToolTip(tooltip(key))
        holder = hbox(self.check, self.value)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(holder)

    def get(self) -> float:
        return self.value.value() if self.check.isChecked() else 0.0

    def set(self, value: float) -> None:
        self.check.setChecked(value > 0)
        self.value.setValue(value if value > 0 else self.suggested)


class AugmentationPanel(ConfigForm):
    def __init__(self, config_source: Callable[[], Config | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._config_source = config_source
        self.paths: list[str] = []
        self.seed = 0
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)
        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(DEBOUNCE_MS)
        self.debounce.timeout.connect(self.refresh_preview)
        self._build_toggles()
        self._build_preview()
        self.finish()

    def _build_toggles(self) -> None:
        form = self.group("Augmentations (training images only)", "augmentationGroup")
        form.setVerticalSpacing(1)
        for key in FLIPS:
            self.switch_row(form, key)
        for key in STRENGTHS:
            widget = StrengthWidget(key)
            self.bind(key, widget, get=widget.get, set_=widget.set, signal=widget.check.toggled,
                      caption=widget.check)
            widget.value.valueChanged.connect(self._on_field_changed)
            form.addRow(widget)

    def _build_preview(self) -> None:
        box = QGroupBox("Preview (real images, current settings)")
        box.setObjectName("augmentationPreviewGroup")
        layout = QVBoxLayout(box)
        self.preview_status = QLabel("Load a folder to see a preview.")
        self.preview_status.setObjectName("previewStatus")
        self.preview_status.setWordWrap(True)
        layout.addWidget(self.preview_status)
        grid = QGridLayout()
        grid.setSpacing(3)
        self.preview_labels: list[QLabel] = []
        for index in range(PREVIEW_COUNT):
            label = QLabel()
            label.setObjectName(f"previewImage{index}")
            label.setFixedSize(PREVIEW_PX, PREVIEW_PX)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setStyleSheet("border: 1px solid palette(mid);")
            grid.addWidget(label, index // PREVIEW_COLUMNS, index % PREVIEW_COLUMNS)
            self.preview_labels.append(label)
        layout.addLayout(grid)
        again = QPushButton("Another random draw")
        again.setObjectName("previewReseedButton")
        again.setToolTip("Apply the same settings with new random draws.")
        again.clicked.connect(self._on_again_clicked)
        layout.addWidget(again)
        self._layout.addWidget(box)
        self.preview_count = 0  # previews shown so far (tests wait on it)

    # -- preview ---------------------------------------------------------------------------
    def set_images(self, paths: list[str]) -> None:
        self.paths = list(paths)[:PREVIEW_COUNT]
        self.debounce.start()

    def on_field_changed(self) -> None:
        if self.paths:
            self.debounce.start()

    def after_load(self, config: Config) -> None:
        if self.paths:
            self.debounce.start()

    def refresh_preview(self) -> None:
        config = self._config_source()
        if config is None or not self.paths:
            return
        self.preview_status.setText("Computing preview…")
        self.tasks.submit("preview", make_preview, config, self.paths, self.seed)

    def _on_again_clicked(self) -> None:
        self.seed += 1
        self.refresh_preview()

    def _on_tasks_done(self, name: str, result: Any) -> None:
        _originals, augmented = result
        for label, image in zip(self.preview_labels, augmented):
            label.setPixmap(to_pixmap(image, PREVIEW_PX))
        for label in self.preview_labels[len(augmented):]:
            label.clear()
        self.preview_count += 1
        self.preview_status.setText(f"{len(augmented)} training images as the model will see them "
                                    "(MixUp/CutMix mix pairs within a batch).")

    def _on_tasks_failed(self, name: str, error: Exception) -> None:
        self.preview_status.setText(f"Preview unavailable: {error}")


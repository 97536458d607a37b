"""The Model panel: backbone, weights, training stages and the classification head."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from gui.forms import ConfigForm, NumberBox, combo, hbox, parse_int_list, tooltip
from training.api import Config
from training.config import BACKBONES, knob_of

COLUMNS = ("Backbone", "Params", "Size", "Top-1", "Cached")
# The weights combo: the knob's named choices, then "a file" (its path in the line edit).
WEIGHT_CHOICES = {**knob_of("model.weights").choice_labels, "file": "weights file…"}


class BackboneTable(QTableWidget):
    """Every supported backbone with its size, accuracy and whether weights are cached."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(len(BACKBONES), len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(22)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.setFixedHeight(200)
        for row, name in enumerate(BACKBONES):
            self.setItem(row, 0, QTableWidgetItem(name))
            for column in range(1, len(COLUMNS)):
                self.setItem(row, column, QTableWidgetItem("…"))
        for column, tip in enumerate(("Network name", "Parameters in millions (bigger = slower)",
                                      "Input size it was pretrained at (px)",
                                      "ImageNet top-1 accuracy: how good its features are",
                                      "ImageNet weights already downloaded on this machine")):
            self.horizontalHeaderItem(column).setToolTip(tip)

    def selected_name(self) -> str:
        rows = self.selectionModel().selectedRows()
        return self.item(rows[0].row(), 0).text() if rows else BACKBONES[0]

    def select_name(self, name: str) -> None:
        row = BACKBONES.index(name) if name in BACKBONES else 0
        self.selectRow(row)
        self.scrollToItem(self.item(row, 0), QAbstractItemView.ScrollHint.PositionAtCenter)

    def set_catalog(self, catalog: list[dict[str, Any]]) -> None:
        info = {entry["name"]: entry for entry in catalog}
        for row, name in enumerate(BACKBONES):
            entry = info.get(name, {})
            params = entry.get("params_millions")
            top1 = entry.get("imagenet_top1")
            cached = entry.get("imagenet_cached")
            texts = (f"{params:.1f} M" if params is not None else "-",
                     str(entry.get("default_size") or "-"),
                     f"{top1:.1%}" if isinstance(top1, float) and top1 <= 1 else (f"{top1:.1f}%" if top1 else "-"),
                     "yes" if cached else ("no" if name != "SmallCNN" else "-"))
            for column, text in enumerate(texts, start=1):
                self.item(row, column).setText(text)
                self.item(row, column).setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            family = entry.get("family")
            if family:
                self.item(row, 0).setToolTip(f"{name} ({family} family)")


class ModelPanel(ConfigForm):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.catalog: list[dict[str, Any]] = []
        self._build_backbone_group()
        self._build_stages_group()
        self._build_head_group()
        self.finish()

    def _build_backbone_group(self) -> None:
        form = self.group("Backbone and weights", "backboneGroup")
        self.table = BackboneTable()
        caption = QLabel(f"{knob_of('model.backbone').caption}:")
        caption.setBuddy(self.table)
        self.bind("model.backbone", self.table, get=self.table.selected_name, set_=self.table.select_name,
                  signal=self.table.itemSelectionChanged, caption=caption)
        caption.setToolTip(self.table.toolTip())
        form.addRow(caption)
        form.addRow(self.table)
        self.weights = combo(tuple(WEIGHT_CHOICES), WEIGHT_CHOICES)
        self.weights_file = QLineEdit()
        self.weights_file.setObjectName("weightsFile")
        self.weights_file.setPlaceholderText("path to .h5, .weights.h5 or .keras")
        browse = QPushButton("Browse…")
        browse.setObjectName("browseWeightsButton")
        browse.setToolTip("Choose a weights file for the backbone.")
        browse.clicked.connect(self._on_browse_weights_clicked)
        self.weights_file_row = hbox(self.weights_file, browse)
        self.row(form, "model.weights", self.weights, get=self._weights_value, set_=self._set_weights,
                 signal=self.weights.currentIndexChanged)
        self.weights_file.editingFinished.connect(self._on_field_changed)
        form.addRow("Weights file:", self.weights_file_row)
        self._backbone_form = form
        self.row(form, "model.batch_norm_momentum")

    def _build_stages_group(self) -> None:
        form = self.group("Training stages", "stagesGroup")
        self.row(form, "training.head_epochs")
        self.row(form, "training.fine_tune_epochs")
        self.layers = NumberBox(knob_of("training.fine_tune_layers"), integer=True)
        self.all_layers = QCheckBox("all")
        self.all_layers.setObjectName("fineTuneAllLayers")
        self.all_layers.setToolTip(tooltip("ui.fine_tune_all"))
        self.all_layers.toggled.connect(self.layers.setDisabled)
        self.all_layers.toggled.connect(self._on_field_changed)
        self.row(form, "training.fine_tune_layers", self.layers, field=hbox(self.layers, self.all_layers),
                 get=self._layers_value, set_=self._set_layers)
        self.row(form, "training.seed")

    def _build_head_group(self) -> None:
        form = self.group("Head (the new classifier on top)", "headGroup")
        self.hidden = QLineEdit()
        self.hidden.setPlaceholderText("none, or e.g. 256 or 512, 128")
        self.row(form, "model.head.hidden_units", self.hidden,
                 get=lambda: parse_int_list(self.hidden.text()),
                 set_=lambda units: self.hidden.setText(", ".join(str(u) for u in units)))
        for key in ("model.head.activation", "model.head.dropout", "model.head.batch_norm",
                    "model.head.kernel_initializer"):
            self.row(form, key)

    # -- values -------------------------------------------------------------------------
    def _weights_value(self) -> str:
        choice = self.weights.currentData()
        return self.weights_file.text() if choice == "file" else choice

    def _set_weights(self, value: str) -> None:
        if value in WEIGHT_CHOICES and value != "file":
            self.weights.setCurrentIndex(self.weights.findData(value))
        else:
            self.weights.setCurrentIndex(self.weights.findData("file"))
            self.weights_file.setText(value)

    def _layers_value(self) -> int | str:
        return "all" if self.all_layers.isChecked() else self.layers.value()

    def _set_layers(self, value: int | str) -> None:
        self.all_layers.setChecked(value == "all")
        if value != "all":
            self.layers.setValue(int(value))

    def _on_browse_weights_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Backbone weights", "",
                                              "Keras weights (*.h5 *.keras)")
        if path:
            self.weights_file.setText(path)
            self._on_field_changed()

    def after_load(self, config: Config) -> None:
        self._update_visibility()

    def on_field_changed(self) -> None:
        # SmallCNN has no ImageNet weights: switch to "none" rather than show an error.
        if self.table.selected_name() == "SmallCNN" and self.weights.currentData() == "imagenet":
            self.weights.blockSignals(True)
            self.weights.setCurrentIndex(self.weights.findData("none"))
            self.weights.blockSignals(False)
        self._update_visibility()

    def _update_visibility(self) -> None:
        self._backbone_form.setRowVisible(self.weights_file_row, self.weights.currentData() == "file")

    def set_catalog(self, catalog: list[dict[str, Any]]) -> None:
        self.catalog = catalog
        self.table.set_catalog(catalog)

    def size_problem(self, config: Config) -> str:
        """Why the backbone cannot take the image size (the engine would refuse), or ""."""
        entry = next((e for e in self.catalog if e.get("name") == config.model.backbone), None)
        size = config.data.image_size
        if entry is None or size is None or size >= int(entry.get("min_size") or 0):
            return ""
        return (f"`data.image_size` must be >= {entry['min_size']} for {config.model.backbone}. "
                f"Received: data.image_size={size}. Raise the image size or pick another backbone.")

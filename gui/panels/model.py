"""The Model panel: backbone, weights, training stages and the classification head."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

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
    QVBoxLayout,
    QWidget,
)

from gui.forms import ConfigForm, NumberBox, combo, config_value, hbox, parse_int_list, tooltip
from models.registry import get_spec
from training.api import Config
from training.config import BACKBONES, knob_of
from training.config.modes import mode_for

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


def _cached(entry: dict[str, Any], image_size: int | None) -> bool:
    """Whether the backbone's ImageNet file for ``image_size`` (None: its default) is cached."""
    spec = get_spec(entry["name"])
    size = spec.imagenet_file_size(image_size or spec.default_size)
    return size in entry.get("imagenet_cached_sizes", [])


class ModelPanel(ConfigForm):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.catalog: list[dict[str, Any]] = []
        self._image_size: int | None = None
        self._previous: tuple[str, str] = ("auto", "imagenet")
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
        self._build_offline_notice(form)
        self.row(form, "model.batch_norm_momentum")

    def _build_offline_notice(self, form: Any) -> None:
        """Says before Start when ImageNet weights would download, and what works offline."""
        self.weights_notice = QLabel()
        self.weights_notice.setObjectName("weightsNotice")
        self.weights_notice.setWordWrap(True)
        self.weights_notice.setTextFormat(Qt.TextFormat.PlainText)
        self.from_scratch_button = QPushButton("Train from scratch")
        self.from_scratch_button.setObjectName("fromScratchButton")
        self.from_scratch_button.setToolTip("Training mode: From scratch (Weights: none): every "
                                            "layer trains from the first epoch.")
        self.from_scratch_button.clicked.connect(self._on_from_scratch_clicked)
        self.use_file_button = QPushButton("Use a weights file…")
        self.use_file_button.setObjectName("useWeightsFileButton")
        self.use_file_button.setToolTip("Weights: a .h5, .weights.h5 or .keras file you have.")
        self.use_file_button.clicked.connect(self._on_browse_weights_clicked)
        self.weights_notice_row = QWidget()
        column = QVBoxLayout(self.weights_notice_row)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.weights_notice)
        column.addWidget(hbox(self.from_scratch_button, self.use_file_button))
        form.addRow(self.weights_notice_row)
        self.weights_notice_row.hide()

    def _build_stages_group(self) -> None:
        form = self.group("Training stages", "stagesGroup")
        self.mode = self.row(form, "training.mode")
        self.mode_text = QLabel()
        self.mode_text.setObjectName("trainingModeText")
        self.mode_text.setWordWrap(True)
        form.addRow(self.mode_text)
        self.head_epochs = self.row(form, "training.head_epochs")
        self.fine_tune_epochs = self.row(form, "training.fine_tune_epochs")
        self.layers = NumberBox(knob_of("training.fine_tune_layers"), integer=True)
        self.all_layers = QCheckBox("all")
        self.all_layers.setObjectName("fineTuneAllLayers")
        self.all_layers.setToolTip(tooltip("ui.fine_tune_all"))
        self.all_layers.toggled.connect(self.layers.setHidden)  # "all": no count to show
        self.all_layers.toggled.connect(self._on_field_changed)
        self.row(form, "training.fine_tune_layers", self.layers, field=hbox(self.layers, self.all_layers),
                 get=self._layers_value, set_=self._set_layers)
        self.feature_cache = self.row(form, "training.feature_cache")
        self.row(form, "training.mixed_precision")
        self.row(form, "training.jit_compile")
        self.row(form, "training.augment_in")
        self.row(form, "training.distributed")
        # Which devices "Train on" would use: the engine names them (``set_device``).
        self.devices_note = QLabel("Devices: detecting…")
        self.devices_note.setObjectName("devicesNote")
        self.devices_note.setWordWrap(True)
        self.devices_note.setTextFormat(Qt.TextFormat.PlainText)
        form.addRow(self.devices_note)
        self.row(form, "training.scale_learning_rate")
        self.row(form, "training.tensorboard_histograms")
        self.row(form, "training.seed")
        self._stages_form = form

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
            with self._adjusting():
                self.weights.setCurrentIndex(self.weights.findData("file"))
                self.weights_file.setText(path)
            self._on_field_changed()

    def _on_from_scratch_clicked(self) -> None:
        self.mode.setCurrentIndex(self.mode.findData("from_scratch"))

    def after_load(self, config: Config) -> None:
        self._image_size = config.data.image_size
        self._previous = (self.mode.currentData(), self._weights_value())
        self._update_visibility()

    def on_field_changed(self) -> None:
        with self._adjusting():
            self._keep_coherent()
        self._update_visibility()

    @contextmanager
    def _adjusting(self) -> Iterator[None]:
        """Sets controls without each change re-entering ``on_field_changed``."""
        loading, self._loading = self._loading, True
        try:
            yield
        finally:
            self._loading = loading

    def _keep_coherent(self) -> None:
        """The mode, the weights and the phases always describe one way to train: the mode
        that was just chosen sets the weights, the weights that were just chosen set an
        automatic mode, and entering or leaving "from scratch" moves the epochs."""
        mode, weights = self.mode.currentData(), self._weights_value()
        before_mode, before_weights = self._previous
        before = mode_for(before_mode, before_weights)
        # SmallCNN has no ImageNet weights: switch to "none" rather than show an error.
        if self.table.selected_name() == "SmallCNN" and weights == "imagenet":
            self._set_weights("none")
        elif mode != before_mode and mode == "from_scratch" and weights != "none":
            self._set_weights("none")
        elif (mode != before_mode and mode in ("fine_tune", "head_only") and weights == "none"
              and self.table.selected_name() != "SmallCNN"):
            self._set_weights("imagenet")
        after = mode_for(mode, self._weights_value())
        if after == "from_scratch" and before != "from_scratch":
            total = self.head_epochs.value() + self.fine_tune_epochs.value()
            self.head_epochs.setValue(0)
            self.fine_tune_epochs.setValue(total)
            self._set_layers("all")
        elif before == "from_scratch" and after != "from_scratch":
            total = self.head_epochs.value() + self.fine_tune_epochs.value()
            if self.head_epochs.value() == 0 and total > 1:
                self.head_epochs.setValue(total // 2)
                self.fine_tune_epochs.setValue(total - total // 2)
            if self._layers_value() == "all":
                self._set_layers(config_value(Config(), "training.fine_tune_layers"))
        self._previous = (self.mode.currentData(), self._weights_value())

    def _update_visibility(self) -> None:
        self._backbone_form.setRowVisible(self.weights_file_row, self.weights.currentData() == "file")
        mode = mode_for(self.mode.currentData(), self._weights_value())
        scratch, head_only = mode == "from_scratch", mode == "head_only"
        self.head_epochs.setEnabled(not scratch)
        self.feature_cache.setEnabled(not scratch)  # it only ever speeds up a head phase
        self.fine_tune_epochs.setEnabled(not head_only)
        self.layers.setEnabled(not scratch and not head_only)
        self.all_layers.setEnabled(not scratch and not head_only)
        caption = self.bindings["training.fine_tune_epochs"].caption
        caption.setText("Epochs:" if scratch else f"{knob_of('training.fine_tune_epochs').caption}:")
        self.mode_text.setText(self._mode_description(mode))
        self._update_weights_notice()

    def _mode_description(self, mode: str) -> str:
        backbone = self.table.selected_name()
        head, fine = self.head_epochs.value(), self.fine_tune_epochs.value()
        if mode == "from_scratch":
            return (f"All layers of {backbone}, BatchNorm included, train from random weights for "
                    f"{head + fine} epochs at the Learning rate (Optimizer tab).")
        if mode == "head_only":
            return f"{backbone} stays frozen; only the new head trains, for {head} epochs."
        text = (f"The new head trains for {head} epochs on the frozen {backbone}, then the top "
                "layers are fine-tuned")
        text += f" for {fine} epochs." if fine else " (Fine-tune epochs is 0: skipped)."
        if self._weights_value() == "none":
            text += (" Weights is none: a frozen backbone with random weights gives the head "
                     "random features to learn from. Choose From scratch instead.")
        return text

    def set_device(self, description: str) -> None:
        """Shows the engine's device description (e.g. "GPU: NVIDIA A100, NVIDIA A100 (mixed_float16)")
        under Train on, with what "all GPUs" means here."""
        kind, _, names = description.partition(": ")
        if kind == "GPU":
            gpus = [name.strip() for name in names.rsplit(" (", 1)[0].split(",") if name.strip()]
            text = f"GPUs here ({len(gpus)}): {', '.join(gpus)}."
            if len(gpus) < 2:
                text += ' With one GPU, "all GPUs of this machine" adds nothing.'
        else:
            text = ('No GPU here: training uses the CPU, and "all GPUs of this machine" would only be slower '
                    '("several machines" still works).')
        self.devices_note.setText(text)

    def _update_weights_notice(self) -> None:
        text = self.weights_notice_text()
        self.weights_notice.setText(text)
        self._backbone_form.setRowVisible(self.weights_notice_row, bool(text))

    def weights_notice_text(self) -> str:
        """Before Start: whether the chosen ImageNet weights are on this machine, which
        backbones' are, and what works offline ("" when nothing needs saying)."""
        if self._weights_value() != "imagenet" or not self.catalog:
            return ""
        name = self.table.selected_name()
        entry = next((e for e in self.catalog if e.get("name") == name), None)
        if entry is None or _cached(entry, self._image_size):
            return ""
        here = [e["name"] for e in self.catalog if e.get("imagenet_cached_sizes")]
        on_machine = (f"ImageNet weights on this machine: {', '.join(here)}." if here else
                      "No ImageNet weights are on this machine yet.")
        return (f"The ImageNet weights of {name} are not on this machine: Start downloads them "
                f"(internet needed). {on_machine} Offline, train from scratch or use a weights "
                "file you have.")

    def set_catalog(self, catalog: list[dict[str, Any]]) -> None:
        self.catalog = catalog
        self.table.set_catalog(catalog)
        self._update_visibility()

    def set_image_size(self, size: int | None) -> None:
        """The Data tab's image size, which decides the ImageNet file of some backbones."""
        if size != self._image_size:
            self._image_size = size
            self._update_visibility()

    def size_problem(self, config: Config) -> str:
        """Why the backbone cannot take the image size (the engine would refuse), or ""."""
        entry = next((e for e in self.catalog if e.get("name") == config.model.backbone), None)
        size = config.data.image_size
        if entry is None or size is None or size >= int(entry.get("min_size") or 0):
            return ""
        return (f"`data.image_size` must be >= {entry['min_size']} for {config.model.backbone}. "
                f"Received: data.image_size={size}. Raise the image size or pick another backbone.")

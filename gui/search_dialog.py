"""The Search dialog: a hyperparameter search of the window's settings (``training.search``),
its trials live in a table and a plot, and "train the best for longer".

The user ticks the settings to search, each with its range (low, high, log scale) or its
choices, as the default space (``training.search``) proposes them for the current settings;
rows are named by their controls' labels (the knob table), never by config keys. The space
is checked by the engine's own ``parse_space`` before anything starts, so a range the
settings refuse is reported at once, naming the control.

The search is one of the window's jobs (``RunLifecycle.start_search``): it runs in an engine
process like a training run, one job at a time, and Stop (here, or the window's) ends the
current trial after its batch and the search with it. The dialog follows the job's events:
each ``TrialFinished`` updates the table (sorted by validation accuracy) and the plot of
validation accuracy against the chosen setting (``gui.search_trials``).

The window (``host``) provides: ``config``, ``config_error``, ``words``, ``lifecycle``,
``document``, ``data_panel.runs_dir()``, ``is_running()``, ``start_search()``,
``stop_training()``, ``show_settings()``, ``start_training()`` and ``open_run_results()``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gui.search_trials import SearchTrialsView, choice_text, value_text
from training.api import Config, ConfigError, planned_epochs
from training.config import knob_table
from training.config.knobs import number_text
from training.events import BatchEnd, Event, Failed
from training.search import (
    SearchFinished,
    SearchStarted,
    SpaceError,
    StageStarted,
    TrialFinished,
    TrialRecord,
    TrialStarted,
    next_search_dir,
    parse_space,
    plan_stages,
)
from training.search.space import default_entry, default_keys

MAX_TRIALS = 500
ERROR_STYLE = "color: #b3261e;"


@dataclass
class KnobRow:
    """The controls of one setting that may be searched: a range or a list of choices."""

    key: str
    check: QCheckBox
    low: QLineEdit | None = None
    high: QLineEdit | None = None
    log: QCheckBox | None = None
    choices: QLineEdit | None = None

    def widgets(self) -> list[QWidget]:
        return [w for w in (self.check, self.low, self.high, self.log, self.choices) if w is not None]


def parse_choice(text: str) -> Any:
    """A choice as typed: a number, true/false or a JSON value, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def search_log_line(event: Event, words: Any) -> str:
    """The window log's line for a search event ("" for the engine's own events)."""
    def params(values: dict) -> str:
        return ", ".join(f"{words.label(key)} {value_text(value)}" for key, value in values.items())

    if isinstance(event, SearchStarted):
        return f"Search: {event.trials} trials in {event.out_dir}"
    if isinstance(event, StageStarted):
        return f"Search, {event.stage} stage: {event.trials} trials of {event.epochs} epochs each"
    if isinstance(event, TrialStarted):
        return f"Trial {event.trial} ({event.stage}): {params(event.params)}"
    if isinstance(event, TrialFinished):
        score = (f"validation accuracy {event.val_accuracy:.3f}, loss {value_text(event.val_loss)}"
                 if event.val_accuracy is not None else "no epoch completed")
        why = f" ({words.plain(event.reason)})" if event.status != "completed" and event.reason else ""
        return f"Trial {event.trial} {event.status}{why}: {score}"
    if isinstance(event, SearchFinished):
        best = f"; best: trial {event.best_trial}, settings in {event.best_config}" if event.best_trial else ""
        return f"Search {event.stop_reason}{best}"
    return ""


class SearchDialog(QDialog):
    """Non-modal and kept by the window: closing it while a search runs only hides it."""

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("searchDialog")
        self.setWindowTitle("Search hyperparameters")
        self.host = host
        self.words = host.words
        self.rows: dict[str, KnobRow] = {}
        self.trials: dict[int, TrialRecord] = {}  # by trial number; a running one has status "running"
        self.total = 0
        self.out_dir = ""
        self.best_config = ""
        self._searching = False                   # the window's job is this dialog's search
        self._trial_text = "Trial"                # which trial runs, for the progress line
        self._best_read: tuple[str, Config | None] = ("", None)
        self._build()
        self.refresh_knobs()
        host.lifecycle.began.connect(self._on_lifecycle_began)
        host.lifecycle.event.connect(self._on_lifecycle_event)
        host.lifecycle.ended.connect(self._on_lifecycle_ended)
        host.lifecycle.idle.connect(self._update_buttons)
        host.document.changed.connect(self._on_document_changed)
        self._update_buttons()
        self.resize(1200, 700)
        screen = self.screen()
        if screen is not None:  # a small screen (1024x700) gets a dialog that fits on it
            available = screen.availableGeometry()
            self.resize(min(1200, available.width() - 24), min(700, available.height() - 48))

    # -- building ---------------------------------------------------------------------------
    def _build(self) -> None:
        self.knob_box = QGroupBox("What to search")
        self.knob_grid = QGridLayout(self.knob_box)
        self.knob_grid.setColumnStretch(0, 1)
        for column, title in enumerate(("Setting", "Low", "High", "Log")):
            header = QLabel(title)
            header.setStyleSheet("font-weight: bold;")
            self.knob_grid.addWidget(header, 0, column)
        self.trials_spin = QSpinBox()
        self.trials_spin.setObjectName("searchTrials")
        self.trials_spin.setRange(1, MAX_TRIALS)
        self.trials_spin.setValue(12)
        self.trials_spin.setMaximumWidth(110)
        self.trials_spin.setToolTip("How many runs to train. Two thirds (at least all below 3) are short "
                                    "coarse trials over the whole ranges; the rest train the full epochs "
                                    "in ranges narrowed around the best.")
        self.trials_spin.valueChanged.connect(self._on_plan_changed)
        self.stages_label = QLabel()
        self.stages_label.setObjectName("searchStages")
        self.stages_label.setWordWrap(True)
        self.folder_edit = QLineEdit()
        self.folder_edit.setObjectName("searchFolder")
        self.folder_edit.setPlaceholderText("empty: a new search folder in the runs folder")
        self.folder_edit.setToolTip("The search folder: one run folder per trial, trials.csv and "
                                    "best_config.json. Empty: a new search-<time> folder in the runs folder.")
        self.folder_edit.textChanged.connect(self._clear_message)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse_clicked)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        self.median_box = QCheckBox("Stop trials below the median of their stage")
        self.median_box.setObjectName("searchMedianPruning")
        self.median_box.setChecked(True)
        self.median_box.setToolTip("Once 3 trials of a stage completed, a trial whose validation accuracy "
                                   "after an epoch is below theirs at that epoch stops early. Trials whose "
                                   "loss diverges (above 3x its start) always stop.")
        form = QFormLayout()
        form.addRow("Trials", self.trials_spin)
        form.addRow("", self.stages_label)
        form.addRow("Output folder", folder_row)
        form.addRow("", self.median_box)
        self.start_button = QPushButton("Start search")
        self.start_button.setObjectName("startSearchButton")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopSearchButton")
        self.stop_button.setToolTip("Stop the current trial after its batch and end the search; "
                                    "trials.csv and best_config.json keep what was found.")
        self.stop_button.clicked.connect(self.stop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        self.message = QLabel()
        self.message.setObjectName("searchMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        intro = QLabel("Each trial trains the current settings with the ticked ones drawn at random from "
                       "their ranges: short coarse trials first, then full-length trials around the best.")
        intro.setWordWrap(True)
        left_layout.addWidget(intro)
        left_layout.addWidget(self.knob_box)
        left_layout.addLayout(form)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.message)
        left_layout.addStretch(1)

        self.status = QLabel("No search has run yet.")
        self.status.setObjectName("searchStatus")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setObjectName("searchProgress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("no trials yet")
        self.view = SearchTrialsView(words=self.words)
        self.view.open_requested.connect(self._on_view_open_requested)

        self.longer_spin = QSpinBox()
        self.longer_spin.setObjectName("longerFactor")
        self.longer_spin.setRange(1, 20)
        self.longer_spin.setValue(2)
        self.longer_spin.setPrefix("× ")
        self.longer_spin.setToolTip("How many times the epochs of the best trial's settings to train.")
        self.longer_spin.valueChanged.connect(self._update_buttons)
        self.train_best_button = QPushButton("Train the best for longer")
        self.train_best_button.setObjectName("trainBestButton")
        self.train_best_button.clicked.connect(self.train_best)
        best_row = QHBoxLayout()
        best_row.addWidget(QLabel("Epochs"))
        best_row.addWidget(self.longer_spin)
        self.longer_label = QLabel()
        self.longer_label.setObjectName("longerEpochs")
        best_row.addWidget(self.longer_label)
        best_row.addWidget(self.train_best_button)
        best_row.addStretch(1)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.status)
        right_layout.addWidget(self.progress)
        right_layout.addWidget(self.view, 1)
        right_layout.addLayout(best_row)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("searchSplitter")
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setCollapsible(0, False)
        splitter.setSizes([420, 780])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

    def refresh_knobs(self) -> None:
        """Offers the default space's settings for the window's config; rows that stay keep
        what the user typed (the list changes with the training mode)."""
        config = self.host.config
        keys = default_keys(config)
        if keys == list(self.rows):
            self._on_plan_changed()
            return
        old, self.rows = self.rows, {}
        for key, row in old.items():
            for widget in row.widgets():
                self.knob_grid.removeWidget(widget)
                if key not in keys:
                    widget.deleteLater()
        for line, key in enumerate(keys, start=1):
            self.rows[key] = old.get(key) or self._make_row(key, default_entry(key, config) or {})
            self._place_row(self.rows[key], line)
        self._on_plan_changed()

    def _make_row(self, key: str, entry: dict) -> KnobRow:
        leaf = knob_table()[key]
        check = QCheckBox(self.words.label(key))
        check.setObjectName(f"search_{key}")
        check.setChecked(True)
        tab = self.words.tab_of(key)
        check.setToolTip(f"{leaf.knob.help}" + (f" ({tab} tab)" if tab else ""))
        check.toggled.connect(self._clear_message)
        row = KnobRow(key, check)
        if "choices" in entry:
            row.choices = QLineEdit(", ".join(choice_text(c) for c in entry["choices"]))
            row.choices.setObjectName(f"search_{key}_choices")
            row.choices.setToolTip("The values to try, separated by commas.")
            row.choices.textChanged.connect(self._clear_message)
        else:
            row.low = QLineEdit(number_text(entry.get("low", leaf.knob.minimum or 0)))
            row.high = QLineEdit(number_text(entry.get("high", leaf.knob.maximum or 1)))
            row.log = QCheckBox()
            row.log.setChecked(bool(entry.get("log")))
            row.log.setToolTip("Sample log-uniformly: 1e-5 as likely as 1e-3 (learning rates, "
                               "regularization strengths). Needs Low above 0.")
            for name, edit in (("low", row.low), ("high", row.high)):
                edit.setObjectName(f"search_{key}_{name}")
                edit.setMaximumWidth(90)
                edit.textChanged.connect(self._clear_message)
            row.log.setObjectName(f"search_{key}_log")
            row.log.toggled.connect(self._clear_message)
        return row

    def _place_row(self, row: KnobRow, line: int) -> None:
        self.knob_grid.addWidget(row.check, line, 0)
        if row.choices is not None:
            self.knob_grid.addWidget(row.choices, line, 1, 1, 3)
        else:
            self.knob_grid.addWidget(row.low, line, 1)
            self.knob_grid.addWidget(row.high, line, 2)
            self.knob_grid.addWidget(row.log, line, 3)

    # -- the space ---------------------------------------------------------------------------
    def space_dict(self) -> dict[str, dict]:
        """The ticked settings as SPACE.json, checked by the engine against the settings.

        Raises:
            ValueError: what is wrong, naming the control (a row, or the settings).
        """
        space: dict[str, dict] = {}
        for key, row in self.rows.items():
            if row.check.isChecked():
                space[key] = self._entry(key, row)
        if not space:
            raise ValueError("Tick at least one setting under “What to search”.")
        try:
            parse_space(space, self.host.config, source="The search space")
        except SpaceError as error:
            raise ValueError(self.words.plain(str(error))) from None
        return space

    def _entry(self, key: str, row: KnobRow) -> dict:
        label = self.words.label(key)
        if row.choices is not None:
            choices = [parse_choice(part.strip()) for part in row.choices.text().split(",") if part.strip()]
            if not choices:
                raise ValueError(f"{label}: list at least one value to try, separated by commas.")
            return {"choices": choices}
        integer = knob_table()[key].integer
        low, high = (self._number(label, name, edit.text(), integer)
                     for name, edit in (("Low", row.low), ("High", row.high)))
        if not low < high:
            raise ValueError(f"{label}: “Low” ({number_text(low)}) must be below “High” ({number_text(high)}). "
                             "To keep the setting fixed, untick it and set it in the settings.")
        if row.log.isChecked() and low <= 0:
            raise ValueError(f"{label}: a log-scale range needs “Low” above 0 (log-uniform sampling never "
                             f"reaches 0). Received: {number_text(low)}. Try 1e-5, or untick “Log”.")
        return {"low": low, "high": high, "log": row.log.isChecked()}

    @staticmethod
    def _number(label: str, name: str, text: str, integer: bool) -> float | int:
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"{label}: “{name}” must be a number. Received: {text.strip() or 'nothing'!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"{label}: “{name}” must be a finite number. Received: {text.strip()!r}")
        if integer:
            if not value.is_integer():
                raise ValueError(f"{label}: “{name}” must be a whole number. Received: {text.strip()}")
            return int(value)
        return value

    def _out_dir(self) -> Path:
        """The search folder: the one typed (new or empty), else a new one in the runs folder.

        Raises:
            ValueError: the typed folder cannot hold a new search.
        """
        text = self.folder_edit.text().strip()
        if not text:
            return next_search_dir(self.host.data_panel.runs_dir())
        path = Path(text).expanduser().absolute()
        if path.exists() and not path.is_dir():
            raise ValueError(f"Output folder: {path} is a file. Choose a new or empty folder, or leave "
                             "it empty for a new folder in the runs folder.")
        if path.is_dir() and any(os.scandir(path)):
            raise ValueError(f"Output folder: {path} already holds files; a search writes only into a new "
                             "or empty folder. Choose another, or leave it empty for a new folder in the "
                             "runs folder.")
        return path

    # -- starting and stopping ----------------------------------------------------------------
    def start(self) -> bool:
        """Checks the form and starts the search; False (with a message) when it cannot."""
        if self.host.is_running():
            self._say_error("A run or a search is in progress; stop it first.")
            return False
        if self.host.config_error:
            self._say_error("The settings are not valid: " + self.words.plain(self.host.config_error))
            return False
        try:
            space = self.space_dict()
            out_dir = self._out_dir()
        except ValueError as error:
            self._say_error(str(error))
            return False
        options = {"median_pruning": self.median_box.isChecked()}
        self._clear_message()
        if not self.host.start_search(out_dir, self.trials_spin.value(), space, options):
            self._say_error("The search could not start; the window's status bar says why.")
            return False
        self._update_buttons()
        return True

    def stop(self) -> None:
        if self._searching:
            self.host.stop_training()
            self.status.setText("Stopping after the current batch…")
        self._update_buttons()

    def is_running(self) -> bool:
        return self._searching

    def _update_buttons(self) -> None:
        busy = self._searching or self.host.is_running()
        self.start_button.setEnabled(not busy)
        self.start_button.setToolTip("Stop the current run first." if busy and not self._searching
                                     else "Train the trials, one after another, in the engine process.")
        self.stop_button.setEnabled(self._searching and not self.host.lifecycle.stop_requested())
        self.knob_box.setEnabled(not self._searching)
        best = self._best_config() is not None
        self.train_best_button.setEnabled(best and not busy)
        epochs = self._longer_epochs()
        self.longer_label.setText(f"= {epochs} epochs" if epochs else "")
        self.train_best_button.setToolTip(
            (f"Puts the best trial's settings, with {epochs} epochs, into the settings tabs and starts "
             "a run." if epochs else "Puts the best trial's settings into the settings tabs and starts a run.")
            if best else "Available once a trial has completed.")

    # -- train the best for longer -------------------------------------------------------------
    def _best_config(self) -> Config | None:
        """best_config.json as last read (read again when the search names another)."""
        if self._best_read[0] != self.best_config:
            try:
                config = Config.load(self.best_config) if self.best_config else None
            except ConfigError:
                config = None
            self._best_read = (self.best_config, config)
        return self._best_read[1]

    def longer_config(self) -> Config:
        """The best trial's settings with its epochs multiplied by the "Epochs" factor.

        Raises:
            ConfigError: best_config.json cannot be read, or the epochs are too many.
        """
        config = Config.load(self.best_config)
        factor = self.longer_spin.value()
        return config.with_overrides({"training.head_epochs": config.training.head_epochs * factor,
                                      "training.fine_tune_epochs": config.training.fine_tune_epochs * factor})

    def _longer_epochs(self) -> int:
        config = self._best_config()
        return planned_epochs(config) * self.longer_spin.value() if config is not None else 0

    def train_best(self) -> bool:
        """Loads the best trial's settings, with more epochs, into the window and trains them."""
        try:
            config = self.longer_config()
        except ConfigError as error:
            self._say_error(self.words.plain(str(error)))
            return False
        if not self.host.show_settings(config, f"best settings of {Path(self.out_dir).name}"):
            return False
        started = self.host.start_training()
        if started:
            self.hide()  # the window shows the run
        return started

    # -- the job's events ----------------------------------------------------------------------
    def _on_lifecycle_began(self, kind: str, _subject: Any) -> None:
        self._searching = kind == "search"
        if self._searching:
            self.trials.clear()
            self.best_config = ""
            self.status.setText("Loading TensorFlow and the data…")
            self.progress.setRange(0, max(1, self.trials_spin.value()))
            self.progress.setValue(0)
            self.progress.setFormat("%v of %m trials")
            self._show_trials()
        self._update_buttons()

    def _on_lifecycle_event(self, event: Event) -> None:
        if not self._searching:
            return
        if isinstance(event, SearchStarted):
            self._show_search(event)
        elif isinstance(event, StageStarted):
            self.status.setText(f"{event.stage.capitalize()} stage: {event.trials} trial"
                                f"{'s' if event.trials != 1 else ''} of {event.epochs} epoch"
                                f"{'s' if event.epochs != 1 else ''}.")
        elif isinstance(event, TrialStarted):
            self.trials[event.trial] = TrialRecord(trial=event.trial, stage=event.stage, run_dir=event.run_dir,
                                                   status="running", params=dict(event.params),
                                                   epochs=event.epochs)
            self._trial_text = f"Trial {event.trial} of {self.total} ({event.stage})"
            self.status.setText(self._trial_text + ": starting…")
            self._show_trials()
        elif isinstance(event, BatchEnd):
            self.status.setText(f"{self._trial_text}: epoch {event.epoch}, "
                                f"batch {event.batch}/{event.batches}")
        elif isinstance(event, TrialFinished):
            self.trials[event.trial] = TrialRecord(
                trial=event.trial, stage=event.stage, run_dir=event.run_dir, status=event.status,
                val_accuracy=event.val_accuracy, val_loss=event.val_loss, params=dict(event.params),
                reason=event.reason, seconds=event.seconds)
            self.progress.setValue(len([r for r in self.trials.values() if r.status != "running"]))
            self._show_trials()
        elif isinstance(event, SearchFinished):
            self.best_config = event.best_config
            self.status.setText(self._finished_text(event))

    def _on_lifecycle_ended(self, kind: str, outcome: Any) -> None:
        if kind != "search":
            return
        self._searching = False
        for number, record in list(self.trials.items()):  # a trial the end cut off (a crash)
            if record.status == "running":
                self.trials[number] = replace(record, status="failed" if isinstance(outcome, Failed) else "stopped")
        self._show_trials()
        if isinstance(outcome, Failed):
            message = self.words.plain(outcome.message)
            self.status.setText("The search failed.")
            self._say_error(message)
            if not self.isVisible():
                self.host.show_error("The search failed", message, details=outcome.details or outcome.message)
        self._update_buttons()

    def _show_search(self, event: SearchStarted) -> None:
        self.total, self.out_dir = event.trials, event.out_dir
        self.progress.setRange(0, max(1, event.trials))
        self.view.show_search(event.space)
        self.status.setText(f"Searching in {event.out_dir}")

    def _finished_text(self, event: SearchFinished) -> str:
        if not event.best_trial:
            return f"Search {event.stop_reason}: no trial completed, so there is no best. See {event.trials_csv}."
        accuracy = event.best_metrics.get("val_accuracy")
        score = f", validation accuracy {accuracy:.3f}" if isinstance(accuracy, (int, float)) else ""
        return (f"Search {event.stop_reason}. Best: trial {event.best_trial}{score}. "
                f"Its settings: {event.best_config}")

    def _show_trials(self) -> None:
        self.view.show_trials(list(self.trials.values()))
        self._update_buttons()

    def _on_view_open_requested(self, run_dir: str) -> None:
        if Path(run_dir).is_dir():
            self.host.open_run_results(run_dir)

    # -- small things ---------------------------------------------------------------------------
    def _on_plan_changed(self) -> None:
        config = self.host.config
        try:
            stages = plan_stages(config, self.trials_spin.value())
        except ValueError:
            self.stages_label.setText("")
            return
        parts = [f"{s.trials} {s.name} trial{'s' if s.trials != 1 else ''} of {s.epochs(config)} "
                 f"epoch{'s' if s.epochs(config) != 1 else ''}" for s in stages]
        self.stages_label.setText(", then ".join(parts) + ".")

    def _on_document_changed(self) -> None:
        if not self._searching:
            self.refresh_knobs()
        self._update_buttons()

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Search folder", str(self.host.data_panel.runs_dir()))
        if folder:
            self.folder_edit.setText(folder)
            self._clear_message()

    def _say_error(self, text: str) -> None:
        self.message.setStyleSheet(ERROR_STYLE)
        self.message.setText(text)

    def _clear_message(self, *_: Any) -> None:
        self.message.setText("")

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if not self._searching:
            self.refresh_knobs()
        self._update_buttons()


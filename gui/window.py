"""The main window: settings on the left, live plots and the run's outcome on the right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from gui import engine_calls
from gui.controllers.config_document import ConfigDocument
from gui.controllers.run_lifecycle import RunLifecycle
from gui.controllers.split_preview import SplitPreview
from gui.export_dialog import ExportDialog
from gui.forms import ConfigForm
from gui.panels.augmentation import PREVIEW_COUNT, AugmentationPanel
from gui.panels.data import DataPanel, sample_paths
from gui.panels.model import ModelPanel
from gui.panels.optimizer import OptimizerPanel
from gui.panels.regularization import RegularizationPanel
from gui.plots import LivePlotsWidget, apply_palette, configure_pyqtgraph
from gui.predict_panel import PredictPanel, dropped_paths
from gui.progress import RunProgressWidget
from gui.qt_fixes import GuiThreadGarbageCollection
from gui.results import ResultsView
from gui.runs_panel import RunsPanel
from gui.runview import (
    FinishedRunPanel,
    HintsPanel,
    LogWidget,
    describe_fix,
    describe_fix_for_log,
    open_export_dialog,
)
from gui.search_dialog import SearchDialog, search_log_line
from gui.tasks import BackgroundTasks
from gui.tools import TOOL_TIPS, TOOL_TITLES, LRRangeDialog, summary_hint
from gui.words import Words
from gui.worker import Runner, TrainingWorker
from training.api import (
    Config,
    ConfigError,
    SplitPlan,
    default_config,
    planned_epochs,
    reproduction_report,
    run_config,
)
from training.config import BUILTIN_SAMPLE
from training.events import Event, Failed, Finished, Hint, RunStarted
from training.files import is_folder
from training.rundir import BEST_MODEL, RunDirError
from training.search import SearchFinished, TrialStarted
from training.service.messages import ToolResult

APP_NAME = "Finetune Studio"
SIDEBAR_WIDTH = 450
# The share of the plots' column that the Results and Predict tabs take while shown (the
# plots fold away, and come back with any other tab).
TALL_OUTPUT_SHARE = 1.0
TAB_TITLES = ("Data", "Model", "Regularization", "Augmentation", "Optimizer")  # one per form
RUNS_DIR_KEY = "ui/runsDir"


class MainWindow(QMainWindow):
    """One window per app: its layout, and the wiring of its widgets to three controllers
    (``document``: the settings; ``split_preview``: the planned split; ``lifecycle``: the
    job that runs). ``runner`` replaces the child-process engine (tests)."""

    run_finished = Signal(object)  # the Finished or Failed event of each run

    def __init__(self, config: Config | None = None, *, settings: QSettings | None = None,
                 runner: Runner | None = None, prewarm: bool = False) -> None:
        """``config``: the settings to show; without one, the last session's come back
        (``app.py`` passes ``--config``/``--data`` explicitly, so they win)."""
        super().__init__()
        self.setObjectName("mainWindow")
        GuiThreadGarbageCollection.acquire()
        self._gc_held = True
        self.settings = settings or QSettings("FinetuneStudio", "FinetuneStudio")
        self.document = ConfigDocument(config or default_config(), self.settings, parent=self)
        restored = self.document.restore_session() if config is None else ""
        self.document.changed.connect(self._on_document_changed)
        self.document.session_failed.connect(self._on_document_session_failed)
        self._shown_settings: tuple[dict, str] | None = None  # what the last change showed
        self.split_preview = SplitPreview(self)
        self.split_preview.planned.connect(self._on_split_preview_planned)
        self.split_preview.failed.connect(self._on_split_preview_failed)
        self.lifecycle = RunLifecycle(runner=runner, prewarm=prewarm, parent=self)
        self.runs = self.lifecycle.runs
        self.lifecycle.began.connect(self._on_lifecycle_began)
        self.lifecycle.event.connect(self._on_lifecycle_event)
        self.lifecycle.replayed.connect(self._on_lifecycle_replayed)
        self.lifecycle.ended.connect(self._on_lifecycle_ended)
        self.lifecycle.errored.connect(self._on_lifecycle_errored)
        self.lifecycle.idle.connect(self._on_lifecycle_idle)
        self.lifecycle.killed.connect(self._on_lifecycle_killed)
        self.lr_dialog: LRRangeDialog | None = None
        self.search_dialog: SearchDialog | None = None
        self._reproducing: Path | None = None  # the run that Run again trains anew
        self.error_dialog: QMessageBox | None = None
        self._close_requested = False
        self._close_answered = False  # the unsaved-changes question of this close was answered
        self._session_error = ""
        self.tasks = BackgroundTasks(self, workers=1)
        self.tasks.done.connect(self._on_tasks_done)
        self.tasks.failed.connect(self._on_tasks_failed)
        self._build_panels()
        self._build_actions()
        self._build_central()
        self._build_status_bar()
        self.setAcceptDrops(True)
        self.data_panel.set_recent(self.document.recent_folders())
        runs_dir = self.settings.value(RUNS_DIR_KEY, "")
        if runs_dir:
            self.data_panel.runs_dir_edit.setText(str(runs_dir))
        # Restored settings keep their saved state (the file's, when they had one).
        self.set_config(self.config, saved=not restored)
        if restored:
            self.statusBar().showMessage(restored, 8000)
        self.resize(1280, 800)
        screen = QGuiApplication.primaryScreen()
        if screen is not None:  # a small screen (1024x700) gets a window that fits on it
            available = screen.availableGeometry()
            self.resize(min(1280, available.width()), min(800, available.height()))
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    # -- the output area ------------------------------------------------------------------
    def _on_output_tabs_current_changed(self, _: int) -> None:
        """Results and Predict need room (a matrix, a gallery, a heat map): while one of them
        is shown the plots fold away and the tabs take their height; any other tab gives it back."""
        tall = self.output_tabs.currentWidget() in (self.results_view, self.predict_panel, self.runs_panel)
        sizes = self.plots_splitter.sizes()
        total = sum(sizes)
        if tall and self._plot_sizes is None and total and sizes[1] < TALL_OUTPUT_SHARE * total:
            self._plot_sizes = sizes
            self.plots_splitter.setSizes([round(total * (1 - TALL_OUTPUT_SHARE)), round(total * TALL_OUTPUT_SHARE)])
        elif not tall and self._plot_sizes is not None:
            self.plots_splitter.setSizes(self._plot_sizes)
            self._plot_sizes = None

    # -- building -------------------------------------------------------------------------
    def _build_panels(self) -> None:
        self.data_panel = DataPanel()
        self.model_panel = ModelPanel()
        self.regularization_panel = RegularizationPanel()
        self.augmentation_panel = AugmentationPanel(self.document.current_config)
        self.optimizer_panel = OptimizerPanel(self.document.current_config)
        self.forms: list[ConfigForm] = [self.data_panel, self.model_panel, self.regularization_panel,
                                        self.augmentation_panel, self.optimizer_panel]
        self.document.attach(self.forms, self.model_panel.size_problem)
        self.words = Words.from_forms(zip(TAB_TITLES, self.forms))
        self.optimizer_panel.words = self.words
        for form in self.forms:
            form.guard_wheel()  # also the controls a panel added after building its rows
        self.data_panel.scanned.connect(self._on_data_panel_scanned)
        self.data_panel.scan_failed.connect(self._on_data_panel_scan_failed)
        self.data_panel.folder_chosen.connect(self._on_data_panel_folder_chosen)
        self.data_panel.dir_edit.editingFinished.connect(self._on_data_folder_editing_finished)
        self.optimizer_panel.on_plan = self._on_optimizer_plan

    def _build_central(self) -> None:
        self.settings_tabs = QTabWidget()
        self.settings_tabs.setObjectName("settingsTabs")
        # Every tab stays in sight: the sidebar is never narrower than its five tabs.
        self.settings_tabs.tabBar().setUsesScrollButtons(False)
        self.settings_tabs.tabBar().setElideMode(Qt.TextElideMode.ElideNone)
        for form, title in zip(self.forms, TAB_TITLES):
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            scroll.setWidget(form)
            form.setObjectName(f"{title.lower()}Panel")
            self.settings_tabs.addTab(scroll, title)
        self.error_banner = QLabel()
        self.error_banner.setObjectName("configErrorBanner")
        self.error_banner.setWordWrap(True)
        self.error_banner.setStyleSheet("color: white; background: #b3261e; padding: 4px;")
        self.error_banner.hide()
        sidebar = QWidget()
        side_layout = QVBoxLayout(sidebar)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.error_banner)
        side_layout.addWidget(self.settings_tabs, 1)
        self.plots = LivePlotsWidget()
        self.hints_panel = HintsPanel(list(self.tool_actions.values()), words=self.words)
        self.hints = self.hints_panel.list
        self.hints.fix_requested.connect(self._on_hints_fix_requested)
        self.hints.restart_requested.connect(self._on_hints_restart_requested)
        self.log = LogWidget()
        self.result_panel = FinishedRunPanel(words=self.words)
        self.output_tabs = QTabWidget()
        self.output_tabs.setObjectName("outputTabs")
        self.output_tabs.addTab(self.hints_panel, "Hints")
        self.output_tabs.addTab(self.log, "Log")
        self.output_tabs.addTab(self.result_panel, "Result")
        self.results_view = ResultsView(words=self.words)
        self.output_tabs.addTab(self.results_view, "Results")
        self.predict_panel = PredictPanel(words=self.words)
        self.output_tabs.addTab(self.predict_panel, "Predict")
        self.runs_panel = RunsPanel(self.data_panel.runs_dir, words=self.words)
        # Before the last run's Result, Results and Predict, which stay side by side.
        self.output_tabs.insertTab(self.output_tabs.indexOf(self.result_panel), self.runs_panel, "Runs")
        self.runs_panel.load_settings_requested.connect(self.load_run_settings)
        self.runs_panel.resume_requested.connect(self.resume_run)
        self.runs_panel.run_again_requested.connect(self.run_again)
        self.runs_panel.results_requested.connect(self.open_run_results)
        self.runs_panel.failed.connect(self.show_error)
        self.run_finished.connect(self.runs_panel.on_run_finished)
        self.data_panel.runs_dir_edit.editingFinished.connect(self.runs_panel.mark_stale)
        right = QSplitter(Qt.Orientation.Vertical)
        right.setObjectName("plotsSplitter")
        self.plots_splitter = right
        self._plot_sizes: list[int] | None = None
        self.output_tabs.currentChanged.connect(self._on_output_tabs_current_changed)
        right.addWidget(self.plots)
        right.addWidget(self.output_tabs)
        right.setSizes([520, 200])
        self.progress = RunProgressWidget(plain=self.words.plain)
        right_holder = QWidget()
        right_layout = QVBoxLayout(right_holder)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.progress)
        right_layout.addWidget(right, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("mainSplitter")
        splitter.addWidget(sidebar)
        splitter.addWidget(right_holder)
        splitter.setStretchFactor(1, 1)
        splitter.setCollapsible(0, False)  # the settings never vanish behind a dragged handle
        splitter.setSizes([SIDEBAR_WIDTH, 1280 - SIDEBAR_WIDTH])
        # No smaller than its tab bar (about 420 px): no tab hides, and every panel's
        # controls fit beside its scroll bar.
        sidebar.setMinimumWidth(max(380, sidebar.minimumSizeHint().width()))
        self.setCentralWidget(splitter)

    def _action(self, text: str, name: str, slot: Any, shortcuts: list, tip: str) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setToolTip(f"{tip} ({', '.join(QKeySequence(s).toString() for s in shortcuts)})"
                          if shortcuts else tip)
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        keys = QKeySequence.StandardKey
        self.open_folder_action = self._action("Open folder…", "openFolderAction",
                                               self.data_panel.choose_folder, ["Ctrl+O"],
                                               "Choose the folder of images to train on")
        self.load_action = self._action("Load config…", "loadConfigAction", self._on_load_triggered,
                                        ["Ctrl+L"], "Load settings from a JSON config file")
        self.save_action = self._action("Save config", "saveConfigAction", self._on_save_triggered,
                                        [keys.Save], "Save the settings to their JSON file")
        self.save_as_action = self._action("Save config as…", "saveConfigAsAction",
                                           self._on_save_as_triggered, [keys.SaveAs],
                                           "Save the settings to a new JSON file (the CLI reads it too)")
        self.start_action = self._action("Start", "startAction", self.start_training, ["Ctrl+R"],
                                         "Start training with the current settings")
        self.stop_action = self._action("Stop", "stopAction", self.stop_training, ["Esc", "Ctrl+."],
                                        "Stop after the current batch, keeping the best model so far")
        self.stop_action.setEnabled(False)
        self.resume_action = self._action("Resume", "resumeAction", self.resume_last_run, ["Ctrl+Shift+R"],
                                          "Continue the last run, which stopped, from its last completed epoch")
        self.resume_action.setEnabled(False)
        self.resume_run_action = self._action("Resume run…", "resumeRunAction", self._on_resume_run_triggered,
                                              [], "Choose a stopped run's folder and continue it "
                                              "from its last completed epoch")
        self.tool_actions = {
            name: self._action(TOOL_TITLES[name], f"{name}Action",
                               lambda _=False, n=name: self.run_tool(n), [], TOOL_TIPS[name])
            for name in TOOL_TITLES}
        self.results_action = self._action("Open run results…", "openRunResultsAction",
                                           self._on_open_run_results_triggered, [],
                                           "Choose a run folder and see how its best model does: "
                                           "accuracy, confusion matrix, its worst mistakes")
        self.export_action = self._action("Export run…", "exportRunAction", self._on_export_run_triggered, [],
                                          "Choose a run folder and export its best model for "
                                          "deployment (Keras, SavedModel, TFLite, ONNX), each verified")
        self.runs_action = self._action("Runs", "showRunsAction", self.show_runs, ["Ctrl+H"],
                                        "Every run in the runs folder: open, compare, resume or run again")
        self.search_action = self._action("Search…", "searchAction", self.open_search_dialog, [],
                                          "Search hyperparameters: random trials, coarse to fine, "
                                          "then train the best for longer")
        self.quit_action = self._action("Quit", "quitAction", self.close, [keys.Quit], "Close the app")
        toolbar = QToolBar("Main")
        toolbar.setObjectName("mainToolBar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action in (self.open_folder_action, self.load_action, self.save_action, None,
                       self.start_action, self.stop_action, self.resume_action, None, self.search_action):
            toolbar.addSeparator() if action is None else toolbar.addAction(action)
        self.addToolBar(toolbar)
        file_menu = self.menuBar().addMenu("&File")
        for action in (self.open_folder_action, self.load_action, self.save_action,
                       self.save_as_action, None, self.runs_action, self.resume_run_action,
                       self.results_action, self.export_action, None, self.quit_action):
            file_menu.addSeparator() if action is None else file_menu.addAction(action)
        run_menu = self.menuBar().addMenu("&Run")
        run_menu.addAction(self.start_action)
        run_menu.addAction(self.stop_action)
        run_menu.addAction(self.resume_action)
        run_menu.addSeparator()
        run_menu.addAction(self.search_action)
        tools_menu = self.menuBar().addMenu("&Tools")
        for action in self.tool_actions.values():
            tools_menu.addAction(action)

    def _build_status_bar(self) -> None:
        self.device_label = QLabel("Device: detecting…")
        self.device_label.setObjectName("deviceLabel")
        self.device_label.setToolTip("Where training runs: GPU name and precision, or CPU threads.")
        self.statusBar().addPermanentWidget(self.device_label)
        self.statusBar().setObjectName("statusBar")

    def after_shown(self) -> None:
        """Work that may import TensorFlow starts only once the window is on screen."""
        engine_calls.start_helper()
        self.tasks.submit("catalog", engine_calls.backbone_catalog)
        self.tasks.submit("device", engine_calls.device_description)
        self.runs.spawn_warm_engine()

    # -- the settings (``document``) ---------------------------------------------------------
    @property
    def config(self) -> Config:
        """The config the widgets describe (the last valid one while they hold an error)."""
        return self.document.config

    @property
    def config_error(self) -> str:
        return self.document.error

    def build_config(self) -> Config:
        return self.document.build_config()

    def set_config(self, config: Config, *, saved: bool = False) -> None:
        self.document.set_config(config, saved=saved)

    def load_config_file(self, path: str | Path) -> bool:
        if not self.confirm_unsaved_changes():
            return False
        try:
            self.document.load(path)
        except ConfigError as error:
            # The message names the file's keys; the window's words first, the keys in details.
            self.show_error("Cannot load the config", self.words.plain(str(error)), details=str(error))
            return False
        self.statusBar().showMessage(f"Loaded {path}", 5000)
        return True

    def save_config_file(self, path: str | Path) -> bool:
        try:
            self.document.save(path)
        except ConfigError as error:
            self.show_error("Cannot save the config", self.words.plain(str(error)), details=str(error))
            return False
        except OSError as error:
            self.show_error("Cannot save the config", f"Could not write {path}: {error}")
            return False
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def _on_document_changed(self) -> None:
        # The banner belongs to the settings: it shows their problem, and goes with it.
        self.error_banner.setText(self.words.plain(self.config_error))
        self.error_banner.setVisible(bool(self.config_error))
        self.setWindowTitle(f"{self.document.display_name()}[*] — {APP_NAME}")
        self.setWindowModified(self.document.is_dirty())
        shown = (self.config.to_dict(), self.config_error)
        if shown != self._shown_settings:
            if self._shown_settings is not None and not self.is_running():
                self.progress.idle()  # the last job's outcome was about other settings
            self._shown_settings = shown
            if not self.config_error:
                self.optimizer_panel.schedule_plan()  # epochs, mode, batch size... all shape it
                self.model_panel.set_image_size(self.config.data.image_size)  # its weights file
        self._update_actions()
        self._update_split_plan()

    def _update_actions(self) -> None:
        running = self.is_running()
        self.start_action.setEnabled(not running and not self.config_error)
        self.stop_action.setEnabled(running and not self.lifecycle.stop_requested())
        self.resume_action.setEnabled(not running and bool(self.lifecycle.resumable_run_dir))
        self.resume_run_action.setEnabled(not running)
        self.runs_panel.set_running(running)
        for action in self.tool_actions.values():
            action.setEnabled(not running and not self.config_error)

    def _on_load_triggered(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load config", "", "Config (*.json)")
        if path:
            self.load_config_file(path)

    def _on_save_triggered(self) -> None:
        if self.document.path is None:
            self._on_save_as_triggered()
        else:
            self.save_config_file(self.document.path)

    def _on_save_as_triggered(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save config", "config.json", "Config (*.json)")
        if path:
            self.save_config_file(path if path.endswith(".json") else path + ".json")

    # -- data and its planned split (``split_preview``) -----------------------------------------
    def recent_folders(self) -> list[str]:
        return self.document.recent_folders()

    def _on_data_panel_folder_chosen(self, folder: str) -> None:
        self.data_panel.set_recent(self.document.remember_folder(folder))

    def _on_data_folder_editing_finished(self) -> None:
        """A folder typed into the Folder field is as recent as a chosen one, once it exists."""
        folder = self.data_panel.dir_edit.text().strip()
        if folder and (folder == BUILTIN_SAMPLE or is_folder(folder)) and \
                folder != (self.recent_folders() or [None])[0]:
            self.data_panel.set_recent(self.document.remember_folder(folder))

    def _on_data_panel_scanned(self, scan: Any) -> None:
        paths = [path for _, path in sample_paths(scan, max(1, PREVIEW_COUNT // len(scan.classes) + 1))]
        self.augmentation_panel.set_images(paths[:PREVIEW_COUNT])
        self._update_split_plan()

    def _on_data_panel_scan_failed(self, message: str) -> None:
        self.statusBar().showMessage(message, 10000)
        self._update_split_plan()

    def _update_split_plan(self) -> None:
        self.split_preview.update(self.data_panel.scan, None if self.config_error else self.config.data)
        self._update_steps_per_epoch()

    def split_plan(self) -> SplitPlan | None:
        """The training and validation images a run would use, as the engine splits them."""
        return None if self.config_error else self.split_preview.plan

    def steps_per_epoch(self) -> int | None:
        """Training steps per epoch as planned from the scan (before any file fails)."""
        plan = self.split_plan()
        return None if plan is None else plan.steps_per_epoch(self.config.data.batch_size)

    def _update_steps_per_epoch(self) -> None:
        steps = self.steps_per_epoch()
        if steps != self.optimizer_panel.steps_per_epoch:
            self.optimizer_panel.set_steps_per_epoch(steps)

    def _on_split_preview_planned(self, plan: SplitPlan | None) -> None:
        self._update_steps_per_epoch()

    def _on_split_preview_failed(self, message: str) -> None:
        self.statusBar().showMessage(message, 10000)

    def _on_optimizer_plan(self, epochs: list[float], values: list[float]) -> None:
        # During a run the plots show the plan of the running config only.
        if not self.is_running() or self.config == self.last_run_config:
            self.plots.set_planned_learning_rates(epochs, values)

    # -- background results ------------------------------------------------------------------
    def _on_tasks_done(self, name: str, result: Any) -> None:
        if name == "catalog":
            self.model_panel.set_catalog(result)
            self.document.refresh()  # the catalog knows each backbone's smallest input
        elif name == "device":
            self.model_panel.set_device(result)
            if not self.is_running():
                self.device_label.setText(f"Device: {result}")

    def _on_tasks_failed(self, name: str, error: Exception) -> None:
        if name == "device":
            self.device_label.setText("Device: unknown")
        self.log.add(f"Could not get the {name}: {error}", "warning")

    # -- jobs (``lifecycle``) ---------------------------------------------------------------------
    @property
    def worker(self) -> TrainingWorker | None:
        return self.lifecycle.worker

    @property
    def last_run_config(self) -> Config | None:
        return self.lifecycle.last_run_config

    @property
    def run_started_event(self) -> RunStarted | None:
        return self.lifecycle.run_started_event

    def is_running(self) -> bool:
        return self.lifecycle.is_running()

    def _ready_to_start(self, *, check_settings: bool = True) -> bool:
        """One job at a time, and only with valid settings; says why not in the window."""
        if self.is_running():
            self.statusBar().showMessage("A run is already in progress; stop it first.", 5000)
            return False
        if check_settings and self.config_error:
            self.show_error("Cannot start", f"The settings are not valid: {self.words.plain(self.config_error)}")
            return False
        return True

    def start_training(self) -> bool:
        """Starts a run with the current settings; refused while one runs or if invalid."""
        if not self._ready_to_start():
            return False
        runs_dir = self.data_panel.runs_dir()
        try:
            run_dir = self.lifecycle.start_run(self.config.copy(), runs_dir)
        except OSError as error:
            self.show_error("Cannot start", f"Cannot create the runs folder {runs_dir}: {error}")
            return False
        self.log.add(f"Starting run in {run_dir}")
        self.plots.set_planned_learning_rates(*self.optimizer_panel.plan)
        self._update_actions()
        self.statusBar().showMessage("Training started.", 3000)
        return True

    def resume_last_run(self) -> bool:
        """Continues the last run (stopped or failed with a checkpoint) in its folder."""
        run_dir = self.lifecycle.resumable_run_dir
        return bool(run_dir) and self.resume_run(run_dir)

    def resume_run(self, run_dir: str | Path) -> bool:
        """Continues any stopped run from its last completed epoch, with its own config.json,
        which the settings then show: the plots and the settings describe the same run (its
        data, its epochs). Unsaved changes to a settings file are asked about first."""
        if not self._ready_to_start(check_settings=False) or not self.confirm_unsaved_changes():
            return False
        check = self.lifecycle.resume_run(run_dir)
        if check.problem:
            self.show_error("Cannot resume", self.words.plain(check.problem))
            return False
        self.document.show_run_config(check.config, run_dir)
        self.log.add(f"Resuming {run_dir} after epoch {check.epoch}")
        self._update_actions()
        self.statusBar().showMessage(f"Resuming {Path(run_dir).name}: the settings show that run's "
                                     "config (save them to keep them as a file).", 8000)
        return True

    def _on_export_run_triggered(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export run", str(self.data_panel.runs_dir()))
        if folder:
            self.export_run(folder)

    def export_run(self, run_dir: str | Path) -> ExportDialog | None:
        """Opens the Export dialog for any finished run's folder (the engine checks it)."""
        problem = "" if (Path(run_dir) / BEST_MODEL).is_file() else (
            f"{run_dir} has no best model ({BEST_MODEL}) to export: choose a run folder whose run "
            "completed at least one epoch.")
        if problem:
            self.show_error("Cannot export", problem)
            return None
        return open_export_dialog(run_dir, self)

    def _on_open_run_results_triggered(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open run results", str(self.data_panel.runs_dir()))
        if folder:
            self.open_run_results(folder)

    def open_run_results(self, run_dir: str | Path) -> bool:
        """Shows any run's evaluation in the Results tab (and offers its model in Predict)."""
        shown = self.results_view.show_run(run_dir)
        if (Path(run_dir) / BEST_MODEL).is_file():
            self.predict_panel.set_run(run_dir)
        self.output_tabs.setCurrentWidget(self.results_view)
        return shown

    def show_runs(self) -> RunsPanel:
        """The Runs tab: every run in the runs folder (listed anew when it is shown)."""
        self.output_tabs.setCurrentWidget(self.runs_panel)
        return self.runs_panel

    def load_run_settings(self, run_dir: str | Path) -> bool:
        """Puts a run's settings (its config.json) into the settings tabs. They get no file of
        their own: saving asks for one, and never writes the run's config.json."""
        try:
            config = run_config(run_dir)
        except RunDirError as error:
            self.show_error("Cannot load the run's settings", self.words.plain(str(error)), details=str(error))
            return False
        return self.show_settings(config, f"settings of run {Path(run_dir).name}")

    def run_again(self, run_dir: str | Path) -> bool:
        """Trains a new run with exactly a run's settings, which the settings tabs then show."""
        if not self._ready_to_start(check_settings=False) or not self.load_run_settings(run_dir):
            return False
        self._reproducing = Path(run_dir)
        started = self.start_training()
        if not started:
            self._reproducing = None
        return started

    def open_search_dialog(self) -> SearchDialog:
        """The Search dialog (one per window, kept with its last search while hidden)."""
        if self.search_dialog is None:
            self.search_dialog = SearchDialog(self, self)
        self.search_dialog.show()
        self.search_dialog.raise_()
        self.search_dialog.activateWindow()
        return self.search_dialog

    def start_search(self, out_dir: Path, trials: int, space: dict, options: dict) -> bool:
        """Starts a hyperparameter search of the current settings in the engine process; refused
        while a job runs or with invalid settings. ``space`` in SPACE.json form."""
        if not self._ready_to_start():
            return False
        self.lifecycle.start_search(self.config.copy(), out_dir, trials, space, options)
        self.log.add(f"Starting a search of {trials} trials in {out_dir}")
        self._update_actions()
        self.statusBar().showMessage("Search started.", 3000)
        return True

    def show_settings(self, config: Config, origin: str) -> bool:
        """Puts ``config`` into the settings tabs with no file of its own (saving asks for one);
        ``origin`` names where it came from in the title. Unsaved changes are asked about first."""
        if not self.confirm_unsaved_changes():
            return False
        self.document.show_run_config(config, origin)
        self.document.origin = origin
        self.document.changed.emit()  # the title names where the settings came from
        self.statusBar().showMessage(f"Loaded the {origin} into the settings tabs (save them to keep them "
                                     "as a file).", 8000)
        return True

    def _on_resume_run_triggered(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Resume run", str(self.data_panel.runs_dir()))
        if folder:
            self.resume_run(folder)

    def run_tool(self, name: str) -> bool:
        """Runs a sanity tool on the current settings in the engine process; its hints
        and summary land in the Hints list (the range test also opens its plot)."""
        if not self._ready_to_start():
            return False
        self.log.add(f"Running the tool: {TOOL_TITLES[name]}")
        self.lifecycle.run_tool(name, self.config.copy())
        self._update_actions()
        return True

    def stop_training(self) -> None:
        if self.lifecycle.stop(deadline=self._close_requested):
            self.progress.stopping()
            self.statusBar().showMessage("Stopping after the current batch; the best model is kept.")
            self._update_actions()

    def _on_lifecycle_began(self, kind: str, subject: Config | str) -> None:
        self.hints.clear()
        if kind == "tool":
            self.progress.start_tool(TOOL_TITLES[subject])
            self.output_tabs.setCurrentWidget(self.hints_panel)
            return
        self.result_panel.show_running({"resume": "Resuming…", "search": "Searching…"}.get(kind, "Running…"))
        self.plots.start_run()
        self.progress.start(planned_epochs(subject))

    def _on_lifecycle_event(self, event: Event) -> None:
        if self.lifecycle.job_kind == "tool":
            self._show_tool_event(event)
            return
        searching = self.lifecycle.job_kind == "search"
        if searching:  # the Search dialog shows the trials; each trial's run shows here
            if isinstance(event, TrialStarted):
                self.hints.clear()
                self.progress.start(event.epochs)
            if line := search_log_line(event, self.words):
                self.log.add(line)
        self.plots.handle_event(event)
        self.log.handle_event(event)
        self.progress.handle_event(event)
        if isinstance(event, RunStarted):
            self.device_label.setText(f"Device: {event.device}")
        elif isinstance(event, Hint):
            self.hints.add_hint(event)
            if event.severity in ("warning", "error"):
                self.statusBar().showMessage(f"Hint: {self.words.plain(event.title)}", 8000)
        elif isinstance(event, (Finished, Failed)) and not searching:
            self.result_panel.show_result(event)
            self.output_tabs.setCurrentWidget(self.result_panel)
            if isinstance(event, Finished) and event.run_dir and event.best_epoch > 0:
                self.results_view.show_run(event.run_dir)
                self.predict_panel.set_run(event.run_dir)

    def _on_lifecycle_replayed(self, event: Event) -> None:
        self.plots.handle_event(event)

    def _show_tool_event(self, event: Event) -> None:
        self.log.handle_event(event)
        if isinstance(event, Hint):
            self.hints.add_hint(event)
        elif hasattr(event, "message") and not isinstance(event, Failed):
            self.progress.tool_message(event.message)

    def _show_tool_outcome(self, outcome: ToolResult | Failed) -> None:
        if isinstance(outcome, Failed):
            self.progress.tool_done("Failed", self.words.plain(outcome.message))
            self.show_error("The tool failed", self.words.plain(outcome.message),
                            details=(outcome.details or outcome.message))
            return
        summary = summary_hint(outcome.tool, outcome.result)
        self.progress.tool_done(f"{TOOL_TITLES.get(outcome.tool, outcome.tool)}: done",
                                self.words.plain(summary.title) if summary is not None else "")
        if summary is not None:
            self.hints.add_hint(summary)
        if outcome.tool == "lr_range_test" and not outcome.result.get("stopped"):
            self.show_lr_range_result(outcome.result)

    def show_lr_range_result(self, result: dict) -> LRRangeDialog:
        """The range test's plot, with its marker at the suggested rate (non-modal)."""
        if self.lr_dialog is not None:
            self.lr_dialog.close()
        self.lr_dialog = LRRangeDialog(result, self)
        self.lr_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.lr_dialog.apply_requested.connect(self._on_hints_fix_requested)
        self.lr_dialog.destroyed.connect(self._on_lr_dialog_destroyed)
        self.lr_dialog.show()
        return self.lr_dialog

    def _on_lr_dialog_destroyed(self) -> None:
        self.lr_dialog = None

    def _on_lifecycle_errored(self, message: str) -> None:
        # The Failed outcome that follows carries the same message to the error dialog.
        self.log.add(message, "error")

    def _on_lifecycle_ended(self, kind: str, outcome: Any) -> None:
        if kind == "tool":
            self._show_tool_outcome(outcome)
        elif kind == "search":  # the Search dialog says how it went (and any failure)
            self.runs_panel.mark_stale()
            if isinstance(outcome, SearchFinished):
                self.statusBar().showMessage(f"Search {outcome.stop_reason}.", 8000)
        else:
            if self.lifecycle.resumable_run_dir:
                self.log.add("The run can be resumed from its last completed epoch (Run > Resume).")
            if isinstance(outcome, Failed):
                self.show_error("Training failed", self.words.plain(outcome.message),
                                details=(outcome.message + "\n\n" + (outcome.details or "") + "\n\n"
                                         + self.log.toPlainText()[-6000:]))
            elif isinstance(outcome, Finished):
                self.statusBar().showMessage(f"Run finished: {outcome.stop_reason}.", 8000)
            self._report_reproduction(outcome)
        self.run_finished.emit(outcome)

    def _report_reproduction(self, outcome: Event) -> None:
        """After Run again: the Log says whether the new run reproduced the old one, or what differs."""
        source, self._reproducing = self._reproducing, None
        if source is None or not isinstance(outcome, Finished) or outcome.stop_reason == "stopped":
            return
        for line in reproduction_report(source, outcome.run_dir):
            self.log.add(line)

    def _on_lifecycle_idle(self) -> None:
        self._update_actions()
        if self._close_requested:
            QTimer.singleShot(0, self.close)
        elif self.lifecycle.take_restart():
            self.start_training()

    def _on_lifecycle_killed(self) -> None:
        self.log.add("The run did not stop in time; the training process was ended.", "warning")

    def _on_hints_fix_requested(self, fix: dict) -> bool:
        try:
            self.document.apply_fix(fix)
        except ConfigError as error:
            self.show_error("Cannot apply the suggestion", self.words.plain(str(error)), details=str(error))
            return False
        self.statusBar().showMessage("Applied: " + describe_fix(fix, self.words), 8000)
        self.log.add(f"Applied to the settings: {describe_fix(fix, self.words)} ({describe_fix_for_log(fix)})")
        return True

    def _on_hints_restart_requested(self, fix: dict) -> None:
        """Applies the fix, stops the current run (its best model is kept) and starts anew."""
        if not self._on_hints_fix_requested(fix):
            return  # the fix was refused (an error dialog says why)
        if self.lifecycle.restart_after_stop():
            self.stop_training()
        else:
            self.start_training()

    # -- errors ---------------------------------------------------------------------------
    def show_error(self, title: str, message: str, details: str = "") -> None:
        """A non-blocking error dialog; the window stays usable behind it."""
        dialog = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, self)
        dialog.setObjectName("errorDialog")
        if details.strip():
            dialog.setDetailedText(details.strip())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.error_dialog = dialog
        dialog.open()

    # -- window events ----------------------------------------------------------------------
    def confirm_close_during_training(self) -> bool:
        answer = QMessageBox.question(
            self, "Training is running",
            "A run is in progress. Stop it (the best model so far is kept) and close?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def ask_save_changes(self) -> QMessageBox.StandardButton:
        """Save, Discard or Cancel for a settings file with unsaved changes."""
        name = self.document.display_name()
        return QMessageBox.question(
            self, "Unsaved changes",
            f"The settings have changed since {name} was saved. Save the changes to {name}?\n\n"
            f"Discard leaves {name} as it is; the app starts from it next time.",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)

    def confirm_unsaved_changes(self, *, closing: bool = False) -> bool:
        """Before the settings are replaced or the window closes: False to stay.

        Only settings that have a file are asked about: settings without one are never
        lost, since each session's settings come back at the next start.
        """
        if self.document.path is None or not self.document.is_dirty():
            return True
        answer = self.ask_save_changes()
        if answer == QMessageBox.StandardButton.Save:
            return self.save_config_file(self.document.path)
        if answer == QMessageBox.StandardButton.Discard:
            if closing:
                self._store_session(discard_changes=True)
            return True
        return False

    def _store_session(self, *, discard_changes: bool = False) -> None:
        try:
            self.document.store_session(discard_changes=discard_changes)
        except OSError as error:
            self._on_document_session_failed(str(error))

    def _on_document_session_failed(self, message: str) -> None:
        if message != self._session_error:  # once, not at every change
            self._session_error = message
            self.log.add(f"The settings cannot be kept for the next start: {message}", "warning")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if not self._close_answered:
            if not self.confirm_unsaved_changes(closing=True):
                event.ignore()
                return
            self._close_answered = True
            if not self.document.is_dirty() or self.document.path is None:
                self._store_session()
        if self.is_running():
            if not self._close_requested:
                if not self.confirm_close_during_training():
                    self._close_answered = False  # the window stays: a later close asks again
                    event.ignore()
                    return
                self._close_requested = True
                self.runs.closing = True  # no warm engine for a next run
                self.stop_training()
                self.statusBar().showMessage("Stopping the run before closing…")
            event.ignore()  # closes for real when the thread has finished
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue(RUNS_DIR_KEY, self.data_panel.runs_dir_edit.text())
        self.settings.sync()
        for form in self.forms:
            tasks = getattr(form, "tasks", None)
            if tasks is not None:
                tasks.shutdown()
        self.tasks.shutdown()
        self.results_view.shutdown()
        self.predict_panel.shutdown()
        self.runs_panel.shutdown()
        self.split_preview.shutdown()
        engine_calls.shutdown()
        self.runs.shutdown()
        if self._gc_held:
            self._gc_held = False
            GuiThreadGarbageCollection.release()
        event.accept()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        """Follows a light/dark switch of the system palette while the app runs."""
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            configure_pyqtgraph()
            self.plots.apply_palette()
            for plot in (self.optimizer_panel.plot, self.data_panel.count_plot):
                apply_palette(plot)
        super().changeEvent(event)

    def _drop_to_predict(self, event: QDragEnterEvent | QDropEvent) -> bool:
        """While the Predict tab is shown, dropped images and folders are for it (a config
        file still loads as settings)."""
        if self.output_tabs.currentWidget() is not self.predict_panel:
            return False
        paths = dropped_paths(event.mimeData())
        return bool(paths) and not all(p.lower().endswith(".json") for p in paths)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self._drop_to_predict(event) or _dropped_path(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        """A folder (or an image inside a class folder) becomes the data; a .json loads.
        While the Predict tab is shown, images and folders go to it instead."""
        if self._drop_to_predict(event):
            self.predict_panel.add_paths(dropped_paths(event.mimeData()))
            event.acceptProposedAction()
            return
        path = _dropped_path(event)
        if path is None:
            return
        if path.suffix.lower() == ".json" and path.is_file():
            self.load_config_file(path)
        else:
            self.data_panel.set_folder(str(path))
            self.settings_tabs.setCurrentIndex(0)
        event.acceptProposedAction()


def _dropped_path(event: QDragEnterEvent | QDropEvent) -> Path | None:
    urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
    for url in urls:
        path = Path(url.toLocalFile())
        if path.is_dir() or (path.is_file() and path.suffix.lower() == ".json"):
            return path
        if path.is_file() and path.parent.parent.is_dir():
            return path.parent.parent  # an image dropped from a class folder
    return None

"""The window's one job at a time: a new run, a resumed run, a sanity tool or a search.

``RunLifecycle`` owns what the window would otherwise juggle: what kind of job runs, the
config it runs with, which finished run can be resumed, the epochs a resume replays into
the plots, and an "apply and restart" that waits for the current run to end. It asks the
engine (``training.api``) about run folders and never reads one itself. The window shows
what it signals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from gui.run_control import RunController
from gui.worker import Job, Runner, TrainingWorker
from training.api import Config, ResumeCheck, check_resume, next_run_dir, resume_problem
from training.events import EpochEnd, Event, RunStarted

EPOCH_KEYS = ("phase", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
              "seconds", "images_per_second")


class RunLifecycle(QObject):
    """Starts, resumes, stops and restarts the window's jobs; one at a time."""

    began = Signal(str, object)   # kind ("train", "resume", "tool", "search"), its Config or tool name
    event = Signal(object)        # an engine event of the current job
    replayed = Signal(object)     # after a resume's RunStarted: an EpochEnd of an earlier epoch
    ended = Signal(str, object)   # kind, the outcome (Finished, Failed or the tool's result)
    errored = Signal(str)         # the job could not run; its Failed outcome follows
    idle = Signal()               # no job runs any more: a new one may start
    killed = Signal()             # a stop took too long and the engine process was ended

    def __init__(self, *, runner: Runner | None = None, prewarm: bool = False,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runs = RunController(runner=runner, prewarm=prewarm, parent=self)
        self.runs.event.connect(self._on_runs_event)
        self.runs.errored.connect(self.errored)
        self.runs.finished.connect(self._on_runs_finished)
        self.runs.idle.connect(self.idle)
        self.runs.killed.connect(self.killed)
        self.job_kind = ""                    # "train", "resume", "tool" or "search" while a job runs
        self.last_run_config: Config | None = None
        self.run_started_event: RunStarted | None = None  # what the engine said it runs
        self.resumable_run_dir = ""           # the last run, when it stopped with a checkpoint
        self._resume_history: list[dict[str, Any]] = []
        self._restart_pending = False

    @property
    def worker(self) -> TrainingWorker | None:
        return self.runs.worker

    def is_running(self) -> bool:
        return self.runs.is_running()

    def stop_requested(self) -> bool:
        return self.runs.stop_requested()

    # -- starting ----------------------------------------------------------------------------
    def start_run(self, config: Config, runs_dir: Path) -> Path:
        """Starts a new run in a new folder under ``runs_dir``; returns that folder.

        Raises:
            OSError: ``runs_dir`` cannot be created.
        """
        run_dir = next_run_dir(runs_dir, config.model.backbone)
        runs_dir.mkdir(parents=True, exist_ok=True)
        self._begin("train", config, [])
        self.runs.start(config, run_dir)
        return run_dir

    def resume_run(self, run_dir: str | Path) -> ResumeCheck:
        """Continues a stopped run in its folder with its own config; nothing starts when the
        returned check has a ``problem``."""
        check = check_resume(run_dir)
        if not check.problem:
            self._begin("resume", check.config, check.history)
            self.runs.start_job(Job("resume", run_dir=str(run_dir)))
        return check

    def run_tool(self, name: str, config: Config) -> None:
        self.job_kind = "tool"
        self.began.emit("tool", name)
        self.runs.start_job(Job("tool", config=config, tool=name))

    def start_search(self, config: Config, out_dir: Path, trials: int, space: dict[str, Any],
                     options: dict[str, Any]) -> None:
        """Starts a hyperparameter search of ``config`` into ``out_dir`` (``training.search``):
        ``space`` in SPACE.json form, ``options`` the fields of ``SearchOptions``."""
        self._begin("search", config, [])
        self.runs.start_job(Job("search", config=config, run_dir=str(out_dir), trials=trials,
                                space=dict(space), options=dict(options)))

    def _begin(self, kind: str, config: Config, history: list[dict[str, Any]]) -> None:
        self.job_kind = kind
        self.last_run_config = config
        self.resumable_run_dir = ""
        self.run_started_event = None
        self._resume_history = history
        self.began.emit(kind, config)

    # -- stopping and restarting -----------------------------------------------------------------
    def stop(self, *, deadline: bool = False) -> bool:
        """Asks the job to stop after its batch (False: none runs, or already asked).
        ``deadline`` ends the engine process if it takes too long."""
        if not self.is_running() or self.stop_requested():
            return False
        self.runs.stop(deadline=deadline)
        return True

    def restart_after_stop(self) -> bool:
        """Remembers to start a new run once the current one has ended; False when none runs
        (start now)."""
        self._restart_pending = self.is_running()
        return self._restart_pending

    def take_restart(self) -> bool:
        """True once after the run that a restart waited for has ended."""
        pending, self._restart_pending = self._restart_pending, False
        return pending

    # -- the engine's signals --------------------------------------------------------------------
    def _on_runs_event(self, event: Event) -> None:
        self.event.emit(event)
        if self.job_kind != "tool" and isinstance(event, RunStarted):
            self.run_started_event = event
            for row in self._resume_history:  # the epochs before the resume, as they were
                self.replayed.emit(epoch_event(row))

    def _on_runs_finished(self, outcome: Any) -> None:
        kind, self.job_kind = self.job_kind, ""
        run_dir = getattr(outcome, "run_dir", "") if kind != "tool" else ""
        if run_dir and not resume_problem(run_dir):
            self.resumable_run_dir = run_dir
        self.ended.emit(kind, outcome)


def epoch_event(row: dict[str, Any]) -> EpochEnd:
    """A row of a checkpoint's history as the EpochEnd event it once was."""
    values = {key: row.get(key) for key in EPOCH_KEYS}
    values["phase"] = values["phase"] or ""
    values["epoch"] = int(values["epoch"] or 0)
    return EpochEnd(epochs=0, **values)

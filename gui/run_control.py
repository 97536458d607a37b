"""One training run at a time: the worker, its QThread, a warm engine process, the deadline.

``RunController`` lives in the GUI thread. It re-emits the worker's queued signals, so
the window only ever handles them in the GUI thread, and it owns the lifetimes that are
easy to get wrong: the QThread must end before it is dropped, a stop that hangs ends the
child process after ``STOP_TIMEOUT_MS``, and a pre-started engine process is killed
when the app closes.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from gui.worker import Job, Runner, TrainingWorker, start_worker
from training.api import Config
from training.service.client import EngineProcess

STOP_TIMEOUT_MS = 60_000  # a graceful stop that takes longer than this ends the child


class RunController(QObject):
    """Starts, stops and tracks the single training run of a window."""

    event = Signal(object)      # every engine event
    errored = Signal(str)       # the worker could not run the engine
    finished = Signal(object)   # the job's outcome: Finished, Failed or ToolResult
    idle = Signal()             # the thread has ended; a new run may start
    killed = Signal()           # a stop took too long and the engine process was ended

    def __init__(self, *, runner: Runner | None = None, prewarm: bool = False,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        # prewarm: keep a training process that has already imported TensorFlow ready
        # for the next Start (saves its 5-7 s import; costs ~0.5 GB while idle).
        self.prewarm = prewarm and runner is None
        self.warm_engine: EngineProcess | None = None
        self.worker: TrainingWorker | None = None
        self.thread: QThread | None = None
        self.closing = False
        self._deadline = QTimer(self, singleShot=True, interval=STOP_TIMEOUT_MS)
        self._deadline.timeout.connect(self._on_deadline_timeout)

    def is_running(self) -> bool:
        return self.thread is not None

    def stop_requested(self) -> bool:
        return self.worker is not None and self.worker.stop_requested

    def start(self, config: Config, run_dir: Path) -> None:
        self.start_job(Job("train", config=config, run_dir=str(run_dir)))

    def start_job(self, job: Job) -> None:
        """Runs a new run, a resumed run or a sanity tool (one at a time)."""
        # A stand-in runner needs no engine process: the warm one stays for a real run.
        engine = self._take_warm_engine() if self.runner is None else None
        self.worker = TrainingWorker(job, runner=self.runner, engine=engine)
        self.worker.event.connect(self._on_worker_event)
        self.worker.errored.connect(self._on_worker_errored)
        self.worker.returned.connect(self._on_worker_returned)
        self.thread = start_worker(self.worker, self._on_thread_finished)

    def stop(self, *, deadline: bool = False) -> None:
        """Asks the run to stop after its batch; ``deadline`` also arms the kill timer."""
        if self.worker is not None:
            self.worker.cancel()
            if deadline:
                self._deadline.start()

    def spawn_warm_engine(self) -> None:
        if self.prewarm and self.warm_engine is None and not self.closing:
            try:
                self.warm_engine = EngineProcess()
            except OSError:
                pass  # the next run starts its own engine and reports why it cannot

    def shutdown(self) -> None:
        """Called when the window closes (no run in progress): ends the warm engine."""
        self.closing = True
        engine = self._take_warm_engine()
        if engine is not None:
            engine.close()

    def _take_warm_engine(self) -> EngineProcess | None:
        engine, self.warm_engine = self.warm_engine, None
        if engine is not None and engine.poll() is not None:
            engine.close()
            return None  # it died while waiting (e.g. killed): start a fresh one
        return engine

    @Slot(object)
    def _on_worker_event(self, event: object) -> None:
        self.event.emit(event)

    @Slot(str)
    def _on_worker_errored(self, message: str) -> None:
        self.errored.emit(message)

    @Slot(object)
    def _on_worker_returned(self, outcome: object) -> None:
        self.finished.emit(outcome)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread, self.thread = self.thread, None
        if thread is not None:
            # finished() is emitted from the thread just before it ends: wait for the end,
            # or dropping the last reference would destroy a still-running QThread.
            thread.wait()
        self.worker = None
        self._deadline.stop()
        self.spawn_warm_engine()
        self.idle.emit()

    def _on_deadline_timeout(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.killed.emit()

"""The training worker: a thin Qt wrapper, in superqt's style, around the engine client.

A worker runs one ``Job``: a new run (``train``), the continuation of a stopped run in
its folder (``resume``), one of the engine's sanity tools (``tool``) or a hyperparameter
search (``search``). By default it
drives an engine child process through ``training.service.client.EngineProcess``; with
``runner=`` it calls an engine function in its own thread instead (tests use this with
stand-in engines: ``runner(config, run_dir=, on_event=, stop=)`` trains,
``runner.resume(run_dir, on_event=, stop=)`` resumes and
``runner.tool(name, config, on_event=, stop=)`` returns a tool's result as a dict and
``runner.search(config, out_dir=, trials=, space=, options=, on_event=, stop=)`` searches).

Signals (superqt's ``WorkerBase`` set), all delivered queued to GUI-thread slots:

- ``started()``: the job began;
- ``event(object)``: one ``training.events`` event (superqt's ``yielded``);
- ``returned(object)``: the job's outcome, its ``Finished``, ``Failed``, ``ToolResult`` or
  ``SearchFinished`` (never None: a job that ended without one gets a ``Failed`` made up here);
- ``errored(str)``: the job could not be run (the engine did not start, or the runner
  raised); ``returned`` still follows, with a ``Failed`` saying the same;
- ``finished()``: the worker is done (after ``returned``).

``cancel()`` is cooperative: it asks the engine to stop after its current batch (the best
model is kept), and ``returned`` arrives as usual. ``kill()`` ends the engine process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from training.api import Config
from training.events import Event, Failed
from training.service.client import ENGINE_UNAVAILABLE, EngineProcess, JobOutcome, user_message
from training.service.messages import (
    Request,
    ResumeRequest,
    SearchRequest,
    ToolRequest,
    ToolResult,
    TrainRequest,
)

Runner = Callable[..., Any]


@dataclass(frozen=True)
class Job:
    """What one worker does: ``train`` (config, run_dir), ``resume`` (run_dir), ``tool``
    (tool, config) or ``search`` (config, run_dir: the search folder, trials, space in
    SPACE.json form, options: ``SearchOptions`` fields)."""

    kind: str
    config: Config | None = None
    run_dir: str = ""
    tool: str = ""
    trials: int = 0
    space: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def request(self) -> Request:
        """The message the engine process receives."""
        if self.kind == "resume":
            return ResumeRequest(run_dir=self.run_dir)
        if self.kind == "tool":
            return ToolRequest(tool=self.tool, config=self.config.to_dict())
        if self.kind == "search":
            return SearchRequest(config=self.config.to_dict(), out_dir=self.run_dir, trials=self.trials,
                                 space=dict(self.space), options=dict(self.options))
        return TrainRequest(config=self.config.to_dict(), run_dir=self.run_dir)


class TrainingWorker(QObject):
    """Runs one job; move it to a QThread (``start_worker``) and start."""

    started = Signal()
    event = Signal(object)
    returned = Signal(object)
    errored = Signal(str)
    finished = Signal()

    def __init__(self, job: Job, *, runner: Runner | None = None, engine: EngineProcess | None = None) -> None:
        super().__init__()
        self.job = job
        self._runner = runner
        self._engine = engine
        self._stop = threading.Event()
        self._watch = JobOutcome(search=job.kind == "search")

    def cancel(self) -> None:
        """Asks the job to stop after the current batch (thread-safe, returns at once)."""
        self._stop.set()
        engine = self._engine
        if engine is not None:
            engine.stop()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def kill(self) -> None:
        """Last resort when a graceful stop took too long: ends the engine process."""
        engine = self._engine
        if engine is not None:
            engine.kill()

    @Slot()
    def run(self) -> None:
        self.started.emit()
        try:
            if self._runner is not None:
                self._run_runner()
            else:
                self._run_engine()
        except Exception as error:  # noqa: BLE001  (reported to the user, never swallowed)
            kind = ENGINE_UNAVAILABLE if self._runner is None and isinstance(error, OSError) \
                else type(error).__name__
            message = user_message(kind, str(error))
            self.errored.emit(message)
            self._emit(Failed(message=message, error_type=kind, run_dir=self.job.run_dir))
        finally:
            if self._engine is not None:
                self._engine.close()
        if self._watch.item is None:
            self._emit(Failed(message="The training engine ended without reporting a result.",
                              error_type="NoResult", run_dir=self.job.run_dir))
        # Never None through an ``object`` signal across threads (PySide6 refcount bug).
        self.returned.emit(self._watch.item)
        self.finished.emit()

    def _run_engine(self) -> None:
        if self._engine is None:
            self._engine = EngineProcess()
        if self._stop.is_set():
            self._engine.stop()  # a cancel that came before the engine existed
        for item in self._engine.run(self.job.request()):
            self._emit(item)

    def _run_runner(self) -> None:
        job, runner = self.job, self._runner
        if job.kind == "resume":
            runner.resume(job.run_dir, on_event=self._emit, stop=self._stop)
        elif job.kind == "tool":
            result = runner.tool(job.tool, job.config, on_event=self._emit, stop=self._stop)
            self._emit(ToolResult(tool=job.tool, result=dict(result)))
        elif job.kind == "search":
            runner.search(job.config, out_dir=job.run_dir, trials=job.trials, space=dict(job.space),
                          options=dict(job.options), on_event=self._emit, stop=self._stop)
        else:
            runner(job.config, run_dir=job.run_dir, on_event=self._emit, stop=self._stop)

    def _emit(self, item: Event | ToolResult) -> None:
        self._watch.see(item)
        self.event.emit(item)


def start_worker(worker: TrainingWorker, on_finished: Callable[[], None] | None = None) -> QThread:
    """Moves ``worker`` to a new QThread and starts it; the thread quits when it finishes.

    ``on_finished`` is connected to the thread's ``finished`` before it starts: a job that
    ends at once (a stand-in engine, a refused request) may finish before the caller's next
    line, and a ``finished`` emitted before anyone listened would leave the window believing
    forever that a job runs."""
    thread = QThread()
    thread.setObjectName("trainingThread")
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: quit() is thread-safe, and a GUI thread blocked in QThread.wait() could not
    # run a queued call.
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    if on_finished is not None:
        thread.finished.connect(on_finished)
    thread.start()
    return thread

"""The training worker: a QObject that runs one training run in a QThread.

A worker runs one ``Job``: a new run (``train``), the continuation of a stopped run in
its folder (``resume``), or one of the engine's sanity tools (``tool``). By default it
drives the engine in a child process (``training.service.child``) and turns the JSON lines it
streams into event objects; with ``runner=`` it calls an engine function in its own
thread instead (tests use this with stand-in engines: ``runner(config, run_dir=,
on_event=, stop=)`` trains, ``runner.resume(run_dir, on_event=, stop=)`` resumes and
``runner.tool(name, config, on_event=, stop=)`` returns a tool's result as a dict).

Signals (named like superqt's thread workers), all delivered queued to GUI-thread slots:

- ``started()``: the run began;
- ``event(object)``: one ``training.events`` event;
- ``finished(object)``: the job ended; its ``Finished``, ``ToolFinished`` or ``Failed``
  event (never None: a job that ended without reporting gets a ``Failed`` made up here);
- ``errored(str)``: the worker itself failed (the engine could not be started); a
  ``Failed`` event with the same message follows in ``finished``.

``cancel()`` only sets the stop flag: the engine finishes its batch and keeps the best
model, then ``finished`` arrives as usual.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from training.api import Config
from training.events import Event, Failed, Finished, event_from_dict
from training.service.child import STOP_COMMAND, TOOL_RESULT

PROJECT_ROOT = Path(__file__).resolve().parent.parent
Runner = Callable[..., Any]


@dataclass(frozen=True)
class Job:
    """What one worker does: ``train`` (config, run_dir), ``resume`` (run_dir) or
    ``tool`` (tool, config)."""

    kind: str
    config: Config | None = None
    run_dir: str = ""
    tool: str = ""

    def request(self) -> dict[str, Any]:
        """The first line the child process reads."""
        if self.kind == "resume":
            return {"action": "resume", "run_dir": self.run_dir}
        if self.kind == "tool":
            return {"action": "tool", "tool": self.tool, "config": self.config.to_dict()}
        return {"config": self.config.to_dict(), "run_dir": self.run_dir}


@dataclass(frozen=True)
class ToolFinished:
    """A sanity tool's result, as plain values (``training.engine.sanity``'s dataclasses as dicts,
    their hints as event dicts)."""

    tool: str
    result: dict = field(default_factory=dict)


def child_command() -> list[str]:
    return [sys.executable, "-u", "-m", "training.service.child"]


def spawn_engine_process() -> subprocess.Popen:
    """Starts a child that imports the engine and waits for its request on stdin."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # stderr goes to a file: a pipe nobody reads could fill up and block the child.
    stderr = tempfile.TemporaryFile(mode="w+b", prefix="finetune-studio-engine-")
    process = subprocess.Popen(child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=stderr, env=env, cwd=os.getcwd())
    process.stderr_file = stderr  # type: ignore[attr-defined]
    return process


class TrainingWorker(QObject):
    """Runs one job (a run by default); move it to a QThread and start."""

    started = Signal()
    event = Signal(object)
    finished = Signal(object)
    errored = Signal(str)

    def __init__(self, config: Config | None, run_dir: str | Path, *, runner: Runner | None = None,
                 process: subprocess.Popen | None = None, job: Job | None = None) -> None:
        super().__init__()
        self.job = job or Job("train", config=config, run_dir=str(run_dir))
        self.config = self.job.config
        self.run_dir = self.job.run_dir
        self._runner = runner
        self._process = process
        self._stop = threading.Event()
        self._last: Event | None = None

    def cancel(self) -> None:
        """Asks the run to stop after the current batch (thread-safe, returns at once)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def kill(self) -> None:
        """Last resort when a graceful stop took too long: ends the child process."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    @Slot()
    def run(self) -> None:
        self.started.emit()
        try:
            if self._runner is not None:
                self._run_runner()
            else:
                self._run_child()
        except Exception as error:  # noqa: BLE001  (reported to the user, never swallowed)
            message = f"The training engine could not run: {type(error).__name__}: {error}"
            self.errored.emit(message)
            self._emit(Failed(message=message, error_type=type(error).__name__, run_dir=self.run_dir))
        if self._last is None:
            self._emit(Failed(message="The training engine ended without reporting a result.",
                              error_type="NoResult", run_dir=self.run_dir))
        # Never None through an ``object`` signal across threads (PySide6 refcount bug).
        self.finished.emit(self._last)

    def _run_runner(self) -> None:
        job, runner = self.job, self._runner
        if job.kind == "resume":
            runner.resume(self.run_dir, on_event=self._emit, stop=self._stop)
        elif job.kind == "tool":
            result = runner.tool(job.tool, job.config, on_event=self._emit, stop=self._stop)
            self._emit(ToolFinished(tool=job.tool, result=dict(result)))
        else:
            runner(self.config, run_dir=self.run_dir, on_event=self._emit, stop=self._stop)

    def _emit(self, event: Event | ToolFinished) -> None:
        if isinstance(event, (Finished, Failed, ToolFinished)):
            self._last = event
        self.event.emit(event)

    # -- child process ----------------------------------------------------------------
    def _run_child(self) -> None:
        process = self._process or spawn_engine_process()
        self._process = process
        process.stdin.write((json.dumps(self.job.request()) + "\n").encode())
        process.stdin.flush()
        self._pump(process)
        code = process.wait()
        if self._last is None:
            self._emit(Failed(message=self._crash_message(process, code),
                              error_type="EngineCrashed", run_dir=self.run_dir,
                              details=_tail(process)))

    def _pump(self, process: subprocess.Popen) -> None:
        """Forwards event lines until the child closes stdout; relays a stop request."""
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        stop_sent = False
        buffer = b""
        while True:
            if self._stop.is_set() and not stop_sent:
                stop_sent = self._send_stop(process)
            if not selector.select(timeout=0.1):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    self._emit(_parse_line(line))
        selector.close()

    @staticmethod
    def _send_stop(process: subprocess.Popen) -> bool:
        try:
            process.stdin.write((STOP_COMMAND + "\n").encode())
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child already ended
        return True

    def _crash_message(self, process: subprocess.Popen, code: int) -> str:
        if self._stop.is_set() and code < 0:
            return "The training process was ended because it did not stop in time."
        return (f"The training process ended unexpectedly (exit code {code}) without reporting "
                "a result. Its last messages are in the log; check the data folder and settings, "
                "then start again.")


def _parse_line(line: bytes) -> Event | ToolFinished:
    data = json.loads(line)
    if data.get("type") == TOOL_RESULT:
        return ToolFinished(tool=data.get("tool", ""), result=data.get("result") or {})
    return event_from_dict(data)


def _tail(process: subprocess.Popen, limit: int = 4000) -> str:
    stderr = getattr(process, "stderr_file", None)
    if stderr is None:
        return ""
    stderr.seek(0, os.SEEK_END)
    size = stderr.tell()
    stderr.seek(max(0, size - limit))
    return stderr.read().decode("utf-8", "replace")


def start_worker(worker: TrainingWorker) -> QThread:
    """Moves ``worker`` to a new QThread and starts it; the thread quits when it finishes."""
    thread = QThread()
    thread.setObjectName("trainingThread")
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: quit() is thread-safe, and a GUI thread blocked in QThread.wait() could not
    # run a queued call.
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    thread.start()
    return thread


"""The app's side of the engine protocol, with no Qt: spawn a child, send, read, stop, kill.

``EngineProcess`` is one child process (``python -m training.service.child``). It runs one
job (``run`` yields its events, then always an outcome; ``JobOutcome`` says which item that
is) or answers calls (``call``).
``EngineHelper`` keeps one process for calls and restarts it when it died.
``user_message`` is the one place where engine failures and crashes become the sentence
the user reads.

Reading is a plain blocking loop over the child's stdout, portable to Windows pipes: a stop
is relayed by writing ``Stop`` from the caller's thread (``stop()``), and ``kill()`` ends the
process, which ends the loop at the end of its stream.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from training.events import Event, Failed, Finished
from training.search.events import SearchFinished, TrialFinished, TrialStarted
from training.service.messages import (
    Call,
    Message,
    Progress,
    ProtocolError,
    Reply,
    Request,
    SearchRequest,
    Stop,
    ToolResult,
    decode,
    encode,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENGINE_MODULE = "training.service.child"
STDERR_TAIL_CHARS = 4000

# Failures the client detects itself (the engine's own failures carry the exception's name).
ENGINE_CRASHED = "EngineCrashed"          # the process ended without reporting an outcome
ENGINE_KILLED = "EngineKilled"            # the app ended it: a stop took too long
ENGINE_UNAVAILABLE = "EngineUnavailable"  # the process could not be started
PROTOCOL_ERROR = "ProtocolError"          # a line that is not a message of this protocol
# The engine's own errors already say what was wrong and what to do.
EXPLAINED_ERRORS = ("DataError", "ConfigError", "ValueError", "WeightsUnavailableError", "ExportError",
                    "RunDirError", "SpaceError", "SearchError", PROTOCOL_ERROR)


class EngineCallError(RuntimeError):
    """A call failed: the engine answered with an error, or its process died."""


class JobOutcome:
    """Follows a job's stream and keeps its outcome so far (None until there is one).

    A run's outcome is its ``Finished`` or ``Failed``, a tool's its ``ToolResult`` (or a
    ``Failed``). A search's is its ``SearchFinished``, or a ``Failed`` of the search itself:
    each trial is a run with a ``Finished`` or ``Failed`` of its own, after which the search
    goes on, so a trial's bounds (``TrialStarted``, ``TrialFinished``) clear the outcome.
    """

    def __init__(self, search: bool = False) -> None:
        self.search = search
        self.item: Event | ToolResult | None = None

    def see(self, item: Event | ToolResult) -> None:
        if self.search and isinstance(item, (TrialStarted, TrialFinished)):
            self.item = None
        elif isinstance(item, (Failed, SearchFinished) if self.search else (Finished, Failed, ToolResult)):
            self.item = item


def user_message(error_type: str, message: str = "", *, exit_code: int | None = None,
                 stderr_tail: str = "") -> str:
    """The sentence the user sees for an engine failure or a crash.

    Args:
        error_type: the engine's exception name, or one of the client's ``ENGINE_*`` kinds.
        message: the exception's text; for ``ENGINE_CRASHED`` what the process was doing.
        exit_code: the crashed process's exit status (negative: the signal that ended it).
        stderr_tail: the end of its stderr; its last line is quoted.
    """
    if error_type == ENGINE_CRASHED:
        text = (f"The engine process ended unexpectedly ({_describe_exit(exit_code)}) "
                f"{message or 'without reporting a result'}.")
        last = _last_line(stderr_tail)
        if last:
            text += f' Its last message: "{last}".'
        return text + " Check the data folder and settings, then try again; the details show its log."
    if error_type == ENGINE_KILLED:
        return "The training process was ended because it did not stop in time."
    if error_type == ENGINE_UNAVAILABLE:
        return (f"The engine process could not be started: {message}. Check that the app's Python "
                "environment is complete, then try again.")
    if error_type in EXPLAINED_ERRORS:
        return message
    return f"{error_type}: {message}" if message else error_type


def child_command() -> list[str]:
    """How the app starts an engine process (tests replace it with stand-ins)."""
    return [sys.executable, "-u", "-m", ENGINE_MODULE]


def spawn(command: list[str]) -> tuple[subprocess.Popen, IO[bytes]]:
    """Starts ``command`` with the project importable and stderr in a temporary file.

    Raises:
        OSError: the program could not be started.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # docs/facts.md#tensorflow-logs
    # A file, not a pipe: a pipe nobody reads could fill up and block the child.
    stderr = tempfile.TemporaryFile(mode="w+b", prefix="finetune-studio-engine-")
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=stderr, env=env)
    except OSError:
        stderr.close()
        raise
    return process, stderr


def read_tail(file: IO[bytes], limit: int = STDERR_TAIL_CHARS) -> str:
    """The last ``limit`` bytes of ``file`` as text ("" once it is closed).

    Read it after the process has ended: the child writes through the same file offset."""
    try:
        file.seek(0, os.SEEK_END)
        file.seek(max(0, file.tell() - limit))
        return file.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


class EngineProcess:
    """One engine child process, started at once (a warm engine imports TensorFlow while
    it waits). Use ``run`` or ``call`` from one thread; ``stop``, ``kill`` and ``poll``
    from any.

    Raises:
        OSError: the process could not be started.
    """

    def __init__(self, command: list[str] | None = None) -> None:
        self._process, self._stderr = spawn(command or child_command())
        self._lock = threading.Lock()  # one writer of stdin at a time
        self._request_sent = False
        self._stop_wanted = False
        self._killed = False

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.poll()

    def run(self, request: Request) -> Iterator[Event | ToolResult]:
        """Sends ``request``; yields the job's events until the process ends.

        The last item is always the job's outcome (``JobOutcome``): the engine's ``Finished``,
        ``Failed``, ``ToolResult`` or a search's ``SearchFinished``, or a ``Failed`` made up
        here when the process crashed, was killed or sent a line that is not a message of
        the protocol.
        """
        with self._lock:
            self._write(request)
            self._request_sent = True
            if self._stop_wanted:
                self._write(Stop())
        outcome = JobOutcome(search=isinstance(request, SearchRequest))
        for line in self._process.stdout:  # blocks; ends when the process ends
            if not line.strip():
                continue
            try:
                item = decode(line)
                if isinstance(item, Message) and not isinstance(item, ToolResult):
                    raise ProtocolError(f"A job does not answer with a '{item.type}' message.")
            except ProtocolError as error:
                self._process.kill()  # the stream cannot be trusted past this line
                self._process.wait()
                yield Failed(message=user_message(PROTOCOL_ERROR, str(error)), error_type=PROTOCOL_ERROR,
                             run_dir=getattr(request, "run_dir", ""), details=self.stderr_tail())
                return
            outcome.see(item)
            yield item
        code = self._process.wait()
        if outcome.item is None:
            yield self._ended_without_outcome(code, getattr(request, "run_dir", ""))

    def call(self, method: str, params: dict[str, Any] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> Any:
        """Asks one question and waits for its answer; ``Progress`` messages before it go to
        ``on_progress(done, total)``.

        Raises:
            EngineCallError: the engine answered with an error, or the process ended.
        """
        with self._lock:
            self._write(Call(method=method, params=params or {}))
        while True:
            line = self._process.stdout.readline()
            if not line:
                code = self._process.wait()
                raise EngineCallError(user_message(ENGINE_CRASHED, f"while computing '{method}'",
                                                   exit_code=code, stderr_tail=self.stderr_tail()))
            try:
                reply = decode(line)
            except ProtocolError as error:
                raise EngineCallError(user_message(PROTOCOL_ERROR, str(error))) from None
            if not isinstance(reply, Progress):
                break
            if on_progress is not None:
                on_progress(reply.done, reply.total)
        if isinstance(reply, Failed):  # the child refused the call before answering any
            raise EngineCallError(reply.message)
        if not isinstance(reply, Reply):
            raise EngineCallError(user_message(PROTOCOL_ERROR, f"A call was answered with a '{reply.type}'."))
        if reply.error:
            raise EngineCallError(reply.error)
        return reply.result

    def stop(self) -> None:
        """Asks the job to stop after its current batch (sent once the request is)."""
        with self._lock:
            self._stop_wanted = True
            if self._request_sent:
                self._write(Stop())

    def kill(self) -> None:
        """Ends the process now; ``run`` then ends with an ``ENGINE_KILLED`` failure."""
        self._killed = True
        if self._process.poll() is None:
            self._process.kill()

    def stderr_tail(self) -> str:
        """The end of the process's stderr (call it once the process has ended)."""
        return read_tail(self._stderr)

    def close(self) -> None:
        """Ends the process if it still runs and releases its pipes and stderr file."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout, self._stderr):
            try:
                stream.close()
            except OSError:
                pass  # a broken pipe to a dead process: nothing left to release

    def __enter__(self) -> EngineProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write(self, message: Message) -> None:
        try:
            self._process.stdin.write(encode(message))
            self._process.stdin.flush()
        except (OSError, ValueError):
            pass  # the process already ended: reading its stream tells how

    def _ended_without_outcome(self, code: int, run_dir: str) -> Failed:
        tail = self.stderr_tail()
        kind = ENGINE_KILLED if self._killed else ENGINE_CRASHED
        return Failed(message=user_message(kind, exit_code=code, stderr_tail=tail), error_type=kind,
                      run_dir=run_dir, details=tail)


class EngineHelper:
    """One long-lived engine process for calls, one call at a time; started on the first
    call (or ``start``), and again after it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: EngineProcess | None = None

    def start(self) -> None:
        """Starts the process ahead of its first use (it takes seconds to import Keras)."""
        with self._lock:
            self._ensure_started()

    def call(self, method: str, on_progress: Callable[[int, int], None] | None = None, **params: Any) -> Any:
        """See ``EngineProcess.call``; an ``OSError`` at start is an ``EngineCallError`` too."""
        with self._lock:
            try:
                engine = self._ensure_started()
            except OSError as error:
                raise EngineCallError(user_message(ENGINE_UNAVAILABLE, str(error))) from None
            try:
                return engine.call(method, params, on_progress)
            finally:
                if engine.poll() is not None and self._engine is engine:
                    self._engine = None
                    engine.close()

    def close(self) -> None:
        """Ends the process at once (it holds no state worth waiting for); a caller blocked
        on its answer gets an ``EngineCallError`` instead of hanging the app's exit."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    def _ensure_started(self) -> EngineProcess:
        if self._engine is None or self._engine.poll() is not None:
            self._engine = EngineProcess()
        return self._engine


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"exit code {code}, {signal.Signals(-code).name}"
        except ValueError:
            pass  # not a signal this platform names
    return f"exit code {code}"


def _last_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if len(lines[-1]) <= limit else lines[-1][:limit] + "…"

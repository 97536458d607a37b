"""The engine's child process: ``python -m training.service.child``.

Why a child process: importing TensorFlow and tracing the first training step would freeze
a window whose engine runs in one of its threads (docs/facts.md#gil-freeze), and a hard
TensorFlow crash here cannot take the window down.

The process imports the engine first, so one started ahead of time is warm. Its first
message on stdin decides what it serves (``training.service.messages``):

- a ``TrainRequest``, ``ResumeRequest``, ``ToolRequest`` or ``SearchRequest``: that one job. Its events go to
  stdout, a tool's ``ToolResult`` last; later ``Stop`` lines end the job after the current
  batch, and so does the end of stdin (the app went away). The process then exits.
- a ``Call``: a ``Reply`` for it and for every later call, until stdin ends.

Anything else is refused with a ``ProtocolError`` failure. Whatever the libraries print
goes to stderr, so stdout carries protocol lines only.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import BinaryIO

from training.events import Event, Failed
from training.service.client import PROTOCOL_ERROR, user_message
from training.service.helper import handle
from training.service.jobs import run_job
from training.service.messages import (
    REQUEST_TYPES,
    Call,
    Message,
    Progress,
    ProtocolError,
    Reply,
    Request,
    Stop,
    decode,
    encode,
)

EXIT_PROTOCOL_ERROR = 2


class Channel:
    """The protocol's stdout: one whole line per message, from any thread."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, item: Message | Event) -> None:
        line = encode(item)
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


def protocol_stdout() -> Channel:
    """Keeps the real stdout for the protocol and sends fd 1 (prints, C++ logs) to stderr."""
    stream = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return Channel(stream)


def protocol_stdin() -> BinaryIO:
    """stdin as a reader of its own: the thread that waits on it for ``Stop`` may still be
    blocked when the process exits, and Python aborts ("could not acquire lock for
    <stdin>") if that reader is ``sys.stdin``, which it closes at shutdown."""
    return os.fdopen(os.dup(0), "rb")


def lower_priority() -> None:
    """Training yields the CPU to the window: on 2 cores, TensorFlow's threads at equal
    priority delayed the GUI's timer ticks by 100-300 ms (benchmarks/gui_responsiveness.py).
    Idle CPU still goes to training, so a run is not slower when nothing else runs."""
    try:
        os.nice(10)
    except (AttributeError, OSError):
        pass  # Windows has no nice(); running at normal priority is still correct


def warm_up() -> None:
    """Imports TensorFlow and Keras now, while the user is still choosing settings."""
    try:
        import training.engine.run  # noqa: F401  (the import is the point)
    except ImportError:
        pass  # the job reports it properly when it imports the engine itself


def serve_job(request: Request, requests: BinaryIO, channel: Channel) -> int:
    stop = threading.Event()
    threading.Thread(target=_watch_for_stop, args=(requests, stop), name="stop-watcher", daemon=True).start()
    run_job(request, emit=channel.send, stop=stop)
    return 0


def serve_calls(first: Call, requests: BinaryIO, channel: Channel) -> int:
    def progress(done: int, total: int) -> None:
        channel.send(Progress(done=done, total=total))

    channel.send(handle(first, progress))
    for line in requests:
        if not line.strip():
            continue
        try:
            call = decode(line)
            if not isinstance(call, Call):
                raise ProtocolError(f"This process answers calls; it received a '{call.type}' message.")
        except ProtocolError as error:
            channel.send(Reply(error=user_message(PROTOCOL_ERROR, str(error)), error_type=PROTOCOL_ERROR))
            continue
        channel.send(handle(call, progress))
    return 0


def _watch_for_stop(requests: BinaryIO, stop: threading.Event) -> None:
    for line in requests:
        if not line.strip():
            continue
        try:
            message = decode(line)
        except ProtocolError as error:
            print(f"Ignored a line on stdin: {error}", file=sys.stderr, flush=True)
            continue
        if isinstance(message, Stop):
            stop.set()
        else:
            print(f"Ignored a '{message.type}' message: a job only takes 'stop'.", file=sys.stderr, flush=True)
    stop.set()  # stdin closed: the app quit or died


def main() -> int:
    lower_priority()
    channel = protocol_stdout()
    requests = protocol_stdin()
    warm_up()
    line = requests.readline()
    if not line.strip():
        return 0  # the app closed before asking anything
    try:
        message = decode(line)
    except ProtocolError as error:
        message = error
    if isinstance(message, Call):
        return serve_calls(message, requests, channel)
    if isinstance(message, REQUEST_TYPES):
        return serve_job(message, requests, channel)
    if not isinstance(message, ProtocolError):
        message = ProtocolError(f"The first message must be a request or a call. Received: a '{message.type}'.")
    channel.send(Failed(message=user_message(PROTOCOL_ERROR, str(message)), error_type=PROTOCOL_ERROR))
    return EXIT_PROTOCOL_ERROR


if __name__ == "__main__":
    sys.exit(main())

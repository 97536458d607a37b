"""The training process the desktop app starts: ``python -m gui.engine_child``.

Why a child process: importing TensorFlow and tracing the first training step hold the
GIL for 0.4-0.5 s at a time (FIELD_NOTES), which would freeze a window whose engine runs
in a thread of its own process. In a child process the window stays fluid, and a hard
TensorFlow crash cannot take it down.

Protocol (one JSON object a line, the same events as a run's ``events.jsonl``):

- The child imports the engine first, so a child started ahead of time is warm.
- stdin, first line: ``{"config": {...}, "run_dir": "..."}``; later lines: ``stop``.
  End of stdin (the app went away) also stops the run gracefully.
- stdout: one event a line (``Event.to_dict()``). Anything else the libraries print
  goes to stderr, so the event stream stays clean.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import TextIO

STOP_COMMAND = "stop"


def _event_stream() -> TextIO:
    """Keeps the real stdout for events and sends fd 1 (prints, C++ logs) to stderr."""
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


def _watch_stdin(stop: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == STOP_COMMAND:
            stop.set()
    stop.set()  # stdin closed: the app quit or died


def lower_priority() -> None:
    """Training yields the CPU to the window: on 2 cores, TensorFlow's threads at equal
    priority delayed the GUI's timer ticks by 100-300 ms (benchmarks/gui_responsiveness.py).
    Idle CPU still goes to training, so a run is not slower when nothing else runs."""
    try:
        os.nice(10)
    except (AttributeError, OSError):
        pass  # Windows has no nice(); running at normal priority is still correct


def main() -> int:
    lower_priority()
    events = _event_stream()
    # Warm up before the request arrives: the expensive import happens while the user
    # is still choosing settings when the app starts this process ahead of time.
    from training.api import Config, run_training
    try:
        import training.engine  # noqa: F401  (TensorFlow, Keras)
    except ImportError:
        pass  # reported properly by run_training below

    lock = threading.Lock()

    def emit(event) -> None:
        line = json.dumps(event.to_dict())
        with lock:
            events.write(line + "\n")

    request_line = sys.stdin.readline()
    if not request_line.strip():
        return 0  # the app closed before asking for a run
    request = json.loads(request_line)
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    config = Config.from_dict(request["config"])
    run_training(config, run_dir=request["run_dir"], on_event=emit, stop=stop)
    events.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The training process the desktop app starts: ``python -m training.service.child``.

Why a child process: importing TensorFlow and tracing the first training step hold the
GIL for 0.4-0.5 s at a time (FIELD_NOTES), which would freeze a window whose engine runs
in a thread of its own process. In a child process the window stays fluid, and a hard
TensorFlow crash cannot take it down.

Protocol (one JSON object a line, the same events as a run's ``events.jsonl``):

- The child imports the engine first, so a child started ahead of time is warm.
- stdin, first line, one job:
  ``{"config": {...}, "run_dir": "..."}`` trains a new run;
  ``{"action": "resume", "run_dir": "..."}`` continues a stopped run in its folder;
  ``{"action": "tool", "tool": "check_setup", "config": {...}}`` runs one of the sanity
  tools (``TOOLS``).
  Later lines: ``stop``. End of stdin (the app went away) also stops the job gracefully.
- stdout: one event a line (``Event.to_dict()``). A tool ends with one more line,
  ``{"type": "tool_result", "tool": ..., "result": {...}}`` (its result as plain values),
  or with a ``Failed`` event. Anything else the libraries print goes to stderr, so the
  event stream stays clean.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import TextIO

STOP_COMMAND = "stop"
TOOL_RESULT = "tool_result"
TOOLS = ("check_setup", "overfit_tiny_subset", "lr_range_test")
_EXPLAINED_ERRORS = ("DataError", "ConfigError", "ValueError", "WeightsUnavailableError")


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
        import training.engine.run  # noqa: F401  (TensorFlow, Keras)
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
    action = request.get("action", "train")
    if action == "resume":
        from training.api import resume_training

        resume_training(request["run_dir"], on_event=emit, stop=stop)
    elif action == "tool":
        _run_tool(request, emit, events, lock, stop)
    else:
        run_training(Config.from_dict(request["config"]), run_dir=request["run_dir"], on_event=emit, stop=stop)
    events.flush()
    return 0


def _run_tool(request: dict, emit, events: TextIO, lock: threading.Lock, stop: threading.Event) -> None:
    """Runs one sanity tool; its result goes out as a ``tool_result`` line, or a
    ``Failed`` event when it raised (bad data, bad config)."""
    import dataclasses
    import traceback

    from training import api
    from training.events import Failed

    name = request.get("tool", "")
    if name not in TOOLS:
        emit(Failed(message=f"Unknown tool {name!r}; known: {', '.join(TOOLS)}.", error_type="ValueError"))
        return
    try:
        result = getattr(api, name)(api.Config.from_dict(request["config"]), on_event=emit, stop=stop)
    except Exception as error:  # noqa: BLE001  (sent to the app, which shows it)
        kind = type(error).__name__
        # The engine's own errors already say what to do; others get their type named.
        message = str(error) if kind in _EXPLAINED_ERRORS else f"{kind}: {error}"
        emit(Failed(message=message, error_type=kind, details=traceback.format_exc()))
        return
    payload = {field.name: getattr(result, field.name) for field in dataclasses.fields(result)}
    payload["hints"] = [hint.to_dict() for hint in payload.get("hints", [])]
    line = json.dumps({"type": TOOL_RESULT, "tool": name, "result": payload})
    with lock:
        events.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main())

"""Stress and failure tests of the window's run machinery (issue 5).

- 50 start/stop cycles through the real window: every fifth goes through the real
  engine child process (TensorFlow, tiny data; about 5 s each, the child's import), the
  others through a scripted engine in the worker thread. Threads must not grow and
  memory growth must stay bounded; ``pytest -s`` prints the figures.
- A child process that crashes, before or during a run, is reported and the window
  goes on; the next run starts cleanly.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QThread

from gui.window import MainWindow
from tests.conftest import stop_run_before_close
from tests.helpers import make_tiny_dataset
from tests.test_gui_window import ScriptedEngine, no_helper_process, small_config  # noqa: F401
from training.events import Failed, Finished
from training.service import client as client_module

CYCLES = 50
REAL_EVERY = 5           # cycles 0, 5, 10, ... 45 use the real engine process
MAX_RSS_GROWTH_MB = 60


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def os_threads() -> int:
    return len(list(Path("/proc/self/task").iterdir()))


def live_qthreads() -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, QThread))


def child_processes() -> int:
    """Live (or unreaped) processes whose parent is this one."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        count += int(fields[1]) == os.getpid()
    return count


def figures() -> dict[str, float]:
    gc.collect()
    return {"python_threads": threading.active_count(), "os_threads": os_threads(),
            "qthreads": live_qthreads(), "child_processes": child_processes(),
            "rss_mb": round(rss_mb(), 1)}


@pytest.fixture
def window(qtbot, tmp_path):
    data = make_tiny_dataset(tmp_path, classes=3, per_class=8, size=32)
    config = small_config(data)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(config, settings=settings, prewarm=True)
    window.confirm_close_during_training = lambda: True
    window.data_panel.runs_dir_edit.setText(str(tmp_path / "runs"))
    qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot))
    window.show()
    return window


def start_and_stop(qtbot, window: MainWindow, real: bool, engine: ScriptedEngine):
    window.runs.runner = None if real else engine
    with qtbot.waitSignal(window.run_finished, timeout=90000) as blocker:
        assert window.start_training()
        # "As soon as it started": the engine said so (real), or a first batch (scripted).
        if real:
            qtbot.waitUntil(lambda: window.run_started_event is not None, timeout=60000)
        else:
            qtbot.waitUntil(lambda: window.plots.point_counts()["batch_loss"] >= 1, timeout=5000)
        window.stop_action.trigger()
    qtbot.waitUntil(lambda: not window.is_running(), timeout=10000)
    return blocker.args[0]


def test_50_start_stop_cycles_leak_no_threads_and_little_memory(qtbot, window):
    engine = ScriptedEngine(endless=True)
    window.runs.spawn_warm_engine()
    # One cycle of each kind first, so that what is created once (pools, caches, the
    # first TensorFlow-free imports) is in the baseline.
    for real in (True, False):
        assert isinstance(start_and_stop(qtbot, window, real, engine), Finished)
    before = figures()
    started = time.monotonic()
    reasons = []
    for cycle in range(CYCLES):
        last = start_and_stop(qtbot, window, cycle % REAL_EVERY == 0, engine)
        assert isinstance(last, Finished), getattr(last, "message", last)
        reasons.append(last.stop_reason)
        assert window.error_dialog is None
    seconds = time.monotonic() - started
    qtbot.wait(1500)  # the GUI-thread garbage collector's timer runs every second
    after = figures()
    real_cycles = len(range(0, CYCLES, REAL_EVERY))
    print(f"\n{CYCLES} start/stop cycles ({real_cycles} through the engine process) in {seconds:.1f} s")
    for key in before:
        print(f"  {key}: {before[key]} -> {after[key]}")
    sys.stdout.flush()
    assert reasons == ["stopped"] * CYCLES
    assert after["python_threads"] <= before["python_threads"]
    assert after["os_threads"] <= before["os_threads"] + 1  # a TensorFlow-free pool thread may idle
    assert after["qthreads"] <= before["qthreads"]
    assert after["child_processes"] <= before["child_processes"]  # the warm engine only
    assert after["rss_mb"] - before["rss_mb"] < MAX_RSS_GROWTH_MB
    assert window.start_action.isEnabled() and window.isVisible()


def crashing_child(after_started: bool) -> list[str]:
    """A stand-in engine process that dies by a segmentation fault, after reading its
    request (and, with ``after_started``, after reporting that the run began)."""
    started = ('print(\'{"type": "started", "run_dir": "x", "device": "CPU: crash"}\', flush=True); '
               if after_started else "")
    code = f"import os, signal, sys; sys.stdin.readline(); {started}os.kill(os.getpid(), signal.SIGSEGV)"
    return [sys.executable, "-c", code]


@pytest.mark.parametrize("after_started", [False, True])
def test_a_crashing_engine_process_is_reported_and_the_next_run_starts_cleanly(qtbot, tmp_path, monkeypatch,
                                                                                after_started):
    data = make_tiny_dataset(tmp_path, classes=3, per_class=8, size=32)
    window = MainWindow(small_config(data), settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    window.data_panel.runs_dir_edit.setText(str(tmp_path / "runs"))
    qtbot.addWidget(window, before_close_func=stop_run_before_close(qtbot))
    window.show()
    monkeypatch.setattr(client_module, "child_command", lambda: crashing_child(after_started))
    with qtbot.waitSignal(window.run_finished, timeout=30000) as blocker:
        assert window.start_training()
    last = blocker.args[0]
    assert isinstance(last, Failed) and last.error_type == "EngineCrashed"
    assert "exit code -11, SIGSEGV" in last.message
    assert window.error_dialog.isVisible() and "ended unexpectedly" in window.error_dialog.text()
    qtbot.waitUntil(lambda: not window.is_running(), timeout=5000)
    assert window.isVisible() and window.start_action.isEnabled()
    assert "ended unexpectedly" in window.result_panel.outcome.text()
    window.error_dialog.close()
    # The next run, and a runner that raises after that, start cleanly.
    window.runs.runner = ScriptedEngine()
    with qtbot.waitSignal(window.run_finished, timeout=10000) as blocker:
        assert window.start_training()
    assert isinstance(blocker.args[0], Finished) and blocker.args[0].stop_reason == "completed"
    assert window.plots.point_counts()["val_loss"] == 3
    qtbot.waitUntil(lambda: not window.is_running(), timeout=5000)
    window.runs.runner = ScriptedEngine(raise_error=True)
    with qtbot.waitSignal(window.run_finished, timeout=10000) as blocker:
        assert window.start_training()
    assert isinstance(blocker.args[0], Failed) and "engine exploded" in blocker.args[0].message
    qtbot.waitUntil(lambda: not window.is_running(), timeout=5000)
    assert window.isVisible() and window.start_action.isEnabled()

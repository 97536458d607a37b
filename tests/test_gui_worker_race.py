"""A job that ends before the window's next line still ends in the window: the thread's
``finished`` is connected before the thread starts. (Under load, a stand-in run that ended
at once left ``is_running()`` true forever, about one test run in six.)"""

from __future__ import annotations

import time

from PySide6.QtCore import QThread

from gui import worker as worker_module
from gui.run_control import RunController
from training.api import Config
from training.events import Finished


def test_a_job_that_ends_at_once_is_seen_to_end(qtbot, monkeypatch, tmp_path):
    original_start = QThread.start

    def start_then_lag(thread, *args):
        original_start(thread, *args)
        thread.wait(5000)  # the GUI thread is preempted until the job has ended
        time.sleep(0.05)

    monkeypatch.setattr(worker_module.QThread, "start", start_then_lag)

    def runner(config, *, run_dir, on_event, stop):
        on_event(Finished(run_dir=str(run_dir), stop_reason="completed", best_epoch=1))

    runs = RunController(runner=runner)
    finished = []
    runs.finished.connect(finished.append)
    runs.start(Config(), tmp_path / "run")
    qtbot.waitUntil(lambda: not runs.is_running(), timeout=5000)
    assert finished and finished[0].stop_reason == "completed"

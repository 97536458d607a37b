"""Shared pytest setup: Qt renders offscreen (no display needed).

Set before anything imports Qt; the engine tests never import Qt at all.
"""

import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def stop_run_before_close(qtbot, timeout: int = 60000):
    """A ``before_close_func`` for ``qtbot.addWidget(window, ...)``: pytest-qt closes and
    deletes the registered widgets before fixtures are torn down, and deleting a window
    whose run still goes on would leave its worker thread without a controller. This
    stops the run and waits for its thread first."""
    def stop(window) -> None:
        if window.worker is not None:
            window.worker.cancel()
            qtbot.waitUntil(lambda: not window.is_running(), timeout=timeout)
    return stop


@pytest.fixture(autouse=True)
def private_runs_root(tmp_path_factory, monkeypatch):
    """Runs named without --out go to a fresh folder per test (FINETUNE_STUDIO_RUNS), never
    into the user's data directory or the current folder."""
    root = tmp_path_factory.mktemp("runs-root")
    monkeypatch.setenv("FINETUNE_STUDIO_RUNS", str(root))
    return root


@pytest.fixture(autouse=True)
def private_qsettings(tmp_path_factory):
    """A window made without ``settings=`` reads and writes QSettings (and the last session's
    settings beside them) in a fresh folder per test, never the user's own, so nothing a
    test changes comes back in another. Engine tests never import Qt: nothing to do there."""
    if "PySide6.QtCore" not in sys.modules:
        yield None
        return
    from PySide6.QtCore import QSettings

    folder = tmp_path_factory.mktemp("qsettings")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))
    yield folder

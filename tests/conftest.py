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


# The modules that take longest (minutes each on 2 cores, `--durations`), run first: `./test.sh`
# spreads the modules over two processes (pytest-xdist, `--dist loadfile`) in the order
# collected, and a long module started last would leave the other process idle at the end.
LONG_MODULES = ("test_training_mode.py", "test_distributed.py", "test_diagnostics_scenarios.py",
                "test_search.py", "test_engine.py", "test_portable_model.py", "test_gui_stress.py",
                "test_export.py", "test_feature_cache.py", "test_hardening_cli.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = item.path.name
        return LONG_MODULES.index(name) if name in LONG_MODULES else len(LONG_MODULES)

    items.sort(key=rank)  # stable: the tests of a module keep their order


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

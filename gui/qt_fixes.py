"""Works around a PySide6 6.12 reference-counting bug on Python 3.11.

Measured here (PySide6 6.12.0, Python 3.11.7): every call of a Qt method that returns
nothing (``label.setText``, ``app.processEvents``, ``curve.setData`` ...) takes one
reference away from ``None`` without having added it, and some calls do the same to
``True``/``False``. Python 3.12 made these objects immortal, so the bug is invisible
there; on 3.11 the app aborts after a few thousand calls with
"Fatal Python error: none_dealloc: deallocating None".

The fix gives these objects what 3.12 gives them: a reference count so large that no
run can exhaust it (2**40 references; at a million leaked references a second that is
twelve days). They are never freed while the interpreter runs anyway, so nothing else
changes. It must run before the app calls Qt in earnest: ``gui/__init__.py`` does it.
"""

from __future__ import annotations

import ctypes
import sys

_EXTRA_REFERENCES = 1 << 40
_applied = False


def make_singletons_immortal() -> bool:
    """Raises the reference counts of None, True and False once (Python < 3.12 only).

    Returns:
        True when the counts were raised by this call.
    """
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every CPython object (a Py_ssize_t).
        ctypes.c_ssize_t.from_address(id(singleton)).value += _EXTRA_REFERENCES
    _applied = True
    return True


class GuiThreadGarbageCollection:
    """Runs Python's cyclic garbage collector only in the GUI thread while windows live.

    Automatic collection runs in whichever thread happens to allocate: a worker or a
    pool thread could then destroy garbage QObjects (a closed window, old curves) that
    belong to the GUI thread, which Qt answers with "Timers cannot be stopped from
    another thread" and crashes (seen in this app with the engine in a QThread). So while
    at least one window is open, automatic collection is off and a GUI-thread timer
    collects instead (the approach of pyqtgraph's ``util.garbage_collector``).
    """

    _users = 0
    _timer = None

    @classmethod
    def acquire(cls) -> None:
        import gc

        from PySide6.QtCore import QTimer

        cls._users += 1
        if cls._users == 1:
            gc.disable()
            cls._timer = QTimer()
            cls._timer.setInterval(1000)
            cls._timer.timeout.connect(cls._collect)
            cls._timer.start()

    @classmethod
    def release(cls) -> None:
        import gc

        cls._users = max(0, cls._users - 1)
        if cls._users == 0 and cls._timer is not None:
            cls._timer.stop()
            cls._timer = None
            gc.collect()
            gc.enable()

    @staticmethod
    def _collect() -> None:
        import gc

        # Generation by generation, as the automatic collector would: a full collection
        # takes ~20 ms here, so it runs only when the oldest generation is due.
        counts, thresholds = gc.get_count(), gc.get_threshold()
        if counts[0] <= thresholds[0]:
            return
        generation = 0
        if counts[1] > thresholds[1]:
            generation = 2 if counts[2] > thresholds[2] else 1
        gc.collect(generation)

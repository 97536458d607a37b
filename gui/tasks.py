"""Short background jobs (folder scans, previews, the backbone catalog) off the GUI thread.

``BackgroundTasks.submit(name, fn, *args)`` runs ``fn`` in a small thread pool and
calls ``on_done(name, result)`` or ``on_error(name, exception)`` in the GUI thread.
Only the newest job of each name reports back: a preview requested while an older one
is still computing supersedes it, so fast edits never show stale results.
"""

from __future__ import annotations

import concurrent.futures
import itertools
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal, Slot


class BackgroundTasks(QObject):
    """A thread pool whose results arrive in the GUI thread through a queued signal."""

    done = Signal(str, object)     # GUI thread only; result may be any value
    failed = Signal(str, object)
    # One tuple (name, token, result, error): PySide6 mis-counts references when None
    # itself crosses threads through an ``object`` signal argument (seen: a fatal
    # "deallocating None"), so None only ever travels inside a container.
    _finished = Signal(object)

    def __init__(self, parent: QObject | None = None, workers: int = 2) -> None:
        super().__init__(parent)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                           thread_name_prefix="gui-task")
        self._tokens = itertools.count(1)
        self._latest: dict[str, int] = {}
        self._running = 0
        self._closed = False
        # This object lives in the GUI thread, so the connection is queued when the pool
        # emits: the slot runs in the GUI thread.
        self._finished.connect(self._on_self_finished)

    def submit(self, name: str, fn: Callable[..., Any], *args: Any) -> int:
        """Runs ``fn(*args)`` in the pool; returns a token (0 once shut down: ignored)."""
        if self._closed:
            return 0
        token = next(self._tokens)
        self._latest[name] = token
        self._running += 1
        future = self._pool.submit(fn, *args)
        future.add_done_callback(lambda f: self._report(name, token, f))
        return token

    def busy(self, name: str | None = None) -> bool:
        return self._running > 0 if name is None else name in self._latest

    def _report(self, name: str, token: int, future: concurrent.futures.Future) -> None:
        if future.cancelled():
            return  # dropped by shutdown(): nobody waits for it any more
        error = future.exception()
        result = None if error else future.result()
        try:
            self._finished.emit((name, token, result, error))
        except RuntimeError:
            pass  # the window was destroyed while the job ran

    @Slot(object)
    def _on_self_finished(self, report: tuple) -> None:
        name, token, result, error = report
        self._running -= 1
        if self._latest.get(name) != token:
            return
        del self._latest[name]
        if error is not None:
            self.failed.emit(name, error)
        else:
            self.done.emit(name, result)

    def shutdown(self) -> None:
        """Drops queued jobs; running ones finish in the background (they hold no UI)."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

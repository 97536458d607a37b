"""Ctrl+C and SIGTERM during a run: stop after the batch, then abort on a second signal."""

from __future__ import annotations

import signal
import threading
from typing import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignals:
    """While a run goes on, Ctrl+C (SIGINT) and SIGTERM ask it to stop after the current batch
    (it then writes its summary and stays resumable); a second signal of either kind aborts
    at once by raising KeyboardInterrupt in the main thread.

    ``announce`` is called from the signal handler, so it must not block.
    """

    def __init__(self, announce: Callable[[str], None]):
        self.stop = threading.Event()
        self.signal_number = 0
        self._announce = announce
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignals:
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def __exit__(self, *exc_info) -> bool:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        return False

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal_number or signal.SIGINT)

    def _on_signal(self, number: int, frame) -> None:
        self.signal_number = number
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        how = "Ctrl+C" if number == signal.SIGINT else "another SIGTERM or Ctrl+C"
        received = "" if number == signal.SIGINT else "SIGTERM received. "
        message = f"{received}Stopping after this batch ({how} to abort at once) ..."
        try:
            self._announce(message)
        except RuntimeError:
            # The signal came while the main thread was writing to the same stream (a
            # reentrant call): a thread writes it once the main thread lets go of the stream.
            threading.Thread(target=self._announce_quietly, args=(message,), daemon=True).start()
        except OSError:
            pass  # the stream is gone: the stop still holds

    def _announce_quietly(self, message: str) -> None:
        try:
            self._announce(message)
        except (RuntimeError, OSError):
            pass

"""Recording a run as it goes: every event in events.jsonl, one row an epoch in metrics.csv."""

from __future__ import annotations

import csv
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, TextIO

from training.events import Event
from training.rundir.layout import EVENTS_FILE, METRICS_COLUMNS, METRICS_FILE, lstat_kind
from training.rundir.writing import atomic_path, open_for_append


class RunRecorder:
    """Writes events.jsonl and metrics.csv as events arrive; thread-safe.

    With ``hold=True`` (a resume) events are kept in memory and nothing is written until
    ``start_writing``: a resume that is refused after its checks leaves the folder as it was.
    A write that fails (a full disk) raises once; the recorder then stays silent, so the
    ``Failed`` event that follows cannot fail again.
    """

    def __init__(self, run_dir: Path, *, hold: bool = False):
        self.run_dir = run_dir
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._events: TextIO | None = None
        self._metrics_file: TextIO | None = None
        self._pending: list[Event] | None = [] if hold else None
        if not hold:
            self._open()

    def _open(self) -> None:
        metrics_path = self.run_dir / METRICS_FILE
        new_csv = lstat_kind(metrics_path) == "missing"
        self._events = open_for_append(self.run_dir / EVENTS_FILE)
        self._metrics_file = open_for_append(metrics_path, newline="")
        self._metrics = csv.writer(self._metrics_file)
        if new_csv:
            self._metrics.writerow(METRICS_COLUMNS)
            self._metrics_file.flush()

    def start_writing(self, history: list[dict[str, Any]]) -> None:
        """Ends the hold: metrics.csv restarts from ``history``, held events are written."""
        with self._lock:
            pending, self._pending = self._pending or [], None
            write_metrics_csv(self.run_dir, history)
            self._open()
        for event in pending:
            self(event)

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self._pending is not None:
                self._pending.append(event)
                return
            if self._events is None or self._events.closed or self.error is not None:
                return
            try:
                self._write(event)
            except OSError as error:
                self.error = error
                raise

    def _write(self, event: Event) -> None:
        data = event.to_dict()
        self._events.write(json.dumps(data, allow_nan=False) + "\n")
        # Per-batch lines are many and cheap to lose; everything else hits the disk now.
        if event.type != "batch":
            self._events.flush()
        if event.type == "epoch":
            self._metrics.writerow([_csv_value(data.get(column)) for column in METRICS_COLUMNS])
            self._metrics_file.flush()

    def record_quietly(self, event: Event) -> None:
        """Records ``event`` if the disk lets it (used for the last words of a failed run)."""
        try:
            self(event)
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            self._pending = None
            for handle in (self._events, self._metrics_file):
                if handle is None or handle.closed:
                    continue
                try:
                    handle.flush()
                    os.fsync(handle.fileno())
                except OSError:
                    pass  # a full disk: what could be saved was saved
                finally:
                    try:
                        handle.close()
                    except OSError:
                        pass


def write_metrics_csv(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrites metrics.csv from a metric history (a resumed run continues from it)."""
    with atomic_path(Path(run_dir) / METRICS_FILE) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(METRICS_COLUMNS)
            for row in rows:
                writer.writerow([_csv_value(row.get(column)) for column in METRICS_COLUMNS])


def _csv_value(value: Any) -> Any:
    if value is None:
        return "nan"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def fan_out(*listeners: Callable[[Event], None], on_listener_error: Callable[[Exception], None]
            ) -> Callable[[Event], None]:
    """One callback that feeds every listener; a listener's failure never stops a run."""
    def emit(event: Event) -> None:
        for listener in listeners:
            try:
                listener(event)
            except Exception as error:  # noqa: BLE001 - a broken listener must not kill training
                on_listener_error(error)
    return emit

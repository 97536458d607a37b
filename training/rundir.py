"""The run directory: everything a run leaves behind, written so that nothing is lost.

    config.json     the resolved config the run used (loadable by `main.py train`)
    labels.txt      class names, one a line, in the model's output order
    events.jsonl    every event, one JSON object a line
    metrics.csv     one row an epoch
    best.keras      the best model by the monitored validation metric
    summary.json    best epoch and metrics, why it stopped, time, device, versions

Files that are replaced (best.keras, summary.json) are written atomically: a temporary
file in the same folder, flushed and fsynced, then ``os.replace``; a crash at any instant
leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from training.events import Event

METRICS_COLUMNS = ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy",
                   "learning_rate", "seconds", "images_per_second")
BEST_MODEL = "best.keras"
_UMASK = os.umask(0)
os.umask(_UMASK)


class RunDirError(OSError):
    """The run directory cannot be created or written (permissions, disk full)."""


@contextmanager
def atomic_path(target: Path, suffix: str = "",
                verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yields a temporary path beside ``target``; on success it replaces ``target``.

    The caller writes the file at the yielded path (any writer, e.g. ``model.save``);
    ``verify(path)`` may raise to keep the old file when the new one is not sound.
    """
    target = Path(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix,
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the final file gets normal permissions
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def verify_keras_archive(path: Path) -> None:
    """Raises OSError unless ``path`` is a complete .keras zip (every member's CRC checked)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as error:
        raise OSError(f"the model file just written is damaged ({error}); the previous one is kept") from None
    if broken or not {"config.json", "model.weights.h5"} <= names:
        raise OSError("the model file just written is incomplete; the previous one is kept")


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: Path, data: Any) -> None:
    write_text_atomic(target, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported on every platform (Windows); the rename itself is atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def prepare_run_dir(run_dir: str | Path) -> Path:
    """Creates the run directory; refuses one that already holds a run.

    Raises:
        RunDirError: it holds a run already, or cannot be created or written.
    """
    path = Path(run_dir).expanduser().resolve()
    if (path / "events.jsonl").exists():
        raise RunDirError(
            f"The run folder {path} already holds a run (events.jsonl exists). "
            "Choose a new folder with --out, or delete the old run first.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise RunDirError(
            f"Cannot write the run folder {path}: {error.strerror or error}. "
            "Choose a folder you can write to (--out), and check that the disk is not full.") from None
    return path


class RunRecorder:
    """Writes events.jsonl and metrics.csv as events arrive; thread-safe."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._lock = threading.Lock()
        self._events = open(run_dir / "events.jsonl", "a", encoding="utf-8")
        new_csv = not (run_dir / "metrics.csv").exists()
        self._metrics_file = open(run_dir / "metrics.csv", "a", encoding="utf-8", newline="")
        self._metrics = csv.writer(self._metrics_file)
        if new_csv:
            self._metrics.writerow(METRICS_COLUMNS)
            self._metrics_file.flush()

    def __call__(self, event: Event) -> None:
        data = event.to_dict()
        with self._lock:
            if self._events.closed:
                return
            self._events.write(json.dumps(data, allow_nan=False) + "\n")
            # Per-batch lines are many and cheap to lose; everything else hits the disk now.
            if event.type != "batch":
                self._events.flush()
            if event.type == "epoch":
                self._metrics.writerow([_csv_value(data.get(column)) for column in METRICS_COLUMNS])
                self._metrics_file.flush()

    def close(self) -> None:
        with self._lock:
            for handle in (self._events, self._metrics_file):
                if not handle.closed:
                    handle.flush()
                    os.fsync(handle.fileno())
                    handle.close()


def write_metrics_csv(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrites metrics.csv from a metric history (a resumed run continues from it)."""
    with atomic_path(Path(run_dir) / "metrics.csv") as tmp:
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


def read_events(run_dir: str | Path) -> list[dict[str, Any]]:
    """The events of a run as dicts (for tools and tests)."""
    lines = (Path(run_dir) / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]

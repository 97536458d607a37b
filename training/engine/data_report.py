"""data_report.json: the images a run used, and every file it skipped (and why) or ignored.

It also records the test set the run held out and never used (``test_counts``, and
``test_dir`` when the test images are a folder of their own), so that a later evaluation
can check that it scores the same images.

The scan's report is written before training; files that fail to decode during training
are added as the epochs find them. A resume writes nothing until its checks passed, so the
file is then written once it may be (``start_writing``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.data.pipeline import describe_failures
from training.events import EventCallback, Log
from training.files import display_path
from training.rundir import DATA_REPORT_FILE, write_json_atomic
from training.rundir.data_files import data_files_record, write_data_files


class DataReportFile:
    """Keeps ``run_dir/data_report.json`` up to date for one run's data.

    Args:
        data: the run's ``training.data.pipeline.DataBundle``.
        writing: False for a resume that has not passed its checks yet.
    """

    def __init__(self, run_dir: Path, data: Any, emit: EventCallback, *, writing: bool):
        self.run_dir, self.data, self.emit = run_dir, data, emit
        self.writing = writing
        self._pending = False
        self._reported_failures = 0
        self._decode_skipped: list[dict[str, str]] = []

    def start_writing(self) -> None:
        self.writing = True
        if self._pending:
            self.write()

    def report_decode_failures(self) -> None:
        """Logs each file that failed to decode since the last call, and rewrites the report."""
        failures = self.data.decode_failures
        if len(failures) <= self._reported_failures:
            return
        for path, reason in describe_failures(list(failures[self._reported_failures:])):
            self.emit(Log(f"Skipped {display_path(path)}: {reason}", level="warning"))
            self._decode_skipped.append({"path": path, "reason": reason})
        self._reported_failures = len(failures)
        self.write()

    def write(self) -> None:
        if not self.writing:
            self._pending = True
            return
        data = self.data
        report = data.report().to_dict()
        report.pop("type", None)
        report["skipped"] = report["skipped"] + [
            {"path": display_path(item["path"]), "reason": item["reason"]} for item in self._decode_skipped]
        failed = {item["path"] for item in self._decode_skipped}
        report["train_images"] = data.train_count - len(failed.intersection(data.train_files))
        report["validation_images"] = data.validation_count - len(failed.intersection(data.validation_files))
        write_json_atomic(self.run_dir / DATA_REPORT_FILE, report)


def record_data_files(run_dir: Path, data: Any, data_cfg: Any) -> None:
    """Writes data_files.json: every file of each split with its class and content hash
    (``training.rundir.data_files``), what reproducing the run needs besides config.json."""
    root = data_cfg.dir
    roots = {"train": root, "validation": data_cfg.validation_dir or root, "test": data_cfg.test_dir or root}
    splits = {"train": (data.train_files, data.train_labels),
              "validation": (data.validation_files, data.validation_labels),
              "test": (data.test_files, data.test_labels)}
    write_data_files(run_dir, data_files_record(splits, data.classes, roots))

"""The class names of a run, in the model's output order.

``labels.json`` (a JSON array of strings) is the source of truth: it round-trips any
folder name, including names holding line breaks (``\\r``, U+2028), which a
one-name-a-line file cannot. ``labels.txt`` is written beside it for people and for tools
that expect one name a line; it is read only for runs made before ``labels.json`` existed.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.files import FileReadError, file_kind, read_json, read_text
from training.rundir.layout import LABELS_JSON, LABELS_TXT
from training.rundir.writing import write_text_atomic


class LabelsError(ValueError):
    """The run's class names are missing or damaged; the message says which file and why."""


def write_labels(run_dir: str | Path, classes: list[str]) -> None:
    """Writes ``labels.json`` (exact) and ``labels.txt`` (readable), each atomically."""
    run_dir = Path(run_dir)
    write_text_atomic(run_dir / LABELS_JSON, json.dumps(list(classes), ensure_ascii=False, indent=1) + "\n")
    write_text_atomic(run_dir / LABELS_TXT, "\n".join(classes) + "\n")


def read_labels(run_dir: str | Path, *, expected: int | None = None) -> list[str]:
    """The class names of a run folder.

    Args:
        run_dir: the run folder.
        expected: the model's number of outputs, when known; a different count is an error.

    Raises:
        LabelsError: no labels file, a damaged one, duplicates, or the wrong count.
    """
    run_dir = Path(run_dir)
    json_path, txt_path = run_dir / LABELS_JSON, run_dir / LABELS_TXT
    try:
        if file_kind(json_path) != "missing":
            classes = read_json(json_path, what="class list")
            source = json_path
            if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
                raise LabelsError(f"{json_path} must be a JSON list of class names; it is damaged.")
        elif file_kind(txt_path) != "missing":
            source = txt_path
            classes = [line for line in read_text(txt_path, what="class list").split("\n") if line]
        else:
            raise LabelsError(f"{run_dir} has no {LABELS_JSON} or {LABELS_TXT}: it is not a run "
                              "folder, or no epoch of its run completed.")
    except FileReadError as error:
        raise LabelsError(str(error)) from None
    if len(classes) < 2:
        raise LabelsError(f"{source} names {len(classes)} class(es); a run has at least 2. "
                          "The file is damaged.")
    if len(set(classes)) != len(classes):
        raise LabelsError(f"{source} names a class twice; the file is damaged.")
    if expected is not None and len(classes) != expected:
        raise LabelsError(f"{source} names {len(classes)} classes but the model has {expected} "
                          "outputs: the class list does not belong to this model.")
    return classes

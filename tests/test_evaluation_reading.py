"""The evaluation folder reader reads back exactly what the engine's writer wrote, finds
relative image paths in the evaluated folder, and turns a missing or damaged file into a
message that says what to do, without Keras or Qt in the process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.evaluation.evaluate import EVALUATION, default_folder, evaluation_document
from training.evaluation.reading import (
    EvaluationFileError,
    EvaluationMissing,
    evaluation_folders,
    read_evaluation,
    read_predictions,
)
from training.evaluation.scoring import Scored
from training.evaluation.writing import EVALUATION_FILE, PREDICTIONS_FILE, write_evaluation
from training.files import display_path

CLASSES = ["cat", "dog", "fox"]
AGAIN = "Evaluate the run again to write it anew."


def _scored(paths: list[str]) -> Scored:
    """Six images, two of each class; image 1 (a cat) is taken for a fox, image 4 (a fox) for a dog."""
    labels = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.full((6, 3), 0.1, dtype=np.float32)
    for row, answer in enumerate([0, 2, 1, 1, 1, 2]):
        probabilities[row, answer] = 0.8
    return Scored(paths=paths, labels=labels, probabilities=probabilities)


def _write(folder: Path, paths: list[str], data: str) -> tuple[dict, Scored]:
    """An evaluation folder written by the engine's own writer."""
    scored = _scored(paths)
    document = evaluation_document(CLASSES, scored, split="validation", data=data, runs=[str(folder.parent)],
                                   tta=False)
    write_evaluation(folder, document, scored, EVALUATION)
    return document, scored


@pytest.fixture
def written(tmp_path) -> tuple[Path, dict, Scored]:
    data = tmp_path / "images"
    paths = [str(data / CLASSES[i // 2] / f"{i}.png") for i in range(6)]
    folder = default_folder(tmp_path / "run", "validation")
    document, scored = _write(folder, paths, str(data))
    return folder, document, scored


def test_a_folder_written_by_the_engine_reads_back_whole(written):
    folder, document, scored = written
    evaluation = read_evaluation(folder)
    assert evaluation.predictions_problem == ""
    assert evaluation.classes == CLASSES
    assert evaluation.matrix == document["confusion_matrix"] == [[1, 0, 1], [0, 2, 0], [0, 1, 1]]
    assert evaluation.report["accuracy"] == pytest.approx(4 / 6)
    assert [row.path for row in evaluation.predictions] == scored.paths
    assert [(row.true, row.predicted) for row in evaluation.predictions] == [
        ("cat", "cat"), ("cat", "fox"), ("dog", "dog"), ("dog", "dog"), ("fox", "dog"), ("fox", "fox")]
    assert evaluation.predictions[1].confidence == pytest.approx(0.8)
    assert evaluation.predictions[1].loss == pytest.approx(-np.log(0.1), rel=1e-5)
    assert [row.path for row in evaluation.cell(2, 1)] == [scored.paths[4]]
    assert evaluation.cell(1, 0) == []


def test_the_evaluation_folders_of_a_run_are_found_by_split(tmp_path, written):
    folder, _, _ = written
    run = folder.parent
    assert evaluation_folders(run) == {"validation": folder}
    test_folder = default_folder(run, "test")
    _write(test_folder, [f"/elsewhere/{i}.png" for i in range(6)], "/elsewhere")
    assert evaluation_folders(run) == {"validation": folder, "test": test_folder}
    assert evaluation_folders(tmp_path / "no-run") == {}


def test_relative_image_paths_are_taken_from_the_evaluated_folder(tmp_path):
    data = tmp_path / "images"
    folder = tmp_path / "run" / "evaluation"
    _write(folder, [f"{CLASSES[i // 2]}/{i}.png" for i in range(6)], str(data))
    paths = [row.path for row in read_evaluation(folder).predictions]
    assert paths == [str(data / CLASSES[i // 2] / f"{i}.png") for i in range(6)]


def test_no_evaluation_json_is_evaluation_missing(tmp_path):
    with pytest.raises(EvaluationMissing) as caught:
        read_evaluation(tmp_path)
    assert str(caught.value) == f"{display_path(tmp_path)} holds no {EVALUATION_FILE}."


def test_a_damaged_json_says_so_and_what_to_do(written):
    folder, _, _ = written
    (folder / EVALUATION_FILE).write_text('{"classes": ["cat", ', encoding="utf-8")
    with pytest.raises(EvaluationFileError) as caught:
        read_evaluation(folder)
    assert not isinstance(caught.value, EvaluationMissing)
    message = str(caught.value)
    assert str(folder / EVALUATION_FILE) in message and "is not valid JSON" in message
    assert message.endswith(AGAIN)


@pytest.mark.parametrize(("change", "problem"), [
    (lambda report: report.update(confusion_matrix=[[1, 0, 1], [0, 2, 0]]),
     "`confusion_matrix` is not 3 rows of 3 counts"),
    (lambda report: report["confusion_matrix"][0].__setitem__(0, -1),
     "`confusion_matrix` is not 3 rows of 3 counts"),
    (lambda report: report.update(classes="cat"), "`classes` is not a list of class names"),
    (lambda report: report.update(loss=None), "`loss` is not a number"),
])
def test_a_report_that_is_not_an_evaluation_names_the_key(written, change, problem):
    folder, _, _ = written
    path = folder / EVALUATION_FILE
    report = json.loads(path.read_text(encoding="utf-8"))
    change(report)
    path.write_text(json.dumps(report), encoding="utf-8")
    with pytest.raises(EvaluationFileError) as caught:
        read_evaluation(folder)
    assert str(caught.value) == f"{display_path(path)} is damaged: {problem}. {AGAIN}"


def test_a_missing_predictions_csv_leaves_the_figures_readable(written):
    folder, document, _ = written
    (folder / PREDICTIONS_FILE).unlink()
    evaluation = read_evaluation(folder)
    assert evaluation.matrix == document["confusion_matrix"]
    assert evaluation.predictions == []
    assert evaluation.predictions_problem == (
        f"{display_path(folder / PREDICTIONS_FILE)} is missing, so the images cannot be listed. "
        "Evaluate the run again to write it.")


def test_a_damaged_predictions_row_names_its_line(written):
    folder, _, _ = written
    path = folder / PREDICTIONS_FILE
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace(",dog,dog,", ",dog,wolf,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    evaluation = read_evaluation(folder)
    assert evaluation.predictions == []
    assert evaluation.predictions_problem == (
        f"{display_path(path)} is damaged at line 4: class 'dog' or 'wolf' is not one of the run's "
        f"classes. {AGAIN}")
    path.write_text("path,true\n", encoding="utf-8")
    with pytest.raises(EvaluationFileError) as caught:
        read_predictions(path, CLASSES)
    assert str(caught.value) == (f"{display_path(path)} is damaged: it has no column predicted, "
                                 f"confidence, loss. {AGAIN}")


def test_the_reader_imports_neither_keras_nor_qt():
    code = ("import sys, training.evaluation.reading; "
            "loaded = [m for m in ('tensorflow', 'keras', 'PySide6') if m in sys.modules]; "
            "assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

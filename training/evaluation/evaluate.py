"""``evaluate``: score a run's best model (or several models together) and write what it got wrong.

What is scored:

- ``split="validation"`` (default): the run's validation images, the ones that chose its best
  epoch, found again as the run found them (``training.inference.run_images``);
- ``split="test"``: its held-out test images (``data.test_split`` or ``data.test_dir``),
  which neither training nor the choice of the epoch ever saw;
- ``data_dir``: any folder of class subfolders named like the model's classes.

Several runs with ``ensemble`` (or one run's ``snapshots/`` with ``snapshots``) are scored
together: their probabilities are averaged, and the document adds each member's accuracy
and the ensemble's gain over the best one. The images are the first run's.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from training.evaluation.errors import EvaluationError
from training.evaluation.metrics import evaluation_figures
from training.evaluation.scoring import Member, Scored, score_images
from training.evaluation.writing import EVALUATION_FILE, write_evaluation
from training.files import display_path
from training.publish import Publication
from training.rundir import EVALUATION_DIR, SNAPSHOT_DIR

EVALUATION = Publication(what="evaluation", marker=EVALUATION_FILE, error=EvaluationError)
SPLITS = ("validation", "test")


def default_folder(run_dir: Path, split: str, data_dir: str | Path | None = None,
                   group: str = "") -> Path:
    """``evaluation``, ``evaluation-test``, ``evaluation-<folder>``, each with ``-ensemble`` or
    ``-snapshots`` after ``evaluation`` for a group."""
    name = EVALUATION_DIR + (f"-{group}" if group else "")
    if data_dir is not None:
        name += "-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", Path(data_dir).name).strip("._") or "folder")
    elif split != "validation":
        name += f"-{split}"
    return run_dir / name


def evaluate(run_dirs: str | Path | list[str | Path], *, data_dir: str | Path | None = None,
             split: str = "validation", out: str | Path | None = None, tta: bool = False,
             top_k: int | None = None, ensemble: bool = False, snapshots: bool = False,
             on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """See ``training.api.evaluate``."""
    runs = [Path(r).expanduser() for r in ([run_dirs] if isinstance(run_dirs, (str, Path)) else run_dirs)]
    if split not in SPLITS:
        raise EvaluationError(f"The split must be one of {', '.join(SPLITS)}. Received: split={split!r}")
    if not runs:
        raise EvaluationError("Pass at least one run folder.")
    if len(runs) > 1 and not ensemble:
        raise EvaluationError(f"{len(runs)} run folders were given: pass --ensemble to average their "
                              "predictions, or evaluate one run at a time.")
    if snapshots and len(runs) > 1:
        raise EvaluationError("--snapshots averages the snapshots of ONE run; pass a single run folder.")
    if top_k is not None and top_k < 1:
        raise EvaluationError(f"--top-k must be at least 1. Received: top_k={top_k}")
    members, classes, configs, report = _open_members(runs, snapshots)
    files, labels, data_text = _images(runs[0], configs[0], classes, report, split, data_dir)
    warnings = [] if data_dir is not None else _split_warnings(runs, configs)
    group = "snapshots" if snapshots else "ensemble" if len(runs) > 1 else ""
    target = Path(out).expanduser() if out is not None else default_folder(runs[0], split, data_dir, group)
    scored = score_images(members, files, labels, tta=tta, on_progress=on_progress)
    if not scored.paths:
        raise EvaluationError(f"None of the {len(files)} images could be read, so nothing was evaluated.")
    document = evaluation_document(classes, scored, split="folder" if data_dir is not None else split,
                                   data=data_text, runs=[str(r) for r in runs], tta=tta, top_k=top_k,
                                   members=[m.name for m in members], warnings=warnings)
    write_evaluation(target, document, scored, EVALUATION)
    return {**document, "folder": str(target)}


def evaluation_document(classes: list[str], scored: Scored, *, split: str, data: str, runs: list[str],
                        tta: bool, top_k: int | None = None, members: list[str] | None = None,
                        warnings: list[str] | None = None) -> dict[str, Any]:
    """evaluation.json's content for ``scored``."""
    document: dict[str, Any] = {"split": split, "data": data, "runs": runs}
    document.update(evaluation_figures(classes, scored.labels, scored.probabilities, scored.paths, top_k))
    document["tta"] = tta
    document["accuracy_without_tta"] = (float(np.mean(scored.plain.argmax(axis=1) == scored.labels))
                                        if tta and scored.plain is not None else None)
    if scored.members:
        accuracies = [float(np.mean(p.argmax(axis=1) == scored.labels)) for p in scored.members]
        best = int(np.argmax(accuracies))
        document["ensemble"] = {
            "members": [{"model": name, "accuracy": acc} for name, acc in zip(members or [], accuracies)],
            "best_member": (members or [""])[best], "best_member_accuracy": accuracies[best],
            "gain": document["accuracy"] - accuracies[best]}
    document["skipped"] = scored.skipped
    document["warnings"] = list(warnings or [])
    document["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return document


# -- what is evaluated ---------------------------------------------------------------------------
def _open_members(runs: list[Path], snapshots: bool):
    """The models to score, the classes they share, each run's config, the first run's data
    report. With ``snapshots`` the run's own best.keras is not loaded: only its snapshots count."""
    from training.inference.predict import PredictError, load_run
    from training.rundir import RunDirError, read_run_config
    from training.rundir.labels import LabelsError, read_labels
    from training.rundir.reading import closed_run_problem, read_data_report

    members: list[Member] = []
    classes: list[str] | None = None
    configs, report = [], None
    for run in runs:
        problem = closed_run_problem(run, "it evaluates its best model itself when it ends.")
        if problem:
            raise EvaluationError(problem)
        try:
            if snapshots:
                run_classes = read_labels(run)
            else:
                model, run_classes, size = load_run(run)
            configs.append(read_run_config(run, consequence="The run cannot be evaluated."))
            if report is None:
                report = read_data_report(run)
        except (PredictError, RunDirError, LabelsError) as error:
            raise EvaluationError(str(error)) from None
        if classes is not None and run_classes != classes:
            raise EvaluationError(f"{run} has other classes ({', '.join(run_classes)}) than {runs[0]} "
                                  f"({', '.join(classes)}); an ensemble averages runs with the same classes.")
        classes = run_classes
        if snapshots:
            members += _snapshot_members(run, run_classes)
        else:
            members.append(Member(str(run), model, size))
    return members, classes, configs, report


def _split_warnings(runs: list[Path], configs: list) -> list[str]:
    """Members that split their data differently have trained on some of the first run's
    validation (or test) images: the ensemble's figures on them are then optimistic."""
    def split_of(config) -> tuple:
        d = config.data
        return (d.dir, d.validation_split, d.validation_dir, d.test_split, d.test_dir, d.seed)

    others = [run.name for run, config in zip(runs[1:], configs[1:]) if split_of(config) != split_of(configs[0])]
    if not others:
        return []
    return [f"{', '.join(others)} split the data differently from {runs[0].name} (data folder, shares or "
            "split seed): some of the images scored here trained those runs, so the ensemble's figures "
            "are optimistic. Train the members with the same data settings, or score a new folder with --data."]


def _snapshot_members(run: Path, classes: list[str]) -> list[Member]:
    from models.safe_load import UnsafeModelError, load_model_safely

    folder = run / SNAPSHOT_DIR
    files = sorted(folder.glob("*.keras")) if folder.is_dir() else []
    if len(files) < 2:
        raise EvaluationError(
            f"{display_path(folder)} holds {len(files)} snapshot(s); a snapshot ensemble needs at least 2. "
            "Train with the `cosine_restarts` schedule and `schedule.save_snapshots` on (Optimizer tab: "
            "Snapshots), which saves one at the end of each cycle.")
    members = []
    for path in files:
        try:
            model = load_model_safely(path)
        except UnsafeModelError as error:
            raise EvaluationError(str(error)) from None
        if model.output_shape[-1] != len(classes):
            raise EvaluationError(f"{display_path(path)} has {model.output_shape[-1]} outputs, the run "
                                  f"{len(classes)} classes: it is not a snapshot of this run.")
        members.append(Member(str(path), model, int(model.input_shape[1])))
    return members


def _images(run: Path, config, classes: list[str], report, split: str, data_dir) -> tuple:
    """(files, labels, data folder text) of what is scored."""
    from training.inference.run_images import RunImagesError, find_run_images

    if data_dir is not None:
        return _folder_images(Path(data_dir).expanduser(), classes)
    try:
        found = find_run_images(config.data, classes, report)
    except RunImagesError as error:
        raise EvaluationError(f"{error} To score images elsewhere, pass their folder with --data.") from None
    if split == "test":
        if not found.test_files:
            raise EvaluationError(
                f"{run} has no held-out test images: it trained without `data.test_split` or "
                "`data.test_dir` (Data tab: Test split, Test folder). Evaluate the validation images, "
                "or a folder of new images with --data.")
        source = config.data.test_dir or config.data.dir
        return found.test_files, found.test_labels, str(source)
    source = config.data.validation_dir or config.data.dir
    return found.validation_files, found.validation_labels, str(source)


def _folder_images(folder: Path, classes: list[str]) -> tuple[list[str], np.ndarray, str]:
    from training.data.errors import DataError
    from training.data.scan import scan_folder

    try:
        scan = scan_folder(folder)
    except DataError as error:
        raise EvaluationError(str(error)) from None
    unknown = [name for name in scan.classes if name not in classes]
    if unknown:
        raise EvaluationError(
            f"{display_path(folder)} has class folders the model does not know: {', '.join(unknown)} "
            f"(the model's classes: {', '.join(classes)}). Remove or rename them.")
    index = {name: i for i, name in enumerate(classes)}
    labels = np.asarray([index[scan.classes[label]] for label in scan.labels], dtype=np.int64)
    return [str(f) for f in scan.files], labels, str(folder)


# -- at the end of a run ------------------------------------------------------------------------
def evaluate_after_training(run_dir: Path, model: Any, classes: list[str], image_size: int,
                            parts: dict[str, tuple[list[str], np.ndarray]], data: dict[str, str],
                            on_progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Scores the run's best model (``model``, holding the best epoch's weights) on each part
    of its data (``{"validation": (files, labels), "test": ...}``) and writes
    ``evaluation/`` and ``evaluation-test/``; returns each part's headline figures for
    summary.json. The run calls this itself, while it still holds its folder's lock."""
    headlines: dict[str, Any] = {}
    member = Member(str(run_dir), model, image_size)
    for split, (files, labels) in parts.items():
        if not len(files):
            continue
        progress = None if on_progress is None else (lambda done, total, s=split: on_progress(s, done, total))
        scored = score_images([member], list(files), np.asarray(labels), on_progress=progress)
        if not scored.paths:
            continue
        document = evaluation_document(classes, scored, split=split, data=data.get(split, ""),
                                       runs=[str(run_dir)], tta=False)
        folder = default_folder(run_dir, split)
        write_evaluation(folder, document, scored, EVALUATION)
        headlines[split] = {key: document[key] for key in ("images", "accuracy", "loss", "top_k_accuracy")}
        headlines[split]["macro_f1"] = document["macro_avg"]["f1"]
        headlines[split]["folder"] = folder.name
    return headlines

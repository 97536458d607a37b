"""The engine's public API: everything the GUI and the CLI call.

Importing this module is cheap (no TensorFlow): each function imports the heavy parts
when it is first called, so a window can appear before TensorFlow loads.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from training.config import Config, ConfigError, DataConfig, default_config
from training.data.pipeline import plan_data
from training.data.split import SplitPlan
from training.engine.recipe import (
    PhasePlan,
    fine_tune_learning_rate,
    phase_plan,
    planned_epochs,
    resolve_mode,
)
from training.events import Event, EventCallback
from training.rundir import ResumeCheck, check_resume, export_best_model, next_run_dir, resume_problem

__all__ = [
    "Config", "ConfigError", "default_config", "fine_tune_learning_rate",
    "Event", "EventCallback", "run_training", "resume_training", "scan_folder", "resolve_data_dir",
    "backbone_catalog", "predict", "planned_learning_rates", "preview_augmentation",
    "load_preview_images", "check_setup", "overfit_tiny_subset", "lr_range_test",
    "next_run_dir", "resume_problem", "check_resume", "ResumeCheck", "export_best_model",
    "plan_split", "SplitPlan", "device_description", "PhasePlan", "phase_plan", "check_data",
    "planned_epochs", "resolve_mode", "export_run", "evaluate", "grad_cam",
    "list_runs", "read_run", "run_config", "read_metrics", "config_diff",
]


def run_training(config: Config, *, run_dir: str | Path, on_event: EventCallback,
                 stop: threading.Event | None = None):
    """Trains a classifier as ``config`` says and records the run in ``run_dir``.

    Never raises for a training failure: it emits a ``Failed`` event and returns a
    ``RunResult`` whose ``stop_reason`` is ``"failed"``. Setting ``stop`` ends the run
    within one batch and leaves a valid run directory.
    """
    from training.engine.run import run_training as _run

    return _run(config, run_dir=run_dir, on_event=on_event, stop=stop)


def resume_training(run_dir: str | Path, *, on_event: EventCallback,
                    stop: threading.Event | None = None):
    """Continues a stopped, killed or crashed run from its last completed epoch, in the
    same folder with its ``config.json``; a run that never completed an epoch starts over
    there. Never raises: a folder that cannot be resumed (not a run, in use, damaged, already
    finished, or its classes changed) gives a ``Failed`` event and nothing is written."""
    from training.engine.run import resume_training as _resume

    return _resume(run_dir, on_event=on_event, stop=stop)


def resolve_data_dir(data_dir: str) -> Path:
    """The folder behind ``data.dir``; ``builtin:shapes`` is generated on first use."""
    from training.data.sample import resolve_data_dir as _resolve

    return _resolve(data_dir)


def scan_folder(data_dir: str | Path):
    """Scans a class-per-folder tree; returns a ``training.data.scan.ScanResult``.

    Raises:
        training.data.errors.DataError: the folder is missing or holds fewer than two classes.
    """
    from training.data.scan import scan_folder as _scan

    return _scan(resolve_data_dir(str(data_dir)))


def backbone_catalog() -> list[dict[str, Any]]:
    """Every supported backbone as plain dicts: name, family, default_size,
    params_millions, imagenet_top1, imagenet_cached (for the default input size)."""
    from models.backbones import backbone_catalog as _catalog

    return _catalog()


def predict(run_dir: str | Path, paths: list[str | Path], top_k: int = 3,
            tta: bool = False) -> list[dict[str, Any]]:
    """Top-k classes for each image (or each image in each folder) with a trained run;
    ``tta`` averages the probabilities over flipped and cropped views of each image."""
    from training.inference.predict import predict as _predict

    return _predict(run_dir, paths, top_k=top_k, tta=tta)


def evaluate(run_dirs: str | Path | list[str | Path], *, data_dir: str | Path | None = None,
             split: str = "validation", out: str | Path | None = None, tta: bool = False,
             top_k: int | None = None, ensemble: bool = False, snapshots: bool = False,
             on_progress=None) -> dict[str, Any]:
    """Scores a run's best model (or an ensemble of runs, or a run's snapshots) on its
    validation images (``split="validation"``), its held-out test images (``"test"``) or
    any folder with the same classes (``data_dir``), and writes evaluation.json,
    predictions.csv, confusion_matrix.png and report.md into ``out`` (default
    ``RUN_DIR/evaluation``, ``RUN_DIR/evaluation-test`` or ``RUN_DIR/evaluation-<folder>``).
    Returns evaluation.json's content with ``folder`` added. ``on_progress(done, total)``
    is called as images are scored. Imports TensorFlow: call it off a GUI thread.

    Raises:
        training.evaluation.EvaluationError: unusable input; the message says what to do.
    """
    from training.evaluation import evaluate as _evaluate

    return _evaluate(run_dirs, data_dir=data_dir, split=split, out=out, tta=tta, top_k=top_k,
                     ensemble=ensemble, snapshots=snapshots, on_progress=on_progress)


def grad_cam(run_dir: str | Path, image: str | Path, class_name: str | None = None) -> dict[str, Any]:
    """Grad-CAM (Selvaraju et al. 2017) of one image for ``class_name`` (default: the top
    class), on the backbone's last convolutional block: a dict with ``image`` (uint8
    size x size x 3, as the model saw it), ``heatmap`` (float32 size x size, 0-1),
    ``overlay`` (uint8, the heat map blended on the image), ``class``, ``probability`` and
    ``top`` (every class with its probability, highest first). Keeps the last models it
    loaded, so a second image of the same run is quick.

    Raises:
        training.inference.predict.PredictError: the run folder or the image cannot be used.
    """
    from training.inference.gradcam import grad_cam_for_run

    return grad_cam_for_run(run_dir, image, class_name=class_name)


def export_run(run_dir: str | Path, fmt: str, *, quantize: str = "none", out: str | Path | None = None,
               data_dir: str | Path | None = None, on_progress=None):
    """Exports a run's best model in one format (``keras``, ``saved_model``, ``tflite``,
    ``onnx``; ``quantize`` ``float16`` or ``int8`` for tflite) into a self-contained folder,
    reloads it with that format's own runtime and compares it with the Keras model on the
    run's validation images. Returns a ``training.export.ExportResult``: ``passed`` False
    (with a ``message``) when the conversion or its verification failed, in which case nothing
    was left at ``out`` (default ``RUN_DIR/export/<format>[-<quantize>]``). ``on_progress`` is
    called with a short sentence as each step begins. Imports TensorFlow: call it off a GUI
    thread.

    Raises:
        training.export.ExportError: unusable input (format, run folder, --out, images).
    """
    from training.export import export_run as _export

    return _export(run_dir, fmt, quantize=quantize, out=out, data_dir=data_dir, on_progress=on_progress)


def planned_learning_rates(config: Config, steps_per_epoch: int) -> dict[str, list[float]]:
    """The learning rate at every planned step, per phase (``head``, ``fine_tune``)."""
    from training.engine.optim import planned_learning_rates as _planned

    return _planned(config, steps_per_epoch)


def load_preview_images(paths: list[str | Path], image_size: int):
    """Decodes images as the training pipeline does: uint8 array (N, size, size, 3)."""
    from training.data.images import load_images

    return load_images(paths, image_size)


def preview_augmentation(config: Config, images, seed: int = 0):
    """Applies the training augmentation of ``config`` to uint8 images (N, H, W, 3)."""
    from training.data.augment import preview_augmentation as _preview

    return _preview(config.augmentation, images, seed=seed)


def check_setup(config: Config, *, on_event: EventCallback | None = None,
                stop: threading.Event | None = None):
    """Data checks, the untrained loss against ln(C), and L2 that must raise it; returns a
    ``training.engine.sanity.SetupCheck`` (its ``hints`` are empty when all is well).

    Raises:
        training.data.errors.DataError, ConfigError: the data or config cannot be used.
    """
    from training.engine.sanity import check_setup as _check

    return _check(config, on_event=on_event, stop=stop)


def overfit_tiny_subset(config: Config, *, images: int = 20, max_epochs: int = 150,
                        on_event: EventCallback | None = None, stop: threading.Event | None = None):
    """Trains on a few images until they are memorized; returns a
    ``training.engine.sanity.OverfitResult`` (``reached`` False and a hint: something is broken)."""
    from training.engine.sanity import overfit_tiny_subset as _overfit

    return _overfit(config, images=images, max_epochs=max_epochs, on_event=on_event, stop=stop)


def lr_range_test(config: Config, *, steps: int = 150, min_lr: float = 1e-7, max_lr: float = 10.0,
                  on_event: EventCallback | None = None, stop: threading.Event | None = None):
    """Loss against an exponentially growing learning rate on a throwaway model; returns a
    ``training.engine.sanity.LRRangeResult`` with plain lists to plot and a suggested rate."""
    from training.engine.sanity import lr_range_test as _range

    return _range(config, steps=steps, min_lr=min_lr, max_lr=max_lr, on_event=on_event, stop=stop)


def plan_split(scan, data: DataConfig) -> SplitPlan:
    """The training and validation images per class of a run with ``data`` on ``scan`` (a
    ``scan_folder`` result): the engine's own split, so a window's planned counts are the
    counts a run uses. Scans ``data.validation_dir`` when one is set; makes the split with
    scikit-learn (imported on first use, ~0.8 s): call it off a GUI thread.

    Raises:
        training.data.errors.DataError: no validation images, or a validation folder
            that does not match the scan's classes.
    """
    return plan_data(scan, data, seed=data.seed)[0]


def check_data(scan, data: DataConfig, *, image_size: int | None = None, known=None,
               on_progress=None, stop: threading.Event | None = None):
    """What a run with ``data`` would find wrong with the images of ``scan`` (a
    ``scan_folder`` result), without TensorFlow: the files it would skip (decoded as the
    pipeline decodes them), the classes with fewer validation images than its data hints ask
    for, and the copies of training images among the validation images. Returns a
    ``training.data.check.DataCheck``; call it off a GUI thread (it decodes every image).

    Args:
        image_size: the size a run decodes at; default ``data.image_size``, else the default
            backbone's input size.
        known: a previous check's ``decoded`` at the same size: files unchanged since are
            not decoded again.
        on_progress: called with (stage, done, total): stage "decode" or "duplicates".
        stop: when set, the check ends soon, raising ``training.data.errors.CheckStopped``.
    """
    from models.registry import get_spec
    from training.data.check import check_data as _check
    from training.diagnostics.thresholds import VAL_MIN_PER_CLASS

    size = image_size or data.image_size or get_spec(default_config().model.backbone).default_size
    return _check(scan, data, size, min_validation_per_class=VAL_MIN_PER_CLASS, known=known,
                  on_progress=on_progress, stop=stop)


def list_runs(root: str | Path):
    """Every run under the runs folder ``root`` (and the trials of searches there), newest
    first, as ``training.experiments.RunRecord``s: status, start, backbone, image size, best
    epoch and metrics, the settings that differ from the defaults. Reads small JSON files
    only (about 1 s for 500 runs): call it off a GUI thread. A missing ``root`` holds no runs.

    Raises:
        training.rundir.RunDirError: ``root`` exists but cannot be read as a folder.
    """
    from training.experiments import list_runs as _list

    return _list(root)


def read_run(run_dir: str | Path):
    """One run folder's ``RunRecord`` (as ``list_runs`` lists it), or None when it is not a
    run folder; a damaged one has the status ``damaged`` and says why."""
    from training.experiments import read_run as _read

    return _read(run_dir)


def run_config(run_dir: str | Path) -> Config:
    """The config a run recorded (its config.json), validated.

    Raises:
        training.rundir.RunDirError: missing, unreadable or not a valid config.
    """
    from training.rundir import read_run_config

    return read_run_config(Path(run_dir), consequence="Its settings cannot be used.")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """A run's metrics.csv, one dict an epoch (``training.rundir.read_metrics``).

    Raises:
        training.rundir.RunDirError: metrics.csv cannot be read.
    """
    from training.rundir import read_metrics as _read

    return _read(run_dir)


def reproduction_report(source: str | Path, new: str | Path) -> list[str]:
    """Lines that say whether run ``new``, trained with run ``source``'s config, reproduced it
    (``training.experiments.reproduce``)."""
    from training.experiments.reproduce import reproduction_report as _report

    return _report(source, new)


def config_diff(configs: list[Config]) -> dict[str, list[Any]]:
    """The dotted keys whose values are not the same in every config, each with one value a
    config (in the order given)."""
    from training.experiments import config_diff as _diff

    return _diff(configs)


def device_description() -> str:
    """Where training runs, e.g. "CPU: 2 threads (float32)" (imports TensorFlow)."""
    from training.engine.device import describe_device

    return describe_device()

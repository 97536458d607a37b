"""``run_training``: from a config to a trained, recorded classifier.

The transfer-learning recipe is a sequence of named phases (keras-io
``guides/transfer_learning.py``):

1. ``head``: the backbone is frozen (and, when pretrained, called with ``training=False``
   so its BatchNorm layers stay in inference mode); only the new head learns.
2. ``fine_tune``: the top ``training.fine_tune_layers`` layers of the backbone are
   unfrozen (BatchNorm layers stay frozen unless training from scratch), the model is
   recompiled with a fresh optimizer at ``training.fine_tune_learning_rate`` (default a
   tenth of the head's) and training continues.

A phase with 0 epochs is skipped. ``model.weights: "none"`` with ``fine_tune_layers:
"all"`` trains from scratch.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.config import Config, ConfigError
from training.diagnostics.monitor import Diagnostics
from training.engine.checkpoint import (
    ResumableEarlyStopping,
    ResumableReduceLROnPlateau,
    ResumeCheckpoint,
    ResumeState,
    check_weights_file,
    restore_checkpoint,
)
from training.engine.recipe import PHASES, fine_tune_learning_rate, phase_epochs, phase_learning_rate
from training.events import EventCallback, Failed, Finished, Log, PhaseChanged, RunStarted
from training.files import display_path, is_regular_file
from training.rundir import (
    BEST_MODEL,
    RunDirError,
    RunRecorder,
    absolute_run_dir,
    clear_unfinished_start,
    disk_full_message,
    fan_out,
    inspect_resume,
    is_disk_full,
    lock_run_dir,
    prepare_run_dir,
    remove_leftovers,
    require_run_folder,
    write_json_atomic,
    write_text_atomic,
)
from training.rundir.labels import LabelsError, read_labels, write_labels

# The pipeline drops undecodable files, so its length is unknown to Keras, which then
# warns at the end of every epoch that the input "ran out of data": expected here.
warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)


class StopRequested(Exception):
    """The stop flag was set before training began (e.g. during a download)."""


@dataclass
class RunResult:
    run_dir: str
    stop_reason: str             # completed, early_stopping, stopped, diverged, failed
    best_epoch: int = 0          # 0: no model was saved (no best.keras; summary best_model null)
    best_metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    error_type: str = ""         # the failure's kind, e.g. DataError, RunDirError, ConfigError

    @property
    def ok(self) -> bool:
        return self.stop_reason != "failed"


def run_training(config: Config, *, run_dir: str | Path, on_event: EventCallback,
                 stop: threading.Event | None = None) -> RunResult:
    """Trains as ``config`` says, writing the run directory; see ``training.api``."""
    stop = stop or threading.Event()
    started = time.monotonic()
    try:
        config = Config.from_dict(config.to_dict())  # validate a copy; the caller's is untouched
        lock = prepare_run_dir(run_dir)
    except (ConfigError, RunDirError) as error:
        return _refused(error, str(run_dir), on_event)
    with lock:
        return _run_session(config, lock.path, on_event, stop, started)


def _refused(error: Exception, run_dir: str, on_event: EventCallback) -> RunResult:
    """A run that could not begin: nothing was written, the listeners hear why."""
    message = _user_message(error, Path(run_dir))
    on_event(Failed(message=message, error_type=type(error).__name__, run_dir=run_dir))
    return RunResult(run_dir=run_dir, stop_reason="failed", error=message,
                     error_type=type(error).__name__)


def _run_session(config: Config, path: Path, on_event: EventCallback, stop: threading.Event,
                 started: float, resume: ResumeState | None = None, notice: str = "") -> RunResult:
    try:
        # A resume records nothing until its checkpoint is restored (``TrainingSession``).
        recorder = RunRecorder(path, hold=resume is not None)
    except OSError as error:
        return _refused(error, str(path), on_event)

    def listener_failed(error: Exception) -> None:
        recorder.record_quietly(Log(f"An event listener failed ({type(error).__name__}: {error}); "
                                    "training goes on.", level="warning"))

    listeners = fan_out(on_event, on_listener_error=listener_failed)

    def emit(event) -> None:
        listeners(event)
        recorder(event)  # the run's own record: when it cannot be written (disk full) the run fails

    session = TrainingSession(config, path, emit, stop, started, resume=resume, notice=notice,
                              recorder=recorder)
    try:
        return session.run()
    except Exception as error:  # noqa: BLE001 - every failure becomes a Failed event
        message = _user_message(error, path)
        failed = Failed(message=message, error_type=type(error).__name__, run_dir=str(path),
                        details=traceback.format_exc())
        listeners(failed)
        recorder.record_quietly(failed)
        if session.writing:
            try:
                session.write_summary("failed", error=message)
            except OSError:
                pass  # the disk is full even for a few bytes: the Failed event said it all
        return RunResult(run_dir=str(path), stop_reason="failed", error=message,
                         error_type=type(error).__name__, best_epoch=session.best_epoch,
                         history=session.history)
    finally:
        recorder.close()


def resume_training(run_dir: str | Path, *, on_event: EventCallback,
                    stop: threading.Event | None = None) -> RunResult:
    """Continues a stopped, killed or crashed run from its last completed epoch.

    The run goes on in the same folder with the same config.json: same weights, optimizer
    state, schedule position, epoch counter and best-so-far score, so a worse epoch after
    the resume never replaces the best model. Everything is checked before anything is
    written: the folder (a run folder, no links, not in use), config.json, the checkpoint
    (state and weights file), the labels, and then, in the session, the data folder's
    classes and the model built from config.json against the checkpoint. A refused resume
    leaves the folder as it was.

    A run that completed no epoch (killed or failed in its first) has no checkpoint: it
    starts over in the same folder with its own config.json.
    """
    stop = stop or threading.Event()
    started = time.monotonic()
    lock = None
    try:
        path = absolute_run_dir(run_dir)
        require_run_folder(path)
        lock = lock_run_dir(path)
        plan = inspect_resume(path)
        checkpoint = None
        if plan.state is not None:
            checkpoint = ResumeState.from_dict(plan.state)
            check_weights_file(path, checkpoint)
    except (ConfigError, RunDirError, LabelsError, OSError, ValueError) as error:
        if lock is not None:
            lock.release()
        return _refused(error, str(run_dir if lock is None else lock.path), on_event)
    with lock:
        try:
            remove_leftovers(path, weights_in_use=checkpoint.weights_file if checkpoint else None)
            if checkpoint is None:
                clear_unfinished_start(path)
        except OSError as error:
            return _refused(error, str(path), on_event)
        if checkpoint is not None:
            return _run_session(plan.config, path, on_event, stop, started, resume=checkpoint)
        notice = (f"No epoch of the earlier run in {path} completed, so there is nothing to "
                  "resume: the run starts over in the same folder with its config.json.")
        return _run_session(plan.config, path, on_event, stop, started, notice=notice)


def _user_message(error: Exception, run_dir: Path) -> str:
    from training.data.errors import DataError

    if is_disk_full(error):
        return disk_full_message(error, run_dir)
    known = (ConfigError, RunDirError, DataError, LabelsError, ValueError, FileNotFoundError,
             PermissionError)
    if isinstance(error, known) or type(error).__name__ == "WeightsUnavailableError":
        return str(error)
    if isinstance(error, OSError):
        return (f"{error.strerror or error} ({getattr(error, 'filename', '') or ''}). "
                "Check that the disk is not full and the run folder is writable.")
    return f"Training failed: {type(error).__name__}: {error}"


class TrainingSession:
    """One run's moving parts, step by step: ``start``, ``prepare_data``, ``build_model``,
    ``run_phase`` for each phase, ``finish``. ``run`` does them all in order; tests drive
    the steps one by one to look at the model between phases."""

    def __init__(self, config: Config, run_dir: Path, emit: EventCallback, stop: threading.Event,
                 started: float, resume: ResumeState | None = None, notice: str = "",
                 recorder: RunRecorder | None = None):
        self.config = config
        self.resume = resume
        self.notice = notice
        self.recorder = recorder
        # A resume writes nothing into the run folder until the data's classes and the
        # model built from config.json proved to fit the checkpoint (``_begin_writing``).
        self.writing = resume is None
        self._report_pending = False
        self.run_dir = run_dir
        self.emit = emit
        self.stop = stop
        self.started = started
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.state = None
        self.data = None
        self.image_size = 0
        self.device = ""
        self._reported_failures = 0
        self._decode_skipped: list[dict[str, str]] = []
        self.diagnostics: Diagnostics | None = None

    @property
    def best_epoch(self) -> int:
        return self.state.best_epoch if self.state else 0

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state.history if self.state else []

    # -- the run ---------------------------------------------------------------------
    def run(self) -> RunResult:
        self.start()
        self.data = self.prepare_data()
        try:
            if self.stop.is_set():
                raise StopRequested()
            classifier = self.build_model()
        except StopRequested:
            return self.finish("stopped")
        return self.train(classifier)

    def start(self) -> None:
        """Resolves the config, seeds everything and writes config.json."""
        import keras

        from models.registry import check_image_size, get_spec
        from training.data.sample import resolve_data_dir
        from training.engine.device import describe_device

        config = self.config
        spec = get_spec(config.model.backbone)
        self.image_size = config.data.image_size or spec.default_size
        check_image_size(spec.name, self.image_size, config.model.weights)
        config.data.image_size = self.image_size
        config.training.fine_tune_learning_rate = fine_tune_learning_rate(config)
        self.device = describe_device()
        self.emit(RunStarted(run_dir=str(self.run_dir), device=self.device, config=config.to_dict()))
        if self.notice:
            self.emit(Log(self.notice, level="warning"))
        if self.resume is None:
            write_text_atomic(self.run_dir / "config.json", config.to_json())
        else:
            self.emit(Log(f"Resuming after epoch {self.resume.epoch} ({self.resume.phase} phase); "
                          f"best so far: epoch {self.resume.best_epoch}."))

        config.data.dir = str(resolve_data_dir(config.data.dir))
        if config.data.validation_dir:
            config.data.validation_dir = str(resolve_data_dir(config.data.validation_dir))
        keras.utils.set_random_seed(config.training.seed)

    def prepare_data(self):
        from training.data.augment import build_augmenter
        from training.data.pipeline import prepare_data

        config = self.config
        self.emit(Log(f"Scanning {config.data.dir} ..."))
        augmenter = build_augmenter(config.augmentation, image_size=self.image_size,
                                    seed=config.training.seed)
        data = prepare_data(config.data, self.image_size, augmenter=augmenter, seed=config.data.seed)
        if self.resume is None:
            write_labels(self.run_dir, data.classes)
        else:
            self._check_same_classes(data.classes)
        report = data.report()
        self.emit(report)
        self._write_data_report(data)
        self.emit(Log("Checking the data: class balance, validation size, duplicates across "
                      "the split ..."))
        self.diagnostics = Diagnostics(
            num_classes=len(data.classes),
            phase_learning_rates={p: phase_learning_rate(config, p) for p in PHASES},
            config=config,
            history=list(self.resume.history) if self.resume is not None else None)
        for hint in self.diagnostics.check_data(report, data.train_files, data.validation_files):
            self.emit(hint)
        self.emit(Log(f"{len(data.classes)} classes, {data.train_count} training and "
                      f"{data.validation_count} validation images at {self.image_size} px."))
        return data

    def _check_same_classes(self, classes: list[str]) -> None:
        """A resume needs the classes the checkpoint's outputs were trained on, in order."""
        from training.data.errors import DataError

        trained = read_labels(self.run_dir)
        if classes == trained:
            return
        added = [c for c in classes if c not in trained]
        removed = [c for c in trained if c not in classes]
        parts = [f"classes added: {', '.join(added)}"] if added else []
        if removed:
            parts.append(f"{'' if added else 'classes '}removed: {', '.join(removed)}")
        change = "; ".join(parts) or "the same classes in another order"
        raise DataError(
            f"The classes in {self.config.data.dir} are not the ones this run was trained on "
            f"({change}). Resuming would give the model's outputs the wrong names. Restore the "
            "data folder's classes to resume, or start a new run.")

    def _begin_writing(self, history: list[dict[str, Any]]) -> None:
        """A resume passed every check: from here on it writes the run folder."""
        self.writing = True  # set first: a failure to write from here on is summarized
        if self.recorder is not None:
            self.recorder.start_writing(history)
        if self._report_pending:
            self._write_data_report(self.data)

    def build_model(self):
        from models.classifier import build_classifier

        config = self.config
        weights = config.model.weights
        if weights == "imagenet":
            self._fetch_imagenet_weights()
        self.emit(Log(f"Building {config.model.backbone} (weights: {weights}) ..."))
        return build_classifier(config.model, config.regularization, image_size=self.image_size,
                                num_classes=len(self.data.classes), seed=config.training.seed)

    def _fetch_imagenet_weights(self) -> None:
        """Downloads the ImageNet file once, reporting progress as log events."""
        from models.weights import (
            ensure_imagenet_weights,
            imagenet_weights_cached,
            imagenet_weights_filename,
            keras_cache_dir,
        )

        name = self.config.model.backbone
        if imagenet_weights_cached(name, self.image_size):
            return
        filename = imagenet_weights_filename(name, self.image_size)
        self.emit(Log(f"Downloading ImageNet weights {filename} into {keras_cache_dir()} ..."))
        reported = [-1]

        def progress(done: int, total: int | None) -> None:
            if self.stop.is_set():
                raise StopRequested()
            tenth = int(10 * done / total) if total else -1
            if tenth > reported[0]:
                reported[0] = tenth
                self.emit(Log(f"Downloading {filename}: {done / 1e6:.1f} of {total / 1e6:.1f} MB"))

        ensure_imagenet_weights(name, self.image_size, progress=progress)

    def phases(self) -> list[str]:
        return [p for p in PHASES if phase_epochs(self.config, p) > 0]

    def train(self, classifier) -> RunResult:
        phases = self.phases()
        if self.resume is not None and self.resume.phase not in phases:
            raise ValueError(f"The checkpoint was taken in the {self.resume.phase} phase, which this "
                             "run's config.json no longer has; it cannot be resumed.")
        for phase in phases:
            if self.resume is not None and phases.index(phase) < phases.index(self.resume.phase):
                continue  # finished before the checkpoint
            reason = self.run_phase(classifier, phase)
            if reason in ("stopped", "diverged"):
                return self.finish(reason)
            if reason == "early_stopping" and phase == phases[-1]:
                return self.finish(reason)
        return self.finish("completed")

    def run_phase(self, classifier, phase: str) -> str | None:
        """Trains one phase; returns why it ended early (stopped, diverged, early_stopping)."""
        import keras

        from models.classifier import freeze_backbone, unfreeze_top_layers
        from training.engine.callbacks import EventBridge, RunState
        from training.engine.optim import build_phase_optimizer

        config, data = self.config, self.data
        if self.state is None:
            planned = sum(phase_epochs(config, p) for p in self.phases())
            self.state = RunState(monitor=config.training.monitor, planned_epochs=planned,
                                  total_steps=planned * data.steps_per_epoch,
                                  steps_per_epoch=data.steps_per_epoch)
            if self.resume is not None:
                self.state.restore(self.resume)
        state = self.state
        epochs = phase_epochs(config, phase)
        first_epoch = 0 if phase == "head" else phase_epochs(config, "head")
        if phase == "head":
            freeze_backbone(classifier.backbone)
            description = f"Training the new head; {config.model.backbone} is frozen."
        else:
            count = unfreeze_top_layers(classifier.backbone, config.training.fine_tune_layers,
                                        train_batch_norm=classifier.from_scratch)
            description = (f"Fine-tuning the top {count} layers of {config.model.backbone} "
                           f"at learning rate {phase_learning_rate(config, phase):.3g}.")
        model = classifier.model
        model.compile(
            optimizer=build_phase_optimizer(config, phase, data.steps_per_epoch),
            loss=keras.losses.CategoricalCrossentropy(
                label_smoothing=config.regularization.label_smoothing),
            metrics=["accuracy"])
        state.phase = phase
        trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
        self.emit(PhaseChanged(phase=phase, epochs=epochs, first_epoch=first_epoch + 1,
                               steps_per_epoch=data.steps_per_epoch,
                               learning_rate=phase_learning_rate(config, phase),
                               trainable_weights=trainable, description=description,
                               planned_epochs=state.planned_epochs))
        initial_epoch, restored = first_epoch, {}
        if self.resume is not None and self.resume.phase == phase:
            restore_checkpoint(self.run_dir, model, self.resume, described=(
                f"{config.model.backbone} at {self.image_size} px, {len(data.classes)} classes"))
            initial_epoch, restored = self.resume.epoch, self.resume.callbacks
            self._begin_writing(self.resume.history)
            self.resume = None
        bridge = EventBridge(state, self.emit, self.stop, batch_size=config.data.batch_size,
                             train_count=data.train_count, best_path=self.run_dir / BEST_MODEL,
                             diagnostics=self.diagnostics)
        callbacks = self._phase_callbacks(bridge, restored)
        if phase == "fine_tune" and _probes_gradients(config, classifier):
            from training.diagnostics.gradients import GradientProbe, fixed_batch

            images, labels = fixed_batch(data, self.image_size)
            callbacks.insert(callbacks.index(bridge) + 1, GradientProbe(
                images, labels, self.diagnostics, self.emit, backbone=classifier.backbone))
        early = next((c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)), None)
        if initial_epoch < first_epoch + epochs:
            model.fit(data.train, validation_data=data.validation, epochs=first_epoch + epochs,
                      initial_epoch=initial_epoch, class_weight=data.class_weight,
                      callbacks=callbacks, shuffle=False, verbose=0)  # the pipeline shuffles
        self._report_decode_failures()
        if state.stop_reason:
            return state.stop_reason
        if early is not None and early.stopped_epoch > 0:
            self.emit(Log(f"Early stopping in the {phase} phase after epoch {early.stopped_epoch + 1}: "
                          f"{config.training.monitor} did not improve for "
                          f"{config.training.early_stopping.patience} epochs."))
            return "early_stopping"
        return None

    def _phase_callbacks(self, bridge, restored: dict[str, Any]) -> list:
        import keras

        config, data = self.config, self.data
        # Order matters: the data's epoch is fixed first; EMA weights are swapped in before
        # the bridge evaluates and saves; the resume checkpoint comes last, after the
        # early-stopping and plateau counters moved.
        callbacks: list = [keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: data.start_epoch(epoch))]
        if config.optimizer.ema:
            callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
        callbacks.append(bridge)
        stateful: dict[str, Any] = {}
        if config.training.early_stopping.patience > 0:
            stateful["early_stopping"] = ResumableEarlyStopping(
                restored.get("early_stopping"), monitor=config.training.monitor,
                patience=config.training.early_stopping.patience,
                restore_best_weights=config.training.early_stopping.restore_best)
        if config.schedule.name == "reduce_on_plateau":
            stateful["plateau"] = ResumableReduceLROnPlateau(
                restored.get("plateau"), monitor=config.training.monitor,
                factor=config.schedule.decay_rate, patience=config.schedule.plateau_patience,
                min_lr=config.schedule.min_learning_rate, verbose=0)
        callbacks += list(stateful.values())
        callbacks.append(ResumeCheckpoint(self.run_dir, self.state, stateful))
        return callbacks

    def _report_decode_failures(self) -> None:
        from training.data.pipeline import describe_failures

        failures = self.data.decode_failures
        if len(failures) > self._reported_failures:
            for path, reason in describe_failures(list(failures[self._reported_failures:])):
                self.emit(Log(f"Skipped {display_path(path)}: {reason}", level="warning"))
                self._decode_skipped.append({"path": path, "reason": reason})
            self._reported_failures = len(failures)
            self._write_data_report(self.data)

    def _write_data_report(self, data) -> None:
        """data_report.json: what was used, and every file skipped (and why) or ignored."""
        if not self.writing:
            self._report_pending = True
            return
        report = data.report().to_dict()
        report.pop("type", None)
        report["skipped"] = report["skipped"] + [
            {"path": display_path(item["path"]), "reason": item["reason"]} for item in self._decode_skipped]
        failed = {item["path"] for item in self._decode_skipped}
        report["train_images"] = data.train_count - len(failed.intersection(data.train_files))
        report["validation_images"] = data.validation_count - len(failed.intersection(data.validation_files))
        write_json_atomic(self.run_dir / "data_report.json", report)

    # -- the end -----------------------------------------------------------------------
    def finish(self, reason: str) -> RunResult:
        if self.diagnostics is not None:
            for hint in self.diagnostics.finish(list(self.history), reason):
                self.emit(hint)
        if self.best_epoch == 0 and reason != "stopped":
            self.emit(Log(f"No model was saved: no epoch ended with a finite "
                          f"{self.config.training.monitor}, so there is no {BEST_MODEL}.",
                          level="error"))
        seconds = time.monotonic() - self.started
        summary = self.write_summary(reason) if self.writing else self.summary(reason)
        self.emit(Finished(run_dir=str(self.run_dir), stop_reason=reason,
                           best_epoch=summary["best_epoch"], best_metrics=summary["best_metrics"],
                           seconds=seconds))
        return RunResult(run_dir=str(self.run_dir), stop_reason=reason,
                         best_epoch=summary["best_epoch"], best_metrics=summary["best_metrics"],
                         history=list(self.history))

    def write_summary(self, reason: str, error: str = "") -> dict[str, Any]:
        summary = self.summary(reason, error)
        write_json_atomic(self.run_dir / "summary.json", summary)
        return summary

    def summary(self, reason: str, error: str = "") -> dict[str, Any]:
        """summary.json's content. ``best_model`` is null when no model was saved."""
        from training.engine.device import versions

        state, data = self.state, self.data
        saved = bool(state and state.best_epoch) and is_regular_file(self.run_dir / BEST_MODEL)
        best = dict(state.best_metrics) if state else {}
        summary = {
            "run_dir": str(self.run_dir),
            "stop_reason": reason,
            "error": error,
            "monitor": self.config.training.monitor,
            "best_epoch": state.best_epoch if state else 0,
            "best_metrics": _finite(best),
            "best_model": BEST_MODEL if saved else None,
            "epochs_completed": len(state.history) if state else 0,
            "epochs_planned": state.planned_epochs if state else 0,
            "started_at": self.started_at,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "elapsed_seconds": round(time.monotonic() - self.started, 3),
            "device": self.device,
            "versions": versions(),
            "backbone": self.config.model.backbone,
            "image_size": self.image_size,
            "classes": data.classes if data else [],
            "train_images": data.train_count if data else 0,
            "validation_images": data.validation_count if data else 0,
        }
        return summary


def _probes_gradients(config: Config, classifier) -> bool:
    """Gradient flow matters when many backbone layers train."""
    layers = config.training.fine_tune_layers
    return classifier.from_scratch or layers == "all" or layers > 50



def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}

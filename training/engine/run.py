"""``run_training``: from a config to a trained, recorded classifier.

The transfer-learning recipe is a sequence of named phases (keras-io
``guides/transfer_learning.py``; ``training.engine.recipe`` says which run, for how long
and at which rate):

1. ``head``: the backbone is frozen (and, when pretrained, called with ``training=False``
   so its BatchNorm layers stay in inference mode); only the new head learns.
2. ``fine_tune``: the top ``training.fine_tune_layers`` layers of the backbone are
   unfrozen (BatchNorm layers stay frozen unless training from scratch), the model is
   recompiled with a fresh optimizer at the fine-tuning rate and training continues.

A phase with 0 epochs is skipped. ``training.mode`` decides which phases run
(``training.engine.recipe.resolve_mode``): from scratch, one fine-tuning phase trains every
layer.

This module imports Keras; ``training.api`` imports it only when a run starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from models.classifier import build_classifier
from models.registry import check_image_size, get_spec
from training.config import Config, ConfigError
from training.data.augment import build_augmenter
from training.data.pipeline import prepare_data as prepare_data_bundle
from training.data.sample import resolve_data_dir
from training.diagnostics.gradients import GradientProbe, fixed_batch
from training.diagnostics.hints import frozen_random_backbone as frozen_random_backbone_hint
from training.diagnostics.monitor import Diagnostics
from training.engine.checkpoint import ResumeState, restore_checkpoint
from training.engine.data_report import DataReportFile, record_data_files
from training.engine.device import describe_device
from training.engine.distribute import (
    OFF,
    Distribution,
    DistributionError,
    MovingStatisticsSync,
    distribution_for,
)
from training.engine.download import fetch_imagenet_weights
from training.engine.errors import StopRequested, user_message
from training.engine.feature_cache import fit_inputs
from training.engine.phase import (
    compile_phase,
    describe_phase,
    phase_callbacks,
    probes_gradients,
    set_trainable,
)
from training.engine.precision import (
    align_schedule,
    decide_for_run,
    reset_precision,
    run_phase_with_backoff,
    use_precision,
)
from training.engine.recipe import (
    PHASES,
    PhasePlan,
    fine_tune_learning_rate,
    frozen_random_backbone,
    phase_learning_rate,
    phase_plan,
    resolve_mode,
)
from training.engine.resume import ResumeRefused, check_same_classes, prepare_resume
from training.engine.state import RunState
from training.engine.step_augmentation import StepAugmentation
from training.engine.summary import now_iso, run_summary
from training.events import EventCallback, Failed, Finished, Log, PhaseChanged, RunStarted
from training.rundir import (
    BEST_MODEL,
    CONFIG_FILE,
    SUMMARY_FILE,
    RunDirError,
    RunRecorder,
    absolute_run_dir,
    fan_out,
    prepare_run_dir,
    read_run_config,
    write_json_atomic,
    write_text_atomic,
)
from training.rundir.labels import write_labels

# The pipeline drops undecodable files, so its length is unknown to Keras, which then
# warns at the end of every epoch that the input "ran out of data": expected here.
warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)


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
        distribution = distribution_for(config)  # first: a cluster's strategy is made before TensorFlow starts
    except (ConfigError, DistributionError) as error:
        return _refused(error, str(run_dir), on_event)
    # A worker of a cluster that is not its chief writes a temporary folder of its own.
    with distribution.writing_folder(run_dir) as folder:
        try:
            lock = prepare_run_dir(folder)
        except RunDirError as error:
            return _refused(error, str(folder), on_event)
        with lock:
            result = _run_session(config, lock.path, on_event, stop, started, distribution=distribution)
    return result if distribution.chief else dataclasses.replace(result, run_dir=str(run_dir))


def resume_training(run_dir: str | Path, *, on_event: EventCallback,
                    stop: threading.Event | None = None) -> RunResult:
    """Continues a stopped, killed or crashed run from its last completed epoch.

    The run goes on in the same folder with the same config.json: same weights, optimizer
    state, schedule position, epoch counter and best-so-far score, so a worse epoch after
    the resume never replaces the best model. Everything is checked before anything is
    written (``training.engine.resume``); a refused resume leaves the folder as it was.

    A run that completed no epoch (killed or failed in its first) has no checkpoint: it
    starts over in the same folder with its own config.json.
    """
    stop = stop or threading.Event()
    started = time.monotonic()
    try:
        distribution = distribution_for(_recorded_config(run_dir))
        with distribution.writing_folder(run_dir, resume=True) as folder:
            try:
                ready = prepare_resume(folder)
            except ResumeRefused as refused:
                return _refused(refused.error, refused.run_dir, on_event)
            with ready.lock:
                result = _run_session(ready.config, ready.lock.path, on_event, stop, started,
                                      resume=ready.checkpoint, notice=ready.notice, distribution=distribution)
    except (ConfigError, DistributionError, OSError) as error:  # TF_CONFIG, or a worker without the run folder
        return _refused(error, str(run_dir), on_event)
    return result if distribution.chief else dataclasses.replace(result, run_dir=str(run_dir))


def _recorded_config(run_dir: str | Path) -> Config | None:
    """The run's config.json, for its ``training.distributed``; None when it cannot be read (the
    resume's own checks then say why)."""
    try:
        return read_run_config(absolute_run_dir(run_dir))
    except RunDirError:
        return None


def _refused(error: Exception, run_dir: str, on_event: EventCallback) -> RunResult:
    """A run that could not begin: nothing was written, the listeners hear why."""
    message = user_message(error, Path(run_dir))
    on_event(Failed(message=message, error_type=type(error).__name__, run_dir=run_dir))
    return RunResult(run_dir=run_dir, stop_reason="failed", error=message,
                     error_type=type(error).__name__)


def _run_session(config: Config, path: Path, on_event: EventCallback, stop: threading.Event,
                 started: float, resume: ResumeState | None = None, notice: str = "",
                 distribution: Distribution = OFF) -> RunResult:
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
                              recorder=recorder, distribution=distribution)
    try:
        return session.run()
    except Exception as error:  # noqa: BLE001 - every failure becomes a Failed event
        message = user_message(error, path)
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
        reset_precision()  # the engine process runs other jobs after this one, in float32


class TrainingSession:
    """One run's moving parts, step by step: ``start``, ``prepare_data``, ``build_model``,
    ``run_phase`` for each phase, ``finish``. ``run`` does them all in order; tests drive
    the steps one by one to look at the model between phases."""

    def __init__(self, config: Config, run_dir: Path, emit: EventCallback, stop: threading.Event,
                 started: float, resume: ResumeState | None = None, notice: str = "",
                 recorder: RunRecorder | None = None, distribution: Distribution = OFF):
        self.config = config
        self.distribution = distribution
        self.resume = resume
        self.notice = notice
        self.recorder = recorder
        # A resume writes nothing into the run folder until the data's classes and the
        # model built from config.json proved to fit the checkpoint (``_begin_writing``).
        self.writing = resume is None
        self.run_dir = run_dir
        self.emit = emit
        self.stop = stop
        self.started = started
        self.started_at = now_iso()
        self.state: RunState | None = None
        self.data = None
        self.data_report: DataReportFile | None = None
        self.image_size = 0
        self.device = ""
        self.plan: list[PhasePlan] = phase_plan(config)
        self.diagnostics: Diagnostics | None = None
        self.classifier = None
        self.evaluation: dict[str, Any] = {}
        self.precision = None  # training.engine.precision.Decision, made by ``start``

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
        config = self.config
        spec = get_spec(config.model.backbone)
        self.image_size = config.data.image_size or spec.default_size
        check_image_size(spec.name, self.image_size, config.model.weights)
        config.data.image_size = self.image_size
        # The mode decides which phases run; config.json records them as they run.
        config.training = resolve_mode(config).training
        # The plan (and its reasons) is read from the config as given; config.json then
        # records the rate the fine-tuning phase really uses.
        self.plan = phase_plan(config)
        config.training.fine_tune_learning_rate = fine_tune_learning_rate(config)
        self.precision = decide_for_run(config, None if self.resume is None else self.resume.policy)
        self.device = describe_device(self.precision.policy)
        self.emit(RunStarted(run_dir=str(self.run_dir), device=self.device, config=config.to_dict()))
        for line in self.precision.logs():
            self.emit(line)
        if self.distribution.strategy is not None:
            self.emit(Log(self.distribution.describe(config)))
        for note in self.distribution.notes:
            self.emit(Log(note))
        for warning in self.distribution.warnings:
            self.emit(Log(warning, level="warning"))
        if not self.distribution.chief:
            self.emit(Log(f"This worker is not the chief: the chief writes the run folder; this worker's files "
                          f"go to {self.run_dir}, removed when the run ends."))
        if self.notice:
            self.emit(Log(self.notice, level="warning"))
        if frozen_random_backbone(config):
            warning = frozen_random_backbone_hint(config)
            self.emit(Log(f"{warning.title}. {warning.message}", level="warning"))
            self.emit(warning)
        if self.resume is None:
            write_text_atomic(self.run_dir / CONFIG_FILE, config.to_json())
        else:
            self.emit(Log(f"Resuming after epoch {self.resume.epoch} ({self.resume.phase} phase); "
                          f"best so far: epoch {self.resume.best_epoch}."))
        self._scale_learning_rates()

        config.data.dir = str(resolve_data_dir(config.data.dir))
        if config.data.validation_dir:
            config.data.validation_dir = str(resolve_data_dir(config.data.validation_dir))
        keras.utils.set_random_seed(config.training.seed)

    def _scale_learning_rates(self) -> None:
        """``training.scale_learning_rate``: the rates times the replicas, from here on (config.json
        keeps the rates as configured, so a resume scales them again by its own replicas)."""
        scale = self.distribution.learning_rate_scale(self.config)
        if scale == 1:
            return
        training = self.config.training
        self.config.optimizer.learning_rate *= scale
        training.fine_tune_learning_rate *= scale
        self.plan = [dataclasses.replace(plan, learning_rate=plan.learning_rate * scale) for plan in self.plan]

    def prepare_data(self):
        config = self.config
        self.emit(Log(f"Scanning {config.data.dir} ..."))
        augmenter = build_augmenter(config.augmentation, image_size=self.image_size,
                                    seed=config.training.seed)
        data = prepare_data_bundle(config.data, self.image_size, augmenter=augmenter, seed=config.data.seed,
                                   augment_in_step=self.precision.augment_in_step,
                                   batch_size=self.distribution.global_batch(config.data.batch_size))
        if self.resume is None:
            write_labels(self.run_dir, data.classes)
        else:
            check_same_classes(self.run_dir, data.classes, config.data.dir)
        report = data.report()
        self.emit(report)
        self.data_report = DataReportFile(self.run_dir, data, self.emit, writing=self.writing)
        self.data_report.write()
        if self.resume is None:
            record_data_files(self.run_dir, data, config.data)
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
                      f"{data.validation_count} validation images"
                      + (f" ({len(data.test_files)} more held out for the test)" if len(data.test_files) else "")
                      + f" at {self.image_size} px."))
        return data

    def _begin_writing(self, history: list[dict[str, Any]]) -> None:
        """A resume passed every check: from here on it writes the run folder."""
        self.writing = True  # set first: a failure to write from here on is summarized
        if self.recorder is not None:
            self.recorder.start_writing(history)
        if self.data_report is not None:
            self.data_report.start_writing()

    def build_model(self):
        config = self.config
        weights = config.model.weights
        if weights == "imagenet":
            fetch_imagenet_weights(config.model.backbone, self.image_size, self.emit, self.stop)
        self.emit(Log(f"Building {config.model.backbone} (weights: {weights}) ..."))
        # Now, not earlier: the model's layers take the policy, the data's augmentation stays float32.
        use_precision(self.precision)
        with self.distribution.scope():  # the weights are mirrored on every replica
            return build_classifier(config.model, config.regularization, image_size=self.image_size,
                                    num_classes=len(self.data.classes), seed=config.training.seed)

    def phases(self) -> list[str]:
        return [plan.phase for plan in self.plan]

    def train(self, classifier) -> RunResult:
        self.classifier = classifier
        phases = self.phases()
        if self.resume is not None and self.resume.phase not in phases:
            raise ValueError(f"The checkpoint was taken in the {self.resume.phase} phase, which this "
                             "run's config.json no longer has; it cannot be resumed.")
        for phase in phases:
            if self.resume is not None and phases.index(phase) < phases.index(self.resume.phase):
                continue  # finished before the checkpoint
            reason = run_phase_with_backoff(self, classifier, phase)  # halves the batch when out of memory
            if reason in ("stopped", "diverged"):
                return self.finish(reason)
            if reason == "early_stopping" and phase == phases[-1]:
                return self.finish(reason)
        return self.finish("completed")

    def run_phase(self, classifier, phase: str) -> str | None:
        """Trains one phase; returns why it ended early (stopped, diverged, early_stopping)."""
        config, data = self.config, self.data
        state = self._run_state()
        plan = next(p for p in self.plan if p.phase == phase)
        first_epoch = sum(p.epochs for p in self.plan[:self.plan.index(plan)])
        unfrozen = set_trainable(classifier, config, phase)
        model = classifier.model
        scope = self.distribution.scope
        with scope():
            compile_phase(model, config, phase, data.steps_per_epoch,
                          jit_compile=self.precision.jit_compile if self.precision else "auto")
        state.phase = phase
        trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
        self.emit(PhaseChanged(phase=phase, epochs=plan.epochs, first_epoch=first_epoch + 1,
                               steps_per_epoch=data.steps_per_epoch,
                               learning_rate=phase_learning_rate(config, phase),
                               trainable_weights=trainable,
                               description=describe_phase(config, plan, unfrozen),
                               planned_epochs=state.planned_epochs))
        initial_epoch, restored = first_epoch, {}
        if self.resume is not None and self.resume.phase == phase:
            with scope():
                restore_checkpoint(self.run_dir, model, self.resume, described=(
                    f"{config.model.backbone} at {self.image_size} px, {len(data.classes)} classes"))
            align_schedule(model, self.resume, first_epoch, data.steps_per_epoch)
            initial_epoch, restored = self.resume.epoch, self.resume.callbacks
            self._begin_writing(self.resume.history)
            self.resume = None
        callbacks = phase_callbacks(config, data, state, emit=self.emit, stop=self.stop,
                                    run_dir=self.run_dir, diagnostics=self.diagnostics,
                                    restored=restored, gradient_probe=self._gradient_probe(classifier),
                                    stop_agreement=self.distribution.any_worker,
                                    probe_batch=(fixed_batch(data, self.image_size)
                                                 if config.training.tensorboard_histograms else None))
        early = next((c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)), None)
        if self.distribution.strategy is not None:
            callbacks.insert(0, MovingStatisticsSync(self.distribution.strategy))
        if initial_epoch < first_epoch + plan.epochs:
            # A frozen backbone's head phase may train the head alone on cached features.
            fit = fit_inputs(classifier, config, phase, data, callbacks, emit=self.emit, stop=self.stop,
                             epochs=(first_epoch, plan.epochs), scope=scope)
            augmenting = contextlib.nullcontext()
            if data.augment_in_step and not fit.cached:  # cached features were augmented already
                with scope():
                    step_augmentation = StepAugmentation(data.augmenter)
                callbacks.insert(1, step_augmentation)  # the key's epoch, with the data's
                augmenting = step_augmentation.augmenting(fit.model)
            # In a cluster each worker keeps its share of every batch.
            train, validation = self.distribution.shard(fit.train), self.distribution.shard(fit.validation)
            with augmenting, self.distribution.building_from_spec(fit.model, train):
                fit.model.fit(train, validation_data=validation, epochs=first_epoch + plan.epochs,
                              initial_epoch=initial_epoch, class_weight=data.class_weight,
                              callbacks=callbacks, shuffle=False, verbose=0)  # the pipeline shuffles
        self.data_report.report_decode_failures()
        if state.stop_reason:
            return state.stop_reason
        if early is not None and early.stopped_epoch > 0:
            self.emit(Log(f"Early stopping in the {phase} phase after epoch {early.stopped_epoch + 1}: "
                          f"{config.training.monitor} did not improve for "
                          f"{config.training.early_stopping.patience} epochs."))
            return "early_stopping"
        return None

    def _run_state(self) -> RunState:
        """The run's state, made at the first phase (restored from the checkpoint on resume)."""
        if self.state is None:
            planned = sum(p.epochs for p in self.plan)
            steps = self.data.steps_per_epoch
            self.state = RunState(monitor=self.config.training.monitor, planned_epochs=planned,
                                  total_steps=planned * steps, steps_per_epoch=steps)
            if self.resume is not None:
                self.state.restore(self.resume)
        return self.state

    def _gradient_probe(self, classifier) -> GradientProbe | None:
        """Fine-tuning many layers: per-group gradient norms once an epoch."""
        if self.state.phase != "fine_tune" or not probes_gradients(self.config, classifier):
            return None
        images, labels = fixed_batch(self.data, self.image_size)
        return GradientProbe(images, labels, self.diagnostics, self.emit, backbone=classifier.backbone)

    # -- the end -----------------------------------------------------------------------
    def finish(self, reason: str) -> RunResult:
        if self.diagnostics is not None:
            for hint in self.diagnostics.finish(list(self.history), reason):
                self.emit(hint)
        if self.best_epoch == 0 and reason != "stopped":
            self.emit(Log(f"No model was saved: no epoch ended with a finite "
                          f"{self.config.training.monitor}, so there is no {BEST_MODEL}.",
                          level="error"))
        if reason != "stopped" and self.writing and self.distribution.chief:
            self.evaluate_best_model()
        seconds = time.monotonic() - self.started
        summary = self.write_summary(reason) if self.writing else self.summary(reason)
        self.emit(Finished(run_dir=str(self.run_dir), stop_reason=reason,
                           best_epoch=summary["best_epoch"], best_metrics=summary["best_metrics"],
                           seconds=seconds, evaluation=dict(self.evaluation)))
        return RunResult(run_dir=str(self.run_dir), stop_reason=reason,
                         best_epoch=summary["best_epoch"], best_metrics=summary["best_metrics"],
                         history=list(self.history))

    def evaluate_best_model(self) -> None:
        """Scores the best model on the validation (and test) images into ``evaluation/``
        (``training.evaluation``). A failure here costs the evaluation, never the run."""
        best = self.run_dir / BEST_MODEL
        if self.classifier is None or self.best_epoch == 0 or not best.is_file():
            return
        data = self.data
        try:
            from training.evaluation import evaluate_after_training

            parts = {"validation": (data.validation_files, data.validation_labels),
                     "test": (data.test_files, data.test_labels)}
            counts = ", ".join(f"{len(files)} {part}" for part, (files, _) in parts.items() if len(files))
            self.emit(Log(f"Evaluating the best model (epoch {self.best_epoch}) on {counts} images ..."))

            if (self.precision is not None and self.precision.policy != "float32") or self.distribution.strategy:
                from models.safe_load import load_model_safely

                # best.keras was saved to compute in float32, as `predict` will run it; and it scores
                # here alone, not on the strategy's replicas (the chief evaluates, the others do not).
                model = load_model_safely(best)
            else:
                model = self.classifier.model
                model.load_weights(best)  # the best epoch's weights, as best.keras holds them
            config = self.config.data
            self.evaluation = evaluate_after_training(
                self.run_dir, model, list(data.classes), self.image_size, parts,
                data={"validation": config.validation_dir or config.dir,
                      "test": config.test_dir or config.dir})
        except Exception as error:  # noqa: BLE001 - the run and its model are fine without it
            self.emit(Log(f"The evaluation of the best model failed ({type(error).__name__}: {error}); "
                          "run `python main.py evaluate` on the run folder to try again.", level="warning"))
            return
        for part, figures in self.evaluation.items():
            self.emit(Log(f"Best model on the {figures['images']} {part} images: accuracy "
                          f"{figures['accuracy']:.1%}, loss {figures['loss']:.4f} "
                          f"({figures['folder']}/report.md)."))

    def write_summary(self, reason: str, error: str = "") -> dict[str, Any]:
        summary = self.summary(reason, error)
        write_json_atomic(self.run_dir / SUMMARY_FILE, summary)
        return summary

    def summary(self, reason: str, error: str = "") -> dict[str, Any]:
        """summary.json's content (``training.engine.summary``)."""
        summary = run_summary(reason, error, run_dir=self.run_dir, config=self.config, state=self.state,
                              data=self.data, image_size=self.image_size,
                              timing=(self.started, self.started_at), device=self.device)
        summary["evaluation"] = dict(self.evaluation)
        summary["batch_size"] = self.config.data.batch_size  # the one in use, after any back-off
        summary["steps_per_epoch"] = self.data.steps_per_epoch if self.data is not None else 0
        summary["distribution"] = self.distribution.summary(self.config)
        return summary


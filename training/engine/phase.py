"""One training phase's Keras setup: which layers train, the compiled model, and the
callbacks of its ``fit`` in the order they must run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import keras

from models.classifier import freeze_backbone, unfreeze_top_layers
from training.config import Config
from training.diagnostics.gradients import GradientProbe
from training.diagnostics.monitor import Diagnostics
from training.engine.callbacks import SnapshotSaver, StopAtEpochEnd, bridge_callbacks, cycle_ends
from training.engine.checkpoint import ResumableEarlyStopping, ResumableReduceLROnPlateau, ResumeCheckpoint
from training.engine.optim import build_phase_optimizer
from training.engine.recipe import PhasePlan, phase_plan
from training.engine.state import RunState
from training.engine.tensorboard import tensorboard_callbacks
from training.events import EventCallback
from training.rundir import BEST_MODEL, SNAPSHOT_DIR


def set_trainable(classifier: Any, config: Config, phase: str) -> int:
    """Freezes the backbone (head phase) or unfreezes its top layers as the fine-tuning
    phase does (BatchNorm layers too when training from scratch); returns how many layers
    were unfrozen.

    Args:
        classifier: a ``models.classifier.Classifier``.
    """
    if phase == "head":
        freeze_backbone(classifier.backbone)
        return 0
    return unfreeze_top_layers(classifier.backbone, config.training.fine_tune_layers,
                               train_batch_norm=classifier.from_scratch)


def describe_phase(config: Config, plan: PhasePlan, unfrozen: int) -> str:
    """The phase's line in the log: what trains, at which rate and why."""
    if plan.phase == "head":
        return (f"Training the new head at learning rate {plan.describe_rate()}; "
                f"{config.model.backbone} is frozen.")
    if config.training.mode == "from_scratch":
        return (f"Training all {unfrozen} layers of {config.model.backbone} from scratch (random "
                f"weights, BatchNorm included) at learning rate {plan.describe_rate()}.")
    return (f"Fine-tuning the top {unfrozen} layers of {config.model.backbone} "
            f"at learning rate {plan.describe_rate()}.")


def compile_phase(model: keras.Model, config: Config, phase: str, steps_per_epoch: int, *,
                  jit_compile: bool | str = "auto") -> None:
    """Compiles with a fresh optimizer whose schedule starts at the phase's base rate.

    ``jit_compile`` is the run's XLA decision (``training.engine.precision``). Under a
    ``mixed_float16`` policy Keras wraps the optimizer in a ``LossScaleOptimizer`` itself.
    """
    model.compile(
        optimizer=build_phase_optimizer(config, phase, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.regularization.label_smoothing),
        metrics=["accuracy"], jit_compile=jit_compile)


def probes_gradients(config: Config, classifier: Any) -> bool:
    """Gradient flow matters when many backbone layers train."""
    layers = config.training.fine_tune_layers
    return classifier.from_scratch or layers == "all" or layers > 50


def phase_callbacks(config: Config, data: Any, state: RunState, *, emit: EventCallback,
                    stop: threading.Event, run_dir: Path, diagnostics: Diagnostics,
                    restored: dict[str, Any], gradient_probe: GradientProbe | None = None,
                    probe_batch: tuple | None = None,
                    stop_agreement: Callable[[bool], bool] | None = None) -> list:
    """The callbacks of one phase's ``fit``, in order.

    Order matters: the data's epoch is fixed first; EMA weights are swapped in before the
    bridge evaluates and saves; the gradient probe reads the epoch the bridge recorded; the
    resume checkpoint comes last, after the early-stopping and plateau counters moved.

    Args:
        data: the run's ``training.data.pipeline.DataBundle``.
        restored: the early-stopping and plateau counters of a resumed checkpoint.
        probe_batch: images and labels for the gradient histograms of
            ``training.tensorboard_histograms``.
        stop_agreement: in a cluster, whether any worker stops (``StopFlag``).
    """
    callbacks: list = [keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: data.start_epoch(epoch))]
    if config.optimizer.ema:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    callbacks += bridge_callbacks(state, emit, stop, batch_size=data.batch_size,
                                  train_count=data.train_count, best_path=run_dir / BEST_MODEL,
                                  diagnostics=diagnostics, stop_agreement=stop_agreement)
    if gradient_probe is not None:
        callbacks.append(gradient_probe)
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
    callbacks += tensorboard_callbacks(run_dir, state, histograms=config.training.tensorboard_histograms,
                                       probe_batch=probe_batch)
    snapshots = snapshot_saver(config, state.phase, data.steps_per_epoch, run_dir, emit)
    if snapshots is not None:
        callbacks.append(snapshots)
    callbacks.append(ResumeCheckpoint(run_dir, state, stateful))
    callbacks.append(StopAtEpochEnd(state, stop, agreement=stop_agreement))
    return callbacks


def snapshot_saver(config: Config, phase: str, steps_per_epoch: int, run_dir: Path,
                   emit: EventCallback) -> SnapshotSaver | None:
    """With ``schedule.save_snapshots`` and ``cosine_restarts``: the saver of the last phase's
    snapshots (an earlier phase's models, e.g. with a frozen backbone, would weaken the ensemble)."""
    s = config.schedule
    plan = phase_plan(config)
    if not (s.save_snapshots and s.name == "cosine_restarts") or plan[-1].phase != phase:
        return None
    first_epoch = sum(p.epochs for p in plan[:-1])
    total = plan[-1].epochs * steps_per_epoch
    warmup = min(int(round(s.warmup_epochs * steps_per_epoch)), max(total - 1, 0))
    ends = cycle_ends(max(1, round(s.restart_epochs * steps_per_epoch)), s.restart_t_mul, warmup, total)
    return SnapshotSaver(run_dir / SNAPSHOT_DIR, first_epoch, steps_per_epoch, ends, emit)

"""How a run uses its device: float16 or float32, XLA or not, and what it does when the GPU
runs out of memory.

Precision and XLA (``training.mixed_precision``, ``training.jit_compile``; ``decide``):

- ``auto`` on a GPU of compute capability 7.0 or more (Volta and newer, with Tensor Cores):
  ``mixed_float16`` (float16 math, float32 weights) and XLA.
- ``auto`` on an older GPU, or one whose capability is unknown: float32 (float16 gains nothing
  without Tensor Cores), XLA on.
- ``auto`` on a CPU: float32 and no XLA. CPUs emulate float16, and XLA made CPU training
  about 7x slower (docs/facts.md#xla-cpu).
- ``on`` and ``off`` force either; ``on`` where it does not pay still runs, with a warning.

The policy is set right before the model is built, after the data pipeline (Keras gives each
layer the global policy when the layer is made: the augmentation layers stay float32, as a
CPU computes best) and set back to float32 when the run ends, so the engine process, which
runs many jobs, is never left in mixed mode. Under ``mixed_float16`` Keras wraps the
optimizer in a ``LossScaleOptimizer`` itself when the model is compiled
(``Model.compile(auto_scale_loss=True)``, the default), and the classifier's ``predictions``
layer computes in float32 (``models.classifier``), so softmax and the loss stay stable and a
saved model outputs float32.

Out of memory (``run_phase_with_backoff``): when a phase runs out of memory, the batch size
is halved, the datasets are rebatched and the phase goes on from its last completed epoch:
from the resume checkpoint when an epoch of the phase completed, else from the weights the
phase began with. config.json and summary.json then record the batch size in use, so a later
resume goes on at it. Below 1 the run fails, saying what to do.
"""

from __future__ import annotations

import gc
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

import keras

from training.engine import device
from training.engine.checkpoint import ResumeState, load_checkpoint
from training.engine.device import GpuInfo
from training.events import Log
from training.rundir import CONFIG_FILE, write_text_atomic

# float16 is faster only on GPUs with Tensor Cores: NVIDIA compute capability 7.0 (Volta)
# and newer (Keras's mixed precision guide; TensorFlow warns below it).
MIXED_PRECISION_MIN_CAPABILITY = (7, 0)
XLA_CPU_FACT = "docs/facts.md#xla-cpu"


@dataclass(frozen=True)
class Decision:
    """What a run computes in, and why.

    Attributes:
        policy: the Keras dtype policy, "float32" or "mixed_float16".
        jit_compile: whether ``model.compile`` gets ``jit_compile=True`` (XLA).
        reasons: one clause per choice, for the run's log.
        device: what it was decided for: "CPU" or e.g. "GPU NVIDIA H100, compute 9.0".
        warnings: a forced setting where it does not pay.
        augment_in_step: augmentation runs inside the training step (Keras layers on the
            accelerator, ``training.engine.step_augmentation``) rather than in the input pipeline.
    """

    policy: str
    jit_compile: bool
    reasons: tuple[str, ...]
    device: str = "CPU"
    warnings: tuple[str, ...] = ()
    augment_in_step: bool = False

    @property
    def mixed(self) -> bool:
        return self.policy == "mixed_float16"

    def describe(self) -> str:
        """e.g. "GPU NVIDIA H100, compute 9.0: mixed precision on (...), XLA on (...)"."""
        return f"{self.device}: {', '.join(self.reasons)}."

    def logs(self) -> list[Log]:
        return [Log(self.describe())] + [Log(text, level="warning") for text in self.warnings]


def decide(config: Any, gpus: Sequence[GpuInfo]) -> Decision:
    """The precision and XLA a run with ``config`` uses on a machine with ``gpus``.

    Args:
        config: a ``training.config.Config``.
        gpus: the machine's GPUs (``training.engine.device.list_gpus``); the run computes on
            the first. Empty: a CPU.
    """
    gpu = gpus[0] if gpus else None
    mixed, mixed_reason, mixed_warning = _mixed_precision(config.training.mixed_precision, gpu)
    xla, xla_reason, xla_warning = _xla(config.training.jit_compile, gpu)
    in_step, xla, place_reasons = _augmentation_place(config, gpu, xla, xla_reason)
    return Decision(policy="mixed_float16" if mixed else "float32", jit_compile=xla,
                    reasons=(mixed_reason, *place_reasons),
                    device="CPU" if gpu is None else f"GPU {gpu.describe()}",
                    warnings=tuple(w for w in (mixed_warning, xla_warning) if w),
                    augment_in_step=in_step)


def _capability(gpu: GpuInfo) -> str:
    major, minor = gpu.compute_capability or (0, 0)
    return f"{major}.{minor}"


def _mixed_precision(setting: str, gpu: GpuInfo | None) -> tuple[bool, str, str]:
    """(on, reason, warning) for ``training.mixed_precision``."""
    fast = (gpu is not None and gpu.compute_capability is not None
            and tuple(gpu.compute_capability) >= MIXED_PRECISION_MIN_CAPABILITY)
    if setting == "off":
        return False, 'float32 (`training.mixed_precision` is "off")', ""
    if setting == "on":
        reason = 'mixed precision on (`training.mixed_precision` is "on")'
        if gpu is None:
            return True, reason, ('Mixed precision is on for a CPU: it runs, but CPUs emulate float16 and '
                                  'training is much slower. Set `training.mixed_precision` to "auto" or "off".')
        if not fast and gpu.compute_capability is not None:
            return True, reason, (f"Mixed precision is on for a GPU of compute capability {_capability(gpu)}: it "
                                  "runs, but float16 is faster only from 7.0 on (Tensor Cores).")
        return True, reason, ""
    if gpu is None:
        return False, "float32 (CPUs emulate float16: slower)", ""
    if gpu.compute_capability is None:
        return False, ('float32 (compute capability unknown; `training.mixed_precision` "on" '
                       "tries float16)"), ""
    if not fast:
        return False, f"float32 (compute capability {_capability(gpu)} < 7.0: float16 would be no faster)", ""
    return True, "mixed precision on (float16 math on Tensor Cores, float32 weights)", ""


def _xla(setting: str, gpu: GpuInfo | None) -> tuple[bool, str, str]:
    """(on, reason, warning) for ``training.jit_compile``."""
    if setting == "off":
        return False, 'XLA off (`training.jit_compile` is "off")', ""
    if setting == "on":
        warning = "" if gpu is not None else (
            f"XLA is on for a CPU: it made CPU training about 7x slower ({XLA_CPU_FACT}). "
            'Set `training.jit_compile` to "auto" or "off".')
        return True, 'XLA on (`training.jit_compile` is "on")', warning
    if gpu is None:
        return False, f"XLA off (XLA made CPU training about 7x slower: {XLA_CPU_FACT})", ""
    return True, "XLA on (compiled training steps: faster after a slower first step)", ""


def _augmentation_place(config: Any, gpu: GpuInfo | None, xla: bool,
                        xla_reason: str) -> tuple[bool, bool, tuple[str, ...]]:
    """(augment in the training step, XLA, reasons) for ``training.augment_in``.

    Some Keras augmentation layers have no XLA kernel (``XLA_AUGMENTATIONS`` lists those that
    compile): inside an XLA-compiled training step they cannot run. ``auto`` then gives up
    XLA on a GPU (``training.jit_compile`` "auto"), or augments in the input pipeline when
    XLA was asked for ("on"). Both forced is refused.
    """
    from training.data.augment import XLA_AUGMENTATIONS, active_augmentations

    setting = config.training.augment_in
    names = active_augmentations(config.augmentation)
    if not names:
        return False, xla, (xla_reason,)
    if setting == "input_pipeline":
        return False, xla, (xla_reason, 'augmentation in the input pipeline (`training.augment_in` is '
                                        '"input_pipeline")')
    if setting == "training_step":
        in_step, why = True, 'augmentation in the training step (`training.augment_in` is "training_step")'
    elif gpu is None:
        return False, xla, (xla_reason, "augmentation in a parallel input pipeline on the CPU")
    else:
        in_step, why = True, "augmentation in the training step on the GPU (the CPU only decodes)"
    no_xla = [name for name in names if name not in XLA_AUGMENTATIONS]
    if not (xla and no_xla):
        return in_step, xla, (xla_reason, why)
    listed = ", ".join(no_xla)
    if config.training.jit_compile != "on":
        return True, False, (f"XLA off ({listed} cannot compile under XLA inside the training step; "
                             '`training.augment_in` "input_pipeline" keeps XLA)', why)
    if setting == "auto":
        return False, True, (xla_reason, f"augmentation in the input pipeline (XLA is on and {listed} "
                                         "cannot compile under XLA)")
    raise ValueError(
        f'`training.jit_compile` is "on" and `training.augment_in` is "training_step", but {listed} '
        'cannot compile under XLA (no XLA kernel). Set `training.augment_in` to "input_pipeline" or '
        '`training.jit_compile` to "auto", or turn those augmentations off.')


def decide_for_run(config: Any, checkpoint_policy: str | None = None) -> Decision:
    """``decide`` for this machine's GPUs; a resumed run keeps its checkpoint's policy.

    Args:
        checkpoint_policy: the policy the checkpoint of a resumed run was written in. Its
            optimizer state restores only under that policy (a mixed_float16 optimizer holds a
            loss scale), so a run moved to another machine goes on in it, and says so.
    """
    decision = decide(config, device.list_gpus())
    return keep_checkpoint_policy(decision, checkpoint_policy)


def keep_checkpoint_policy(decision: Decision, checkpoint_policy: str | None) -> Decision:
    """``decision`` with the checkpoint's policy when the two differ, with the reason and, for
    float16 on a CPU, a warning."""
    if checkpoint_policy is None or checkpoint_policy == decision.policy:
        return decision
    mixed = checkpoint_policy == "mixed_float16"
    reason = (f"{'mixed precision' if mixed else 'float32'} kept from the checkpoint, which was written in "
              f"{checkpoint_policy} (its optimizer state restores only in the same precision)")
    warnings = decision.warnings
    if mixed and decision.device == "CPU":
        warnings += ("This run was checkpointed in mixed precision (on a GPU) and goes on in it on a CPU, "
                     "which emulates float16: much slower. Resume it on a GPU, or start a new run here.",)
    return replace(decision, policy=checkpoint_policy, reasons=(reason, *decision.reasons[1:]),
                   warnings=warnings)


def use_precision(decision: Decision) -> None:
    """Sets Keras's global policy. Call it right before the model is built, after the data:
    layers made from here on compute in the policy's dtype, and the augmentation layers of
    the input pipeline (which runs on the CPU) should stay float32."""
    keras.mixed_precision.set_global_policy(decision.policy)


def reset_precision() -> None:
    """Back to float32, as a fresh process starts (call when a run ends)."""
    keras.mixed_precision.set_global_policy("float32")


# -- out of memory ---------------------------------------------------------------------------
class OutOfMemoryError(RuntimeError):
    """Out of memory even at batch size 1."""


class BackoffResume(ResumeState):
    """A checkpoint the run goes back to after halving its batch size: its optimizer counted
    the phase's steps at the larger size (``align_schedule``)."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is TensorFlow (or XLA) running out of device memory."""
    import tensorflow as tf

    if isinstance(error, tf.errors.ResourceExhaustedError):
        return True
    text = str(error)
    return isinstance(error, (tf.errors.InternalError, tf.errors.UnknownError)) and any(
        marker in text for marker in ("RESOURCE_EXHAUSTED", "Out of memory", "OOM when allocating"))


def run_phase_with_backoff(session: Any, classifier: Any, phase: str) -> str | None:
    """``session.run_phase(classifier, phase)``, halving the batch size on out-of-memory.

    Args:
        session: the run's ``training.engine.run.TrainingSession``.

    Raises:
        OutOfMemoryError: still out of memory at batch size 1.
    """
    start_weights = classifier.model.get_weights()  # host copies: the phase can start again
    start_step = _global_step(session)
    distribution = getattr(session, "distribution", None)
    while True:
        try:
            return session.run_phase(classifier, phase)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            old = session.config.data.batch_size
            if distribution is not None and not distribution.can_back_off:
                raise OutOfMemoryError(_cluster_out_of_memory(session, phase)) from error
            if old <= 1:
                raise OutOfMemoryError(_no_memory_left(session, phase)) from error
            gc.collect()
            where = _go_back(session, classifier, phase, start_weights, start_step)
            new = old // 2
            session.emit(Log(f"Out of {_memory(session)} at batch size {old}: going on at {new}, "
                             f"{where}.", level="warning"))
            _use_batch_size(session, new)


def _global_step(session: Any) -> int:
    if session.state is not None:
        return session.state.global_step
    return session.resume.global_step if session.resume is not None else 0


def _go_back(session: Any, classifier: Any, phase: str, start_weights: list, start_step: int) -> str:
    """Rewinds to the phase's last completed epoch; returns where it goes on from, in words."""
    state = session.state
    first_epoch = _first_epoch(session, phase)
    last = state.history[-1]["epoch"] if state is not None and state.history else 0
    if last > first_epoch:
        checkpoint = load_checkpoint(session.run_dir)
        if checkpoint is None or checkpoint.phase != phase or checkpoint.epoch != last:
            raise RuntimeError(f"Out of memory in the {phase} phase, and its checkpoint of epoch {last} "
                               "is missing: resume the run with a smaller `data.batch_size`.")
        session.resume = BackoffResume(**asdict(checkpoint))
        state.restore(checkpoint)
        return f"from the end of epoch {last}"
    classifier.model.set_weights(start_weights)
    if state is not None:
        state.global_step = start_step
    return f"from the start of the {phase} phase"


def _first_epoch(session: Any, phase: str) -> int:
    phases = [plan.phase for plan in session.plan]
    return sum(plan.epochs for plan in session.plan[:phases.index(phase)])


def _memory(session: Any) -> str:
    return "GPU memory" if session.device.startswith("GPU") else "memory"


def _no_memory_left(session: Any, phase: str) -> str:
    config = session.config
    return (f"Out of {_memory(session)} even at batch size 1 ({config.model.backbone} at "
            f"{session.image_size} px, {phase} phase). Use a smaller `data.image_size`, a smaller "
            "`model.backbone` or fewer `training.fine_tune_layers`; on a GPU of compute capability "
            '7.0 or more, `training.mixed_precision` "on" halves the memory of the activations.')


def _cluster_out_of_memory(session: Any, phase: str) -> str:
    return (f"Out of {_memory(session)} at batch size {session.config.data.batch_size} per replica in the "
            f"{phase} phase. A multi-worker run cannot halve its batch size as one machine does (its "
            "workers would have to do it together): lower `data.batch_size` in the run's config.json and "
            "resume the run on every machine (`python main.py train --resume RUN_DIR`).")


def _use_batch_size(session: Any, batch_size: int) -> None:
    """Rebatches the data (the global batch: ``batch_size`` per replica), keeps the run's step
    counts right and records the size in config.json."""
    session.config.data.batch_size = batch_size
    distribution = getattr(session, "distribution", None)
    rebatch(session.data, batch_size * (distribution.replicas if distribution is not None else 1))
    state = session.state
    if state is not None:
        remaining = max(0, state.planned_epochs - len(state.history))
        state.steps_per_epoch = session.data.steps_per_epoch
        state.total_steps = state.global_step + remaining * state.steps_per_epoch
    if session.writing:
        _record_batch_size(session.run_dir, batch_size)


def rebatch(data: Any, batch_size: int) -> None:
    """Regroups a ``DataBundle``'s batches into batches of ``batch_size``, in the same order.

    Decoding, its cache and its failure record, the epoch order and the augmentation are
    kept: only the size of what reaches the model changes.
    """
    import tensorflow as tf

    def regroup(dataset):
        return dataset.unbatch().batch(batch_size).prefetch(tf.data.AUTOTUNE)

    data.train, data.validation = regroup(data.train), regroup(data.validation)
    data.batch_size = batch_size
    data.steps_per_epoch = math.ceil(data.train_count / batch_size)
    data.validation_steps = math.ceil(data.validation_count / batch_size)


def _record_batch_size(run_dir: Any, batch_size: int) -> None:
    """config.json as written at the start (folders as given), with the batch size in use."""
    from training.config import Config

    path = run_dir / CONFIG_FILE
    config = Config.from_json(path.read_text(encoding="utf-8"))
    config.data.batch_size = batch_size
    write_text_atomic(path, config.to_json())


def align_schedule(model: keras.Model, resume: ResumeState, first_epoch: int, steps_per_epoch: int) -> None:
    """After a back-off to a checkpoint, puts the optimizer's step (the schedule's position) where
    the completed epochs of the phase say at the new batch size; any other resume is left as saved."""
    if isinstance(resume, BackoffResume):
        model.optimizer.iterations.assign((resume.epoch - first_epoch) * steps_per_epoch)

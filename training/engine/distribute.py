"""Training on several devices or machines with tf.distribute (``training.distributed``).

- ``off``: no strategy; the model trains on the first GPU, or the CPU.
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over every GPU of this machine (without a
  GPU, over its logical CPU devices: the tests split the CPU in two). One process; every
  replica holds a copy of the model and trains on its share of each batch; the gradients are
  summed across the replicas and every copy takes the same step.
- ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy``, set up by the ``TF_CONFIG``
  environment variable (``read_tf_config``); every machine runs the same command. TensorFlow's
  collective all-reduce keeps the copies equal, with its default communication options.

The global batch is ``data.batch_size`` times the replicas: the pipeline batches at the global
size and tf.distribute splits each batch across the replicas, so the steps of an epoch are
``ceil(training images / global batch)``. ``training.scale_learning_rate`` multiplies the
learning rates by the replicas (the linear scaling rule).

Input of a cluster: every worker runs the same pipeline, in the same order (a function of the
seed and the epoch), and tf.data keeps the worker's share of every batch
(``AutoShardPolicy.DATA``: the pipeline reads no files that tf.data could share out instead).

Only the chief writes the run folder. The other workers run the same session in a temporary
folder of their own (Keras's multi-worker pattern: every worker saves, the others to
temporary paths), removed when their run ends (``writing_folder``). A resume reads the run
folder on every worker, so it must be on storage they share, or copied to the same path on
each machine: the chief resumes it; the others copy what a resume reads (config, labels,
checkpoint) into their temporary folder and resume that, so every worker restores the same
checkpoint.

Keras 3's ``fit`` calls ``MultiWorkerMirroredStrategy.reduce`` with a nest of values and with
``axis=0`` on scalars, neither of which that strategy accepts: the engine's subclass reduces leaf
by leaf (``_multi_worker_strategy``; docs/facts.md#multi-worker-keras).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from training.config import Config, ConfigError
from training.rundir import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    DATA_FILES_FILE,
    LABEL_FILES,
    STATE_FILE,
    SUMMARY_FILE,
    RunDirError,
    read_checkpoint_state,
)

TF_CONFIG = "TF_CONFIG"
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["machine-a:12345", "machine-b:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')
# Strategies made in this process, by setting: a MultiWorkerMirroredStrategy can be made once.
_STRATEGIES: dict[str, Any] = {}


@dataclass(frozen=True)
class Task:
    """This process's place in a cluster, from TF_CONFIG."""
    kind: str                # "chief" or "worker"
    index: int
    workers: int             # chief and workers together
    has_chief: bool = False  # the cluster lists a chief

    @property
    def chief(self) -> bool:
        """The chief task, or worker 0 of a cluster without one (TensorFlow's rule)."""
        return self.kind == "chief" or (self.kind == "worker" and self.index == 0 and not self.has_chief)

    def describe(self) -> str:
        return f"{self.kind} {self.index}"


@dataclass(frozen=True)
class Distribution:
    """The strategy a run trains under, and what follows from it.

    Attributes:
        setting: ``training.distributed``.
        strategy: the ``tf.distribute.Strategy``; None for ``off``.
        replicas: the model copies that split each batch (1 for ``off``).
        devices: the devices of this machine's replicas.
        task: this process's place in a cluster (``multi_worker``), else None.
        notes: what the run's log says at start about what works otherwise here.
        warnings: the same, for a setting that does not do what it was chosen for.
    """
    setting: str = "off"
    strategy: Any = None
    replicas: int = 1
    devices: tuple[str, ...] = ()
    task: Task | None = None
    notes: tuple[str, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())

    @property
    def chief(self) -> bool:
        """Whether this process writes the run folder."""
        return self.task is None or self.task.chief

    @property
    def workers(self) -> int:
        return 1 if self.task is None else self.task.workers

    @property
    def can_back_off(self) -> bool:
        """Whether a phase may halve the batch size when out of memory: not in a cluster, whose
        workers would have to do it together."""
        return self.setting != "multi_worker"

    def scope(self) -> contextlib.AbstractContextManager:
        """Where the model, its optimizer and every variable of the training step are made."""
        return contextlib.nullcontext() if self.strategy is None else self.strategy.scope()

    def global_batch(self, batch_size: int) -> int:
        return batch_size * self.replicas

    def learning_rate_scale(self, config: Config) -> float:
        return float(self.replicas) if config.training.scale_learning_rate and self.strategy else 1.0

    def shard(self, dataset: Any) -> Any:
        """``dataset`` as ``fit`` should get it: in a cluster, each worker keeps its share of every
        batch (``AutoShardPolicy.DATA``)."""
        if self.setting != "multi_worker":
            return dataset
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return dataset.with_options(options)

    def any_worker(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any worker of the cluster (a collective all-reduce; every
        worker must call it at the same point). Without a cluster: ``flag``."""
        if self.setting != "multi_worker":
            return flag
        import tensorflow as tf

        strategy = self.strategy
        flags = strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(1.0 if flag else 0.0))
        return float(strategy.reduce(tf.distribute.ReduceOp.SUM, flags, axis=None)) > 0

    def describe(self, config: Config) -> str:
        """The run's log line under a strategy, e.g. "Distributed training: MirroredStrategy, 2 replica(s)
        over 2 device(s) of this machine (GPU:0, GPU:1); each step trains on a global batch of 64 (32
        per replica); ..."; "" without one."""
        batch = config.data.batch_size
        if self.strategy is None:
            return ""
        name = type(self.strategy).__name__.lstrip("_")
        where = f"{len(self.devices)} device(s) of this machine ({', '.join(self.devices)})"
        if self.task is not None:
            where = (f"{self.workers} workers, this one {self.task.describe()}"
                     f"{' (the chief: it writes the run folder)' if self.chief else ''}, "
                     f"with {where}")
        scale = self.learning_rate_scale(config)
        rate = (f"learning rates scaled x{scale:g} (`training.scale_learning_rate`)" if scale != 1 else
                "learning rates as configured (`training.scale_learning_rate` is off)")
        return (f"Distributed training: {name}, {self.replicas} replica(s) over {where}; each step trains "
                f"on a global batch of {self.global_batch(batch)} ({batch} per replica); {rate}.")

    def summary(self, config: Config) -> dict[str, Any]:
        """summary.json's ``distribution``."""
        return {
            "setting": self.setting,
            "strategy": None if self.strategy is None else type(self.strategy).__name__.lstrip("_"),
            "replicas": self.replicas,
            "workers": self.workers,
            "devices": list(self.devices),
            "batch_size_per_replica": config.data.batch_size,
            "global_batch_size": self.global_batch(config.data.batch_size),
            "learning_rate_scale": self.learning_rate_scale(config),
        }

    @contextlib.contextmanager
    def building_from_spec(self, model: keras.Model, dataset: Any) -> Iterator[None]:
        """Within the block, ``model.fit`` / ``evaluate`` under the strategy build the model's
        compiled state from ``dataset``'s element spec instead of from its first batch.

        Keras 3 (3.15) reduces the first batch's per-replica shares with ``strategy.reduce``
        only to learn its shapes; shares of unequal size (a first batch smaller than the global
        batch and not divisible by the replicas: a validation set of 5 images on 2 replicas)
        fail there, in ``AddN`` (docs/facts.md#distributed-first-batch). The shapes are the spec's.
        """
        if self.strategy is None:
            yield
            return
        import tensorflow as tf

        example = tf.nest.map_structure(lambda spec: tf.zeros([1, *spec.shape[1:]], spec.dtype),
                                        dataset.element_spec)
        build = type(model)._maybe_symbolic_build

        def build_from_spec(iterator=None, data_batch=None):
            return build(model, data_batch=example if data_batch is None else data_batch)

        # Not setattr: Keras would try to track the function as model state.
        object.__setattr__(model, "_maybe_symbolic_build", build_from_spec)
        try:
            yield
        finally:
            object.__delattr__(model, "_maybe_symbolic_build")

    @contextlib.contextmanager
    def writing_folder(self, run_dir: str | Path, *, resume: bool = False) -> Iterator[Path]:
        """The folder this process writes, for the length of the block: ``run_dir`` itself on the
        chief (and without a cluster); on the other workers a temporary folder, removed after
        the block. For a resume, that folder starts with what a resume reads of ``run_dir``.

        Raises:
            RunDirError: a worker cannot read the run folder it is to resume.
        """
        if self.chief:
            yield Path(run_dir)
            return
        folder = Path(tempfile.mkdtemp(prefix=f"finetune-{self.task.kind}{self.task.index}-"))
        try:
            if resume:
                copy_for_resume(Path(run_dir).expanduser().resolve(), folder)
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


OFF = Distribution()


class DistributionError(RuntimeError):
    """The strategy could not be made (a cluster that cannot be joined)."""


class MovingStatisticsSync(keras.callbacks.Callback):
    """Makes the replicas' BatchNorm moving statistics one again: their mean, before each
    validation and when training ends.

    Keras's BatchNormalization (``synchronized=False``) updates the moving mean and variance of
    each replica from that replica's share of the batch, and nothing averages them, so the
    copies drift apart: validation would score each share with other statistics, and the
    saved model would hold the first replica's alone (docs/facts.md#batchnorm-replicas).
    """

    def __init__(self, strategy: Any):
        super().__init__()
        self.strategy = strategy
        self._average = None

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.synchronize()

    def on_train_end(self, logs: dict | None = None) -> None:
        self.synchronize()

    def synchronize(self) -> None:
        import tensorflow as tf

        if self._average is None:
            variables = [v.value for v in self.model.non_trainable_variables
                         if isinstance(v.value, tf.distribute.DistributedValues) and v.value.dtype.is_floating]

            @tf.function
            def average():
                # In replica context a mirrored variable reads as that replica's own copy.
                copies = self.strategy.run(lambda: [tf.identity(variable) for variable in variables])
                means = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, copies, axis=None)
                for variable, mean in zip(variables, means):
                    variable.assign(mean)

            self._average = average if variables else (lambda: None)
        self._average()


def distribution_for(config: Config | None) -> Distribution:
    """The ``Distribution`` of ``training.distributed``; call it before anything else uses
    TensorFlow (a MultiWorkerMirroredStrategy must be made before TensorFlow starts).

    Raises:
        ConfigError: ``multi_worker`` without a usable TF_CONFIG.
    """
    setting = "off" if config is None else config.training.distributed
    if setting == "off":
        return OFF
    if setting == "mirrored":
        return _mirrored()
    return _multi_worker(read_tf_config(os.environ.get(TF_CONFIG)))


def _mirrored() -> Distribution:
    import tensorflow as tf

    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    devices = gpus or [device.name for device in tf.config.list_logical_devices("CPU")]
    # One strategy per process and set of devices: every MirroredStrategy numbers its collective
    # operations from the same start, so a second one would reuse the first one's numbers for
    # tensors of other shapes (docs/facts.md#distributed-runs-per-process).
    key = "mirrored:" + ",".join(devices)
    strategy = _STRATEGIES.get(key)
    if strategy is None:
        strategy = _STRATEGIES[key] = tf.distribute.MirroredStrategy(devices=devices)
    if not gpus:
        warnings = ("`training.distributed` is \"mirrored\" but this machine has no GPU: the replicas are CPU "
                    "devices sharing the same cores, which adds only the strategy's cost (each step about 2.4x "
                    "slower, docs/facts.md#distributed-overhead). Set it to \"off\" on a CPU.",)
    elif len(gpus) == 1:
        warnings = (f"`training.distributed` is \"mirrored\" but this machine shows one GPU ({_short(gpus[0])}): "
                    "the run trains as on one device, with the strategy's cost.",)
    else:
        warnings = ()
    return Distribution("mirrored", strategy, strategy.num_replicas_in_sync,
                        tuple(_short(d) for d in devices), warnings=warnings)


def _multi_worker(task: Task) -> Distribution:
    import tensorflow as tf

    strategy = _STRATEGIES.get("multi_worker")
    if strategy is None:
        try:
            strategy = _multi_worker_strategy()(
                communication_options=tf.distribute.experimental.CommunicationOptions())
        except Exception as error:  # TensorFlow's own words, said with what to check
            raise DistributionError(
                f"TensorFlow could not join the cluster TF_CONFIG describes ({type(error).__name__}: {error}). "
                "Check that this machine's address and port in TF_CONFIG are its own and free, and that "
                "every machine can reach the others on their ports.") from error
        _STRATEGIES["multi_worker"] = strategy
    devices = tuple(_short(d) for d in strategy.extended.worker_devices)
    notes = (
        "Out of memory ends a multi-worker run (its workers cannot halve the batch size together): "
        "lower `data.batch_size` in the run's config.json and resume it on every machine.",
        "Stop (Ctrl+C) on any worker stops all of them within a batch.")
    return Distribution("multi_worker", strategy, strategy.num_replicas_in_sync, devices, task, notes)


def _short(device: str) -> str:
    """"/job:localhost/replica:0/task:0/device:GPU:1" -> "GPU:1"."""
    return device.rsplit("device:", 1)[-1]


def _multi_worker_strategy() -> type:
    """MultiWorkerMirroredStrategy reducing a nest leaf by leaf, a scalar without an axis: what
    Keras 3's ``fit`` asks of it (docs/facts.md#multi-worker-keras)."""
    import tensorflow as tf

    class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            def one(leaf):
                first = leaf.values[0] if isinstance(leaf, tf.distribute.DistributedValues) else leaf
                rank = getattr(getattr(first, "shape", None), "rank", None)
                return super(_MultiWorkerMirroredStrategy, self).reduce(reduce_op, leaf, axis if rank else None)

            return tf.nest.map_structure(one, value)

    return _MultiWorkerMirroredStrategy


def read_tf_config(text: str | None) -> Task:
    """This process's task from the TF_CONFIG environment variable, checked.

    Raises:
        ConfigError: TF_CONFIG is missing or not what MultiWorkerMirroredStrategy reads; the
            message shows a valid one.
    """
    fix = (f" Set TF_CONFIG on every machine to the same cluster and that machine's own task, e.g. "
           f"{TF_CONFIG_EXAMPLE} on the first machine and index 1 on the second (README: \"Training on "
           "a bigger machine or a cluster\"), or set `training.distributed` to \"mirrored\" (the GPUs of "
           "one machine) or \"off\".")
    if not (text or "").strip():
        raise ConfigError(f"`training.distributed` is \"multi_worker\", but the TF_CONFIG environment "
                          f"variable is not set, so this process does not know its cluster.{fix}")
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error}). Received: TF_CONFIG={text[:200]!r}.{fix}") from None
    cluster = data.get("cluster") if isinstance(data, dict) else None
    task = data.get("task") if isinstance(data, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError(f"TF_CONFIG needs a \"cluster\" and a \"task\" object. Received: "
                          f"TF_CONFIG={text[:200]!r}.{fix}")
    jobs = {kind: cluster.get(kind) or [] for kind in ("chief", "worker")}
    other = sorted(set(cluster) - set(jobs))
    if other:
        raise ConfigError(f"TF_CONFIG's cluster may list \"chief\" and \"worker\" machines only; "
                          f"received {', '.join(map(repr, other))}.{fix}")
    if not all(isinstance(hosts, list) and all(isinstance(h, str) and ":" in h for h in hosts)
               for hosts in jobs.values()):
        raise ConfigError(f"TF_CONFIG's cluster lists each job's machines as \"host:port\" strings. "
                          f"Received: {json.dumps(cluster)[:200]}.{fix}")
    if len(jobs["chief"]) > 1:
        raise ConfigError(f"TF_CONFIG's cluster has {len(jobs['chief'])} chiefs; at most one.{fix}")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in jobs or not isinstance(index, int) or isinstance(index, bool) or not (
            0 <= index < len(jobs[kind])):
        listed = ", ".join(f"{len(hosts)} {k}" for k, hosts in jobs.items() if hosts) or "no machine"
        raise ConfigError(f"TF_CONFIG's task must name a job of the cluster and an index in it; the "
                          f"cluster has {listed}. Received: task={json.dumps(task)[:200]}.{fix}")
    return Task(kind, index, len(jobs["chief"]) + len(jobs["worker"]), has_chief=bool(jobs["chief"]))


def copy_for_resume(run_dir: Path, folder: Path) -> None:
    """Copies what a resume reads of ``run_dir`` (config, labels, summary, data record, the
    checkpoint's state and weights) into ``folder``; links stay links, and the resume refuses them.

    Raises:
        RunDirError: ``run_dir`` cannot be read here (not shared, not copied to this machine).
    """
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunDirError(
            f"This worker cannot read the run folder {run_dir} it is to resume (no {CONFIG_FILE}). Every "
            "worker of a cluster reads it: put it on storage the machines share, or copy it to the same "
            "path on each machine.")
    for name in (CONFIG_FILE, SUMMARY_FILE, DATA_FILES_FILE, *LABEL_FILES):
        if os.path.lexists(run_dir / name):
            shutil.copy2(run_dir / name, folder / name, follow_symlinks=False)
    state = read_checkpoint_state(run_dir)
    if state is not None:
        (folder / CHECKPOINT_DIR).mkdir()
        for name in (STATE_FILE, state["weights_file"]):
            shutil.copy2(run_dir / CHECKPOINT_DIR / name, folder / CHECKPOINT_DIR / name, follow_symlinks=False)

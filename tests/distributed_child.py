"""The processes of tests/test_distributed.py: runs under tf.distribute, each in a process of its own.

    python tests/distributed_child.py mirrored REPORT.json DATA_DIR RUNS_DIR
        On two logical CPU devices (set before TensorFlow starts its devices): a mirrored run; a
        second with `training.scale_learning_rate`, augmentation in the training step and mixed
        precision, which runs out of memory at its first batch; the first stopped after its first
        epoch and resumed.
        Then, in the same process, models of another shape: a frozen head phase with the
        feature cache on, then off, with a validation set of 5 images (smaller than the global
        batch, and not divisible by the replicas); a search of 2 trials.
        REPORT.json gets each run's summary, history and log.

    TF_CONFIG=... python tests/distributed_child.py worker REPORT.json CONFIG.json RUN_DIR
        One worker of a multi-worker cluster: the run, stopped by the chief after epoch 1, then
        resumed to the end; REPORT.json gets both results and the worker's final weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _logical_cpus(count: int) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


class _StopAfter:
    """An event listener that sets the stop flag when epoch ``epoch`` ends (0: never)."""

    def __init__(self, epoch: int = 0):
        self.epoch, self.stop, self.logs = epoch, threading.Event(), []

    def __call__(self, event) -> None:
        name = type(event).__name__
        if name == "Log":
            self.logs.append(event.message)
        if name == "EpochEnd" and event.epoch == self.epoch:
            self.stop.set()


def _result(result, listener: _StopAfter) -> dict:
    summary_file = Path(result.run_dir) / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return {"run_dir": result.run_dir, "stop_reason": result.stop_reason, "error": result.error,
            "history": result.history, "summary": summary, "logs": listener.logs}


@contextlib.contextmanager
def _out_of_memory_once() -> Iterator[None]:
    """The first batch of the block's first ``fit`` runs out of memory (as a GPU's would)."""
    import keras
    import tensorflow as tf

    from training.engine import run as engine

    raised: list[int] = []

    class OutOfMemoryOnce(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if not raised:
                raised.append(batch)
                raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    original = engine.phase_callbacks
    engine.phase_callbacks = lambda *args, **kwargs: [OutOfMemoryOnce()] + original(*args, **kwargs)
    try:
        yield
    finally:
        engine.phase_callbacks = original


def mirrored(report: Path, data_dir: str, runs: Path) -> None:
    _logical_cpus(2)
    from training.config import Config
    from training.engine.run import resume_training, run_training

    base = Config().with_overrides({
        "data.dir": data_dir, "model.backbone": "SmallCNN", "model.weights": "none", "data.image_size": 32,
        "data.batch_size": 8, "training.head_epochs": 0, "training.fine_tune_epochs": 2,
        "training.fine_tune_layers": "all", "training.distributed": "mirrored", "schedule.name": "constant",
        "augmentation.horizontal_flip": True, "augmentation.rotation": 0.0, "augmentation.zoom": 0.0,
        "augmentation.translation": 0.0})
    out = {}
    listener = _StopAfter()
    out["plain"] = _result(run_training(base, run_dir=runs / "plain", on_event=listener), listener)
    scaled = base.with_overrides({"training.scale_learning_rate": True, "training.fine_tune_epochs": 1,
                                  "training.augment_in": "training_step", "training.mixed_precision": "on"})
    listener = _StopAfter()
    with _out_of_memory_once():
        out["scaled"] = _result(run_training(scaled, run_dir=runs / "scaled", on_event=listener), listener)
    listener = _StopAfter(epoch=1)
    out["stopped"] = _result(run_training(base, run_dir=runs / "resumed", on_event=listener,
                                          stop=listener.stop), listener)
    listener = _StopAfter()
    out["resumed"] = _result(resume_training(runs / "resumed", on_event=listener), listener)
    # Models of another shape in the same process (docs/facts.md#distributed-runs-per-process).
    head = base.with_overrides({
        "training.mode": "head_only", "training.head_epochs": 2, "training.fine_tune_epochs": 0,
        "augmentation.horizontal_flip": False, "data.validation_split": 0.125})
    for mode in ("auto", "off"):
        listener = _StopAfter()
        out[f"cache_{mode}"] = _result(run_training(head.with_overrides({"training.feature_cache": mode}),
                                                    run_dir=runs / f"cache_{mode}", on_event=listener), listener)
    # A search trains its trials mirrored, one after another in this process.
    from training.search import run_search

    search = run_search(base.with_overrides({"training.fine_tune_epochs": 1}), out_dir=runs / "search", trials=2)
    out["search"] = {"stop_reason": search.stop_reason, "error": search.error,
                     "trials": [{"status": t.status, "run_dir": t.run_dir, "reason": t.reason} for t in search.trials]}
    report.write_text(json.dumps(out))


def worker(report: Path, config_file: str, run_dir: str) -> None:
    from training.config import Config
    from training.engine import run as engine
    from training.engine.distribute import read_tf_config

    chief = read_tf_config(os.environ["TF_CONFIG"]).chief
    final: dict = {}
    finish = engine.TrainingSession.finish

    def keep_final_weights(session, reason):
        final["weights"] = session.classifier.model.get_weights()
        return finish(session, reason)

    engine.TrainingSession.finish = keep_final_weights
    out = {}
    listener = _StopAfter(epoch=1 if chief else 0)  # the chief alone stops: every worker must stop
    out["stopped"] = _result(engine.run_training(Config.load(config_file), run_dir=run_dir, on_event=listener,
                                                 stop=listener.stop), listener)
    listener = _StopAfter()
    out["resumed"] = _result(engine.resume_training(run_dir, on_event=listener), listener)
    np.savez(report.with_suffix(".npz"), *final["weights"])
    report.write_text(json.dumps(out))


if __name__ == "__main__":
    command, report, *rest = sys.argv[1:]
    if command == "mirrored":
        mirrored(Path(report), rest[0], Path(rest[1]))
    else:
        worker(Path(report), rest[0], rest[1])
        # The report is written: skip TensorFlow's shutdown of the cluster's services, which
        # lingers 10-80 s here (docs/facts.md#multi-worker-keras).
        sys.stdout.flush()
        os._exit(0)

"""Precision and XLA per device (``training.engine.precision``), and the out-of-memory back-off.

The GPU cases fake the device: ``decide`` takes the GPUs as an argument, and
``training.engine.device.list_gpus`` is replaced where a whole run must see one.
"""

from __future__ import annotations

import json
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import make_tiny_dataset
from tests.test_engine import Recorder, small_config
from training.config import Config
from training.engine import device, precision
from training.engine import run as run_module
from training.engine.device import GpuInfo
from training.engine.precision import decide, is_out_of_memory
from training.engine.run import TrainingSession, run_training
from training.events import Failed, Log, PhaseChanged, RunStarted
from training.rundir import read_events

A100 = GpuInfo("NVIDIA A100-SXM4-40GB", (8, 0))
P100 = GpuInfo("Tesla P100-PCIE-16GB", (6, 1))


@pytest.fixture(autouse=True)
def float32_after_each_test():
    yield
    keras.mixed_precision.set_global_policy("float32")


def settings(mixed: str = "auto", xla: str = "auto") -> Config:
    # Flips only: they compile under XLA, so where augmentation runs never changes the XLA
    # decision here (tests/test_step_augmentation.py covers that).
    return Config().with_overrides({"training.mixed_precision": mixed, "training.jit_compile": xla,
                                    "augmentation.rotation": 0.0, "augmentation.zoom": 0.0,
                                    "augmentation.translation": 0.0})


# -- the decision ------------------------------------------------------------------------------
def test_cpu_auto_is_float32_without_xla_and_says_why():
    decision = decide(settings(), [])
    assert (decision.policy, decision.jit_compile, decision.warnings) == ("float32", False, ())
    assert decision.describe().startswith("CPU: float32")
    assert "XLA off (XLA made CPU training about 7x slower: docs/facts.md#xla-cpu)" in decision.describe()


def test_this_machine_has_no_gpu_so_a_run_applies_float32():
    assert device.list_gpus() == []
    decision = precision.decide_for_run(settings())
    assert decision.policy == "float32"
    precision.use_precision(decision)
    assert keras.mixed_precision.global_policy().name == "float32"


def test_recent_gpu_auto_is_mixed_precision_and_xla():
    decision = decide(settings(), [A100])
    assert (decision.policy, decision.jit_compile, decision.warnings) == ("mixed_float16", True, ())
    assert decision.describe().startswith("GPU NVIDIA A100-SXM4-40GB, compute 8.0: mixed precision on")


def test_gpu_without_tensor_cores_or_known_capability_stays_float32_with_xla():
    old = decide(settings(), [P100])
    assert (old.policy, old.jit_compile) == ("float32", True)
    assert "compute capability 6.1 < 7.0" in old.describe()
    unknown = decide(settings(), [GpuInfo("Some GPU")])
    assert (unknown.policy, unknown.jit_compile) == ("float32", True)


def test_off_overrides_a_capable_gpu():
    decision = decide(settings("off", "off"), [A100])
    assert (decision.policy, decision.jit_compile, decision.warnings) == ("float32", False, ())
    assert '`training.mixed_precision` is "off"' in decision.describe()


def test_on_forces_mixed_precision_and_xla_on_a_cpu_with_warnings():
    decision = decide(settings("on", "on"), [])
    assert (decision.policy, decision.jit_compile) == ("mixed_float16", True)
    assert len(decision.warnings) == 2
    assert "much slower" in decision.warnings[0] and "7x slower" in decision.warnings[1]
    assert [log.level for log in decision.logs()] == ["info", "warning", "warning"]


def test_on_for_an_old_gpu_runs_with_a_warning():
    decision = decide(settings("on"), [P100])
    assert decision.policy == "mixed_float16"
    assert "7.0" in decision.warnings[0]


def test_a_faked_gpu_run_sets_mixed_precision_before_the_model_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr(device, "list_gpus", lambda: [A100])
    config = small_config(make_tiny_dataset(tmp_path, size=32),
                          **{"training.jit_compile": "off", "training.head_epochs": 0, "training.fine_tune_epochs": 1,
                             "augmentation.horizontal_flip": True, "augmentation.rotation": 0.05})
    events = Recorder()
    session = TrainingSession(config, tmp_path / "run", events, threading.Event(), 0.0)
    (tmp_path / "run").mkdir()
    session.start()
    session.data = session.prepare_data()
    images, _ = next(iter(session.data.train))
    assert images.dtype == tf.float32  # decoded images reach the model as float32
    assert session.data.augment_in_step  # on a GPU, augmentation runs in the training step
    classifier = session.build_model()
    assert classifier.model.dtype_policy.name == "mixed_float16"
    assert classifier.model.get_layer("predictions").compute_dtype == "float32"
    assert "GPU NVIDIA A100-SXM4-40GB, compute 8.0: mixed precision on" in \
        " ".join(e.message for e in events.of(Log))
    assert events.of(RunStarted)[0].device.endswith("(mixed_float16)")
    session.run_phase(classifier, "fine_tune")
    # Keras wraps the optimizer for loss scaling itself under mixed_float16.
    assert isinstance(classifier.model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert classifier.model.jit_compile is False


# -- a run under mixed precision ---------------------------------------------------------------
def test_mixed_precision_run_saves_a_float32_model_and_leaves_float32_behind(tmp_path):
    config = small_config(make_tiny_dataset(tmp_path, size=32),
                          **{"training.mixed_precision": "on", "training.jit_compile": "off",
                             "training.head_epochs": 0, "training.fine_tune_epochs": 2})
    events = Recorder()
    result = run_training(config, run_dir=tmp_path / "run", on_event=events)
    assert result.ok, result.error
    assert events.of(RunStarted)[0].device.endswith("(mixed_float16)")
    warnings = [e.message for e in events.of(Log) if e.level == "warning"]
    assert any("Mixed precision is on for a CPU" in w for w in warnings)
    assert keras.mixed_precision.global_policy().name == "float32"

    loaded = keras.saving.load_model(tmp_path / "run" / "best.keras", compile=False)
    assert loaded.get_layer("predictions").dtype_policy.name == "float32"
    # Trained mixed, saved to compute in float32 everywhere (models.saving.to_float32).
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    probabilities = loaded.predict(images, verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # The run's own evaluation scored the float32 file, as `predict` does: the same probabilities.
    import csv

    from training import api
    with open(tmp_path / "run" / "evaluation" / "predictions.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    predicted = api.predict(tmp_path / "run", [row["path"] for row in rows], top_k=1)
    for row, item in zip(rows, predicted):
        assert row["predicted"] == item["top"][0]["class"]
        assert float(row["confidence"]) == pytest.approx(item["top"][0]["probability"], abs=1e-5)


def test_a_mixed_precision_checkpoint_resumes_where_auto_would_choose_float32(tmp_path):
    """A run checkpointed in mixed precision (on a GPU) and resumed where ``auto`` means
    float32 (a CPU) goes on in mixed precision, saying why: its optimizer state holds a loss
    scale and restores only into a mixed-precision optimizer."""
    config = small_config(make_tiny_dataset(tmp_path, size=32, per_class=10),
                          **{"training.mixed_precision": "on", "training.jit_compile": "off",
                             "training.head_epochs": 0, "training.fine_tune_epochs": 2})
    stop = threading.Event()
    first = run_training(config, run_dir=tmp_path / "run", stop=stop,
                         on_event=lambda e: stop.set() if type(e).__name__ == "EpochEnd" else None)
    assert first.stop_reason == "stopped"
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["policy"] == "mixed_float16"
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    saved["training"]["mixed_precision"] = "auto"  # as written by a GPU run
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))

    events = Recorder()
    resumed = run_module.resume_training(tmp_path / "run", on_event=events)
    assert resumed.stop_reason == "completed", resumed.error
    logs = [e.message for e in events.of(Log)]
    assert any("mixed precision kept from the checkpoint, which was written in mixed_float16" in m for m in logs)
    assert any("goes on in it on a CPU" in e.message for e in events.of(Log) if e.level == "warning")
    assert events.of(RunStarted)[0].device.endswith("(mixed_float16)")
    assert json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["policy"] == "mixed_float16"


def test_a_checkpoint_from_before_the_policy_was_recorded_is_float32():
    from training.rundir.reading import state_problem

    old = {"epoch": 1, "phase": "head", "global_step": 3, "weights_file": "epoch-0001.weights.h5",
           "best_value": 0.5, "best_epoch": 1, "best_metrics": {}, "history": [{"epoch": 1}],
           "seed_states": [], "callbacks": {}}
    assert state_problem(old) == ""
    from training.engine.checkpoint import ResumeState
    assert ResumeState.from_dict(old).policy == "float32"
    assert "policy" in state_problem({**old, "policy": "float64"})


# -- out of memory -------------------------------------------------------------------------------
class RunsOutOfMemory(keras.callbacks.Callback):
    """Raises TensorFlow's out-of-memory error at the first batch of ``epoch`` (0-based) while the
    batch size is at least ``from_size``; records the optimizer's step at each ``fit``'s start."""

    raised: list[int] = []
    steps_at_start: list[int] = []

    def __init__(self, config, epoch: int, from_size: int):
        super().__init__()
        self.config, self.epoch, self.from_size = config, epoch, from_size
        self.current = 0

    def on_train_begin(self, logs=None):
        RunsOutOfMemory.steps_at_start.append(int(self.model.optimizer.iterations.numpy()))

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        size = self.config.data.batch_size
        if self.current == self.epoch and batch == 0 and size >= self.from_size:
            RunsOutOfMemory.raised.append(size)
            raise tf.errors.ResourceExhaustedError(
                None, None, f"OOM when allocating tensor with shape[{size},32,32,16]")


@pytest.fixture
def out_of_memory(monkeypatch):
    """``out_of_memory(epoch, from_size)``: every phase's fit runs out of memory as said."""
    RunsOutOfMemory.raised, RunsOutOfMemory.steps_at_start = [], []
    original = run_module.phase_callbacks

    def install(epoch: int, from_size: int):
        def callbacks(config, *args, **kwargs):
            return [RunsOutOfMemory(config, epoch, from_size)] + original(config, *args, **kwargs)
        monkeypatch.setattr(run_module, "phase_callbacks", callbacks)
        return RunsOutOfMemory

    return install


def test_out_of_memory_at_the_first_batch_halves_the_batch_and_completes(tmp_path, out_of_memory):
    spy = out_of_memory(epoch=0, from_size=16)
    config = small_config(make_tiny_dataset(tmp_path, size=32), **{"training.head_epochs": 0, "training.fine_tune_epochs": 2})
    events = Recorder()
    result = run_training(config, run_dir=tmp_path / "run", on_event=events)

    assert result.stop_reason == "completed", result.error
    assert spy.raised == [16]
    warnings = [e.message for e in events.of(Log) if e.level == "warning"]
    assert any(w.startswith("Out of memory at batch size 16: going on at 8, from the start of the "
                            "fine_tune phase") for w in warnings), warnings
    assert [h["epoch"] for h in result.history] == [1, 2]
    phases = events.of(PhaseChanged)
    assert [p.steps_per_epoch for p in phases] == [5, 9]  # 72 training images at 16, then at 8
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["data"]["batch_size"] == 8
    assert json.loads((run / "config.json").read_text())["data"]["dir"] == config.data.dir
    assert json.loads((run / "summary.json").read_text())["batch_size"] == 8
    assert any("going on at 8" in e.get("message", "") for e in read_events(run))


def test_out_of_memory_later_in_a_phase_goes_on_from_the_last_checkpoint(tmp_path, out_of_memory):
    spy = out_of_memory(epoch=1, from_size=16)
    config = small_config(make_tiny_dataset(tmp_path, size=32),
                          **{"training.head_epochs": 0, "training.fine_tune_epochs": 3, "schedule.name": "cosine"})
    events = Recorder()
    result = run_training(config, run_dir=tmp_path / "run", on_event=events)

    assert result.stop_reason == "completed", result.error
    assert spy.raised == [16]
    assert any("going on at 8, from the end of epoch 1" in e.message for e in events.of(Log))
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3
    # The restored optimizer goes on where one epoch at batch size 8 puts the schedule.
    assert spy.steps_at_start == [0, 9]


def test_out_of_memory_even_at_batch_size_1_fails_clearly(tmp_path, out_of_memory):
    spy = out_of_memory(epoch=0, from_size=1)
    config = small_config(make_tiny_dataset(tmp_path, size=32, per_class=10),
                          **{"training.head_epochs": 0, "training.fine_tune_epochs": 1, "data.batch_size": 4})
    events = Recorder()
    result = run_training(config, run_dir=tmp_path / "run", on_event=events)

    assert result.stop_reason == "failed"
    assert spy.raised == [4, 2, 1]
    assert "Out of memory even at batch size 1 (SmallCNN at 32 px" in result.error
    assert "`data.image_size`" in result.error
    assert "Traceback" not in events.of(Failed)[0].message


def test_only_out_of_memory_errors_back_off():
    assert is_out_of_memory(tf.errors.ResourceExhaustedError(None, None, "OOM"))
    assert is_out_of_memory(tf.errors.InternalError(None, None, "RESOURCE_EXHAUSTED: Out of memory while "
                                                                "trying to allocate 123 bytes"))
    assert not is_out_of_memory(tf.errors.InternalError(None, None, "Failed to launch kernel"))
    assert not is_out_of_memory(ValueError("OOM"))


def test_the_sanity_tools_train_in_the_runs_precision_and_leave_float32_behind(tmp_path, monkeypatch):
    from training import api

    seen = []
    original = keras.Model.compile

    def compile_spy(model, *args, **kwargs):
        seen.append((keras.mixed_precision.global_policy().name, kwargs.get("jit_compile")))
        return original(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "compile", compile_spy)
    config = small_config(make_tiny_dataset(tmp_path, size=32, per_class=8),
                          **{"training.mixed_precision": "on", "training.jit_compile": "off"})
    events = Recorder()
    api.overfit_tiny_subset(config, images=6, max_epochs=2, on_event=events)
    api.lr_range_test(config, steps=10, on_event=events)
    assert seen == [("mixed_float16", False), ("mixed_float16", False)]
    assert keras.mixed_precision.global_policy().name == "float32"
    assert sum("CPU: mixed precision on" in e.message for e in events.of(Log)) == 2
    assert any("Mixed precision is on for a CPU" in e.message for e in events.of(Log) if e.level == "warning")

"""Augmentation inside the training step (``training.augment_in``,
``training.engine.step_augmentation``): where it runs on which device, that it trains exactly
what the input pipeline's augmentation trains (same seed, same batches), and that the saved
model never holds it.

The GPU cases fake the device: ``decide`` takes the GPUs as an argument."""

from __future__ import annotations

import threading
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import make_tiny_dataset
from tests.test_feature_cache import head_config
from training.config import Config
from training.data.augment import XLA_AUGMENTATIONS, active_augmentations, build_augmenter, with_only
from training.engine.device import GpuInfo
from training.engine.precision import decide
from training.engine.run import resume_training, run_training
from training.engine.step_augmentation import StepAugmentation
from training.events import EpochEnd, Log
from training.rundir import BEST_MODEL

A100 = GpuInfo("NVIDIA A100-SXM4-40GB", (8, 0))
GEOMETRIC = {"augmentation.horizontal_flip": True, "augmentation.rotation": 0.1,
             "augmentation.zoom": 0.1, "augmentation.brightness": 0.2}
FLIPS_ONLY = {"augmentation.horizontal_flip": True, "augmentation.rotation": 0.0,
              "augmentation.zoom": 0.0, "augmentation.translation": 0.0}
ALL_NAMES = active_augmentations(Config().augmentation.__class__(
    horizontal_flip=True, vertical_flip=True, rotation=0.1, zoom=0.1, translation=0.1, random_crop=0.1,
    brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1, gaussian_noise=0.1, cutout=0.1,
    mixup=0.2, cutmix=0.2, randaugment=0.1))


def settings(**overrides) -> Config:
    return Config().with_overrides(overrides)


# -- where augmentation runs -----------------------------------------------------------------
def test_on_a_cpu_auto_augments_in_the_input_pipeline():
    decision = decide(settings(), [])
    assert not decision.augment_in_step and not decision.jit_compile
    assert "augmentation in a parallel input pipeline on the CPU" in decision.describe()


def test_on_a_gpu_auto_augments_in_the_training_step_and_gives_up_xla_only_when_it_must():
    flips = decide(settings(**FLIPS_ONLY), [A100])
    assert flips.augment_in_step and flips.jit_compile  # flips compile under XLA
    assert "augmentation in the training step on the GPU" in flips.describe()
    geometric = decide(settings(), [A100])  # the default augmentation rotates, zooms and shifts
    assert geometric.augment_in_step and not geometric.jit_compile
    assert "XLA off (rotation, zoom, translation cannot compile under XLA" in geometric.describe()
    assert geometric.policy == "mixed_float16"


def test_forced_settings_win_and_a_contradiction_is_refused():
    keep_xla = decide(settings(**{"training.jit_compile": "on"}), [A100])
    assert (keep_xla.augment_in_step, keep_xla.jit_compile) == (False, True)
    assert "augmentation in the input pipeline (XLA is on and rotation" in keep_xla.describe()
    pipeline = decide(settings(**{"training.augment_in": "input_pipeline"}), [A100])
    assert (pipeline.augment_in_step, pipeline.jit_compile) == (False, True)
    step_on_cpu = decide(settings(**{"training.augment_in": "training_step"}), [])
    assert step_on_cpu.augment_in_step and not step_on_cpu.jit_compile
    with pytest.raises(ValueError, match='`training.augment_in` is "training_step".*rotation'):
        decide(settings(**{"training.augment_in": "training_step", "training.jit_compile": "on"}), [A100])
    nothing = decide(settings(**{**FLIPS_ONLY, "augmentation.horizontal_flip": False}), [A100])
    assert not nothing.augment_in_step and "augmentation" not in nothing.describe()


def test_the_xla_list_is_what_really_compiles_under_xla():
    images = tf.random.uniform((4, 16, 16, 3), 0, 255, seed=1)
    labels = tf.one_hot([0, 1, 0, 1], 2)
    compiled = []
    for name in ALL_NAMES:
        augmenter = build_augmenter(with_only(name, True if name.endswith("flip") else 0.2),
                                    image_size=16, seed=3)
        function = tf.function(lambda x, y, a=augmenter: a(x, y, key=(tf.constant(0, tf.int64),
                                                                      tf.constant(0, tf.int64))),
                               jit_compile=True)
        try:
            function(images, labels)
            compiled.append(name)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            pass
    assert set(compiled) == XLA_AUGMENTATIONS


# -- the same training -------------------------------------------------------------------------
def train(config: Config, run_dir: Path, stop=None, on_event=None):
    events: list = []

    def listen(event):
        events.append(event)
        if on_event is not None:
            on_event(event)

    return run_training(config, run_dir=run_dir, on_event=listen, stop=stop), events


def rows(events) -> np.ndarray:
    return np.array([(e.loss, e.accuracy, e.val_loss, e.val_accuracy) for e in events if isinstance(e, EpochEnd)])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("step"), per_class=20, size=32)


def scratch_config(data: Path, place: str, **overrides) -> Config:
    values = {"data.dir": str(data), "data.image_size": 32, "data.batch_size": 16,
              "model.backbone": "SmallCNN", "model.weights": "none", "training.mode": "from_scratch",
              "training.fine_tune_epochs": 2, "optimizer.learning_rate": 0.003,
              "training.augment_in": place, **GEOMETRIC}
    values.update(overrides)
    return Config().with_overrides(values)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """The same 2-epoch run with augmentation in the input pipeline and in the training step."""
    root = tmp_path_factory.mktemp("runs")
    return {place: (*train(scratch_config(data, place), root / place), root / place)
            for place in ("input_pipeline", "training_step")}


def test_augmenting_in_the_training_step_trains_exactly_what_the_pipeline_trains(data, runs, tmp_path):
    pipeline, pipeline_events, _ = runs["input_pipeline"]
    step, step_events, step_dir = runs["training_step"]
    assert pipeline.stop_reason == step.stop_reason == "completed", (pipeline.error, step.error)
    log = " ".join(e.message for e in step_events if isinstance(e, Log))
    assert 'augmentation in the training step (`training.augment_in` is "training_step")' in log
    # Same seed, same key per batch: the same augmented batches (the augmentation itself
    # differs only in float rounding), so the same losses.
    np.testing.assert_allclose(rows(step_events), rows(pipeline_events), rtol=1e-4, atol=1e-4)
    # A control: other augmentations (another seed) train differently.
    _, other_events = train(scratch_config(data, "training_step", **{"training.seed": 7,
                                                                     "training.fine_tune_epochs": 1}),
                            tmp_path / "other")
    assert not np.allclose(rows(other_events)[0], rows(step_events)[0], rtol=1e-4, atol=1e-4)

    model = keras.models.load_model(step_dir / BEST_MODEL)
    assert not [layer for layer in model.layers if layer.name.startswith("random")]
    assert "train_step" not in vars(model)


def test_a_resumed_run_augments_as_the_uninterrupted_one(data, runs, tmp_path):
    _, whole_events, _ = runs["training_step"]
    stop = threading.Event()
    first, _ = train(scratch_config(data, "training_step"), tmp_path / "part", stop=stop,
                     on_event=lambda e: stop.set() if isinstance(e, EpochEnd) and e.epoch == 1 else None)
    assert first.stop_reason == "stopped"
    events: list = []
    resumed = resume_training(tmp_path / "part", on_event=events.append)
    assert resumed.stop_reason == "completed", resumed.error
    np.testing.assert_allclose(rows(events), rows(whole_events)[1:], rtol=1e-4, atol=1e-4)


def test_a_cached_head_phase_caches_the_copies_the_training_step_would_augment(data, tmp_path):
    overrides = {**GEOMETRIC, "training.head_epochs": 4}
    pipeline, pipeline_events = train(head_config(data, **overrides, **{"training.augment_in": "input_pipeline"}),
                                      tmp_path / "pipeline")
    step, step_events = train(head_config(data, **overrides, **{"training.augment_in": "training_step"}),
                              tmp_path / "step")
    assert pipeline.stop_reason == step.stop_reason == "completed", (pipeline.error, step.error)
    assert any("augmented copies" in e.message for e in step_events if isinstance(e, Log))
    np.testing.assert_allclose(rows(step_events), rows(pipeline_events), rtol=1e-4, atol=1e-4)


def test_the_step_key_counts_batches_within_each_epoch():
    augmenter = build_augmenter(with_only("brightness", 0.5), image_size=8, seed=5)
    step = StepAugmentation(augmenter)
    images, labels = tf.fill((2, 8, 8, 3), 100.0), tf.one_hot([0, 1], 2)
    step.on_epoch_begin(2)
    first, _ = step.augment(images, labels)
    second, _ = step.augment(images, labels)
    assert int(step.step.numpy()) == 2
    expected, _ = augmenter(images, labels, key=(2, 1))
    np.testing.assert_allclose(second.numpy(), expected.numpy())
    assert not np.allclose(first.numpy(), second.numpy())
    step.on_epoch_begin(3)
    assert (int(step.epoch.numpy()), int(step.step.numpy())) == (3, 0)

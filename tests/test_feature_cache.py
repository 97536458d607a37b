"""The feature cache (``training.feature_cache``): a frozen backbone's head phase trains the
head on backbone features computed once, with exactly the result of running the backbone
every epoch; it is used only where that holds (or, with augmentation, where it pays), the
log says which and why, and best.keras, resume and prediction see the whole classifier."""

from __future__ import annotations

import threading
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.helpers import make_tiny_dataset, write_broken_files
from training import api
from training.config import Config
from training.engine import feature_cache
from training.engine.checkpoint import load_checkpoint
from training.engine.feature_cache import CacheShape, plan_feature_cache
from training.engine.run import resume_training, run_training
from training.events import BatchEnd, EpochEnd, Log, PhaseChanged

QUIET_AUGMENTATION = {"augmentation.horizontal_flip": False, "augmentation.rotation": 0.0,
                      "augmentation.zoom": 0.0, "augmentation.translation": 0.0}
# On CPU both ways compute the same numbers (seen: bit for bit); the tolerance absorbs a
# different summation order in a batched convolution.
TOLERANCE = 1e-5
CLASSIFIER = "smallcnn_classifier"  # the whole model's name: its fit runs the backbone
SHAPE = CacheShape(train_images=100, validation_images=20, feature_size=128, num_classes=3)


def head_config(data: Path, **overrides) -> Config:
    """A head phase on a frozen SmallCNN (random weights: the features are still features),
    with a head that has every part that could break exactness: BatchNorm, dropout,
    label smoothing, balanced class weights."""
    values = {"data.dir": str(data), "data.image_size": 32, "data.batch_size": 16,
              "model.backbone": "SmallCNN", "model.weights": "none", "training.mode": "head_only",
              "training.head_epochs": 3, "training.fine_tune_epochs": 0,
              "model.head.hidden_units": [16], "model.head.batch_norm": True, "model.head.dropout": 0.3,
              "regularization.label_smoothing": 0.1, "data.class_weight": "balanced",
              "optimizer.learning_rate": 0.01, **QUIET_AUGMENTATION}
    values.update(overrides)
    return Config().with_overrides(values)


class FitSpy:
    """Records what each ``fit`` of a run trained: the model's name and its input's shape."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[str, tuple]] = []
        original = keras.Model.fit

        def fit(model, x=None, *args, **kwargs):
            self.calls.append((model.name, tuple(x.element_spec[0].shape[1:])))
            return original(model, x, *args, **kwargs)

        monkeypatch.setattr(keras.Model, "fit", fit)


def train(config: Config, run_dir: Path, stop: threading.Event | None = None, on_event=None):
    events: list = []

    def listen(event):
        events.append(event)
        if on_event is not None:
            on_event(event)

    result = run_training(config, run_dir=run_dir, on_event=listen, stop=stop)
    return result, events


def cache_logs(events: list) -> list[str]:
    return [e.message for e in events if isinstance(e, Log) and e.message.startswith("Feature cache")]


def epoch_rows(events: list) -> list[tuple[float, ...]]:
    return [(e.loss, e.accuracy, e.val_loss, e.val_accuracy) for e in events if isinstance(e, EpochEnd)]


def assert_same_rows(actual, expected) -> None:
    assert len(actual) == len(expected)
    np.testing.assert_allclose(np.array(actual), np.array(expected), rtol=TOLERANCE, atol=TOLERANCE)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("cache"), size=32)


@pytest.fixture(scope="module")
def exact_runs(data, tmp_path_factory):
    """The same head phase with the cache off and on."""
    root = tmp_path_factory.mktemp("exact")
    runs = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        spy = FitSpy(monkeypatch)
        for mode in ("off", "auto"):
            spy.calls.clear()
            result, events = train(head_config(data, **{"training.feature_cache": mode}), root / mode)
            assert result.stop_reason == "completed", result.error
            runs[mode] = (result, events, list(spy.calls), root / mode)
    return runs


# -- exact ------------------------------------------------------------------------------------
def test_cached_head_phase_trains_the_head_alone_on_features(exact_runs):
    _, events, fits, _ = exact_runs["auto"]
    assert fits == [("head_on_features", (128,))]  # SmallCNN's 128 pooled features, not images
    [log] = cache_logs(events)
    assert "augmentation is off" in log and "72 training and 18 validation images once" in log
    _, events, fits, _ = exact_runs["off"]
    assert fits == [(CLASSIFIER, (32, 32, 3))]
    assert cache_logs(events) == ["Feature cache not used: `training.feature_cache` is off; the head "
                                  "phase runs the backbone on every image every epoch."]


def test_cached_and_end_to_end_head_phases_are_the_same_training(exact_runs):
    off, auto = exact_runs["off"], exact_runs["auto"]
    assert_same_rows(epoch_rows(auto[1]), epoch_rows(off[1]))
    assert auto[0].best_epoch == off[0].best_epoch
    # Each epoch's batches are the same: the per-batch losses the window plots agree too
    # (BatchEnd is throttled by time; an epoch's last batch is always reported).
    off_losses, auto_losses = ({(e.epoch, e.batch): e.loss for e in run[1] if isinstance(e, BatchEnd)}
                               for run in (off, auto))
    both = sorted(off_losses.keys() & auto_losses.keys())
    assert len(both) >= 3
    np.testing.assert_allclose([auto_losses[k] for k in both], [off_losses[k] for k in both], rtol=TOLERANCE)


def test_best_model_is_the_whole_classifier_and_predicts_as_end_to_end(exact_runs, data):
    models = {mode: keras.saving.load_model(run[3] / "best.keras") for mode, run in exact_runs.items()}
    assert models["auto"].input_shape == (None, 32, 32, 3)
    for a, b in zip(models["auto"].get_layer("head_dense_1").get_weights() +
                    models["auto"].get_layer("predictions").get_weights(),
                    models["off"].get_layer("head_dense_1").get_weights() +
                    models["off"].get_layer("predictions").get_weights()):
        np.testing.assert_allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE)
    images = sorted((data / "circle").iterdir())[:4] + sorted((data / "square").iterdir())[:4]
    predicted = {mode: api.predict(run[3], images, top_k=3) for mode, run in exact_runs.items()}
    for got, want in zip(predicted["auto"], predicted["off"]):
        assert "error" not in got
        assert [c["class"] for c in got["top"]] == [c["class"] for c in want["top"]]
        np.testing.assert_allclose([c["probability"] for c in got["top"]],
                                   [c["probability"] for c in want["top"]], rtol=1e-4, atol=1e-6)


# -- when it is used --------------------------------------------------------------------------
def test_the_plan_caches_only_a_frozen_head_phase_that_it_speeds_up():
    config = Config().with_overrides(QUIET_AUGMENTATION)
    exact = plan_feature_cache(config, "head", frozen=True, epochs=5, shape=SHAPE)
    assert (exact.use, exact.copies) == (True, 1) and "(0.1 MB)" in exact.reason
    assert not plan_feature_cache(config, "fine_tune", frozen=True, epochs=5, shape=SHAPE).use
    unfrozen = plan_feature_cache(config, "head", frozen=False, epochs=5, shape=SHAPE)
    assert not unfrozen.use and "the backbone trains" in unfrozen.reason
    off = config.with_overrides({"training.feature_cache": "off"})
    assert not plan_feature_cache(off, "head", frozen=True, epochs=50, shape=SHAPE).use

    augmented = Config().with_overrides({"augmentation.horizontal_flip": True})
    copies = feature_cache.AUGMENTED_COPIES
    few = plan_feature_cache(augmented, "head", frozen=True, epochs=copies, shape=SHAPE)
    assert not few.use and f"{copies} epochs" in few.reason and "augmented copies" in few.reason
    many = plan_feature_cache(augmented, "head", frozen=True, epochs=copies + 1, shape=SHAPE)
    assert many.use and many.copies == copies and f"{copies} backbone passes instead of {copies + 1}" in many.reason


def test_features_over_the_memory_bound_run_end_to_end(data, tmp_path, monkeypatch):
    monkeypatch.setattr(feature_cache, "CACHE_LIMIT_BYTES", 10_000)
    spy = FitSpy(monkeypatch)
    result, events = train(head_config(data, **{"training.head_epochs": 1}), tmp_path / "run")
    assert result.stop_reason == "completed", result.error
    [log] = cache_logs(events)
    assert "Feature cache not used: the features would take" in log and "over the cache's" in log
    assert spy.calls == [(CLASSIFIER, (32, 32, 3))]


def test_fine_tuning_after_a_cached_head_phase_runs_end_to_end(data, tmp_path, monkeypatch):
    spy = FitSpy(monkeypatch)
    config = head_config(data, **{"training.mode": "fine_tune", "training.head_epochs": 1,
                                  "training.fine_tune_epochs": 1, "training.fine_tune_layers": 2})
    result, events = train(config, tmp_path / "run")
    assert result.stop_reason == "completed", result.error
    assert spy.calls == [("head_on_features", (128,)), (CLASSIFIER, (32, 32, 3))]
    assert [e.phase for e in events if isinstance(e, EpochEnd)] == ["head", "fine_tune"]
    assert len(cache_logs(events)) == 1  # the fine-tuning phase is never a candidate


# -- augmentation: a few exact copies ---------------------------------------------------------
def test_augmented_copies_repeat_the_first_epochs_exactly(data, tmp_path, monkeypatch):
    copies = feature_cache.AUGMENTED_COPIES
    flips = {"augmentation.horizontal_flip": True, "augmentation.rotation": 0.1,
             "training.head_epochs": copies + 2}
    spy = FitSpy(monkeypatch)
    off, off_events = train(head_config(data, **flips, **{"training.feature_cache": "off"}), tmp_path / "off")
    auto, auto_events = train(head_config(data, **flips), tmp_path / "auto")
    assert off.stop_reason == auto.stop_reason == "completed", (off.error, auto.error)
    assert [name for name, _ in spy.calls] == [CLASSIFIER, "head_on_features"]
    [log] = cache_logs(auto_events)
    assert f"{copies} augmented copies" in log and f"Epochs 1-{copies}" in log
    assert_same_rows(epoch_rows(auto_events)[:copies], epoch_rows(off_events)[:copies])
    assert len(epoch_rows(auto_events)) == copies + 2

    spy.calls.clear()
    short, events = train(head_config(data, **{**flips, "training.head_epochs": copies}), tmp_path / "short")
    assert short.stop_reason == "completed", short.error
    assert "augmentation is on" in cache_logs(events)[0] and "not used" in cache_logs(events)[0]
    assert spy.calls == [(CLASSIFIER, (32, 32, 3))]


def test_images_that_fail_to_decode_are_left_out_as_end_to_end(tmp_path):
    data = make_tiny_dataset(tmp_path, size=32)
    write_broken_files(data / "circle")
    runs = {}
    for mode in ("off", "auto"):
        result, events = train(head_config(data, **{"training.feature_cache": mode,
                                                    "training.head_epochs": 2}), tmp_path / mode)
        assert result.stop_reason == "completed", result.error
        runs[mode] = events
    assert_same_rows(epoch_rows(runs["auto"]), epoch_rows(runs["off"]))


# -- resume and stop --------------------------------------------------------------------------
def test_a_run_stopped_during_or_after_a_cached_head_phase_resumes_like_an_uninterrupted_one(data, tmp_path):
    config = head_config(data, **{"training.mode": "fine_tune", "training.head_epochs": 2,
                                  "training.fine_tune_epochs": 2, "training.fine_tune_layers": 2,
                                  "augmentation.horizontal_flip": True})
    config = config.with_overrides({"training.head_epochs": feature_cache.AUGMENTED_COPIES + 1})
    reference, reference_events = train(config, tmp_path / "reference")
    assert reference.stop_reason == "completed", reference.error
    assert "augmented copies" in cache_logs(reference_events)[0]
    head_epochs = config.training.head_epochs

    for stop_epoch in (2, head_epochs + 1):  # in the cached head phase; in fine-tuning after it
        stop = threading.Event()

        def stop_in(event, epoch=stop_epoch, stop=stop):
            if isinstance(event, BatchEnd) and event.epoch == epoch:
                stop.set()

        run_dir = tmp_path / f"stopped_{stop_epoch}"
        first, _ = train(config, run_dir, stop=stop, on_event=stop_in)
        assert first.stop_reason == "stopped" and load_checkpoint(run_dir).epoch == stop_epoch - 1
        events: list = []
        resumed = resume_training(run_dir, on_event=events.append)
        assert resumed.stop_reason == "completed", resumed.error
        assert [e.epoch for e in events if isinstance(e, EpochEnd)] == list(range(stop_epoch, head_epochs + 3))
        assert_same_rows([(r["loss"], r["accuracy"], r["val_loss"], r["val_accuracy"]) for r in resumed.history],
                         epoch_rows(reference_events))
        assert [e.phase for e in events if isinstance(e, PhaseChanged)][-1] == "fine_tune"


def test_stop_while_computing_features_stops_the_run(data, tmp_path):
    stop = threading.Event()

    def stop_when_caching(event):
        if isinstance(event, Log) and event.message.startswith("Feature cache:"):
            stop.set()

    result, events = train(head_config(data), tmp_path / "run", stop=stop, on_event=stop_when_caching)
    assert result.stop_reason == "stopped"
    assert not [e for e in events if isinstance(e, EpochEnd)]

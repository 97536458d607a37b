"""Optimizers and schedules: each can be chosen and trains; rates follow their formulas."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops

from training.config import OPTIMIZERS, SCHEDULES, Config
from training.engine.optim import (
    build_optimizer,
    build_phase_optimizer,
    build_schedule,
    planned_learning_rates,
)

SPE = 10  # steps per epoch in these tests


def rates(schedule, steps: int) -> np.ndarray:
    if isinstance(schedule, float):
        return np.full(steps, schedule)
    return np.array([float(ops.convert_to_numpy(schedule(s))) for s in range(steps)])


def schedule_for(name: str, **overrides) -> tuple[Config, object]:
    config = Config().with_overrides({"schedule.name": name, "optimizer.learning_rate": 0.1,
                                      **{f"schedule.{k}": v for k, v in overrides.items()}})
    return config, build_schedule(config.schedule, 0.1, epochs=6, steps_per_epoch=SPE)


def test_step_schedule_formula():
    _, schedule = schedule_for("step", step_epochs=2, decay_rate=0.5)
    steps = np.arange(60)
    np.testing.assert_allclose(rates(schedule, 60), 0.1 * 0.5 ** np.floor(steps / 20), rtol=1e-6)


def test_exponential_schedule_formula():
    _, schedule = schedule_for("exponential", decay_rate=0.8)
    steps = np.arange(60)
    np.testing.assert_allclose(rates(schedule, 60), 0.1 * 0.8 ** (steps / SPE), rtol=1e-5)


def test_inverse_time_schedule_formula():
    _, schedule = schedule_for("inverse_time", decay_rate=0.5)
    steps = np.arange(60)
    np.testing.assert_allclose(rates(schedule, 60), 0.1 / (1 + 0.5 * steps / SPE), rtol=1e-5)


def test_cyclic_schedule_is_triangular():
    _, schedule = schedule_for("cyclic", cycle_epochs=2, min_learning_rate=0.01)
    steps = np.arange(60)
    half = SPE  # a full cycle is 2 epochs, so half a cycle is one epoch
    cycle = np.floor(1 + steps / (2 * half))
    x = np.abs(steps / half - 2 * cycle + 1)
    expected = 0.01 + (0.1 - 0.01) * np.maximum(0, 1 - x)
    np.testing.assert_allclose(rates(schedule, 60), expected, rtol=1e-5, atol=1e-9)
    assert rates(schedule, 60)[10] == pytest.approx(0.1)
    assert rates(schedule, 60)[20] == pytest.approx(0.01)


def test_warmup_is_linear_then_hands_over():
    _, schedule = schedule_for("exponential", decay_rate=0.8, warmup_epochs=1)
    values = rates(schedule, 60)
    np.testing.assert_allclose(values[:SPE], 0.1 * (np.arange(SPE) + 1) / SPE, rtol=1e-5)
    after = np.arange(60 - SPE)
    np.testing.assert_allclose(values[SPE:], 0.1 * 0.8 ** (after / SPE), rtol=1e-5)


def test_cosine_and_one_cycle_shapes():
    _, cosine = schedule_for("cosine", min_learning_rate=0.001)
    values = rates(cosine, 60)
    assert values[0] == pytest.approx(0.1)
    assert np.all(np.diff(values) <= 1e-9)
    assert values[-1] == pytest.approx(0.001 + (0.1 - 0.001) * 0.5 * (1 + math.cos(math.pi * 59 / 60)), rel=1e-4)
    _, one_cycle = schedule_for("one_cycle", one_cycle_warmup_fraction=0.25)
    values = rates(one_cycle, 60)
    assert values[0] == pytest.approx(0.1 / 25)
    assert int(np.argmax(values)) == 15
    assert values[-1] < values[0]


def test_cosine_restarts_restarts():
    _, schedule = schedule_for("cosine_restarts", restart_epochs=1, restart_t_mul=1.0)
    values = rates(schedule, 30)
    assert values[0] == pytest.approx(0.1)
    assert values[SPE - 1] < 0.01
    assert values[SPE] == pytest.approx(0.1)


def test_planned_rates_cover_both_phases():
    config = Config().with_overrides({"training.head_epochs": 2, "training.fine_tune_epochs": 3,
                                      "optimizer.learning_rate": 0.01})
    planned = planned_learning_rates(config, steps_per_epoch=4)
    assert len(planned["head"]) == 8 and len(planned["fine_tune"]) == 12
    assert planned["head"][0] == pytest.approx(0.01)
    assert planned["fine_tune"][0] == pytest.approx(0.001)


def _tiny_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = keras.utils.to_categorical((x[:, 0] > 0).astype(int), 2)
    return x, y


def _train_one_epoch(optimizer) -> tuple[float, float]:
    keras.utils.set_random_seed(0)
    x, y = _tiny_problem()
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return before, model.evaluate(x, y, verbose=0)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains_an_epoch(name):
    overrides = {"optimizer.name": name, "optimizer.learning_rate": 0.05}
    if name == "adadelta":
        overrides["optimizer.learning_rate"] = 1.0  # Adadelta's rate is a scale, 1.0 in the paper
    config = Config().with_overrides(overrides)
    optimizer = build_phase_optimizer(config, "head", steps_per_epoch=8)
    assert type(optimizer).__name__.lower() == name
    before, after = _train_one_epoch(optimizer)
    assert math.isfinite(after) and after < before


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_trains_an_epoch(name):
    config = Config().with_overrides({"schedule.name": name, "optimizer.name": "sgd",
                                      "optimizer.learning_rate": 0.1})
    before, after = _train_one_epoch(build_phase_optimizer(config, "head", steps_per_epoch=8))
    assert math.isfinite(after) and after < before


def test_optimizer_options_reach_keras():
    config = Config().with_overrides({
        "optimizer.name": "sgd", "optimizer.momentum": 0.8, "optimizer.nesterov": True,
        "optimizer.clipnorm": 1.0, "optimizer.weight_decay": 1e-4, "optimizer.ema": True})
    optimizer = build_optimizer(config.optimizer, 0.01)
    assert optimizer.momentum == pytest.approx(0.8) and optimizer.nesterov
    assert optimizer.clipnorm == 1.0 and optimizer.weight_decay == pytest.approx(1e-4)
    assert optimizer.use_ema
    adam = build_optimizer(Config().with_overrides({"optimizer.amsgrad": True}).optimizer, 0.01)
    assert adam.amsgrad

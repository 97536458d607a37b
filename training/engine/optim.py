"""Optimizers and learning-rate schedules, built from the config with Keras's own pieces.

Schedules are defined in epochs in the config (what a person thinks in) and converted to
optimizer steps here. Each training phase gets a fresh optimizer whose schedule starts at
step 0 with that phase's base rate (``training.engine.recipe`` says which rate and why).

Formulas, with ``s`` the 0-based step, ``E`` the steps per epoch and ``lr`` the base rate:

- constant:        lr
- step:            lr * decay_rate ** floor(s / (step_epochs * E))
- exponential:     lr * decay_rate ** (s / E)            (decay_rate per epoch)
- inverse_time:    lr / (1 + decay_rate * s / E)          (1/t decay)
- cosine:          Keras CosineDecay from lr to min_learning_rate over the phase
- cosine_restarts: Keras CosineDecayRestarts (SGDR), first period restart_epochs
- cyclic:          triangular cycle (Smith 2017) between min_learning_rate (or lr/10) and
                   lr, one full cycle every cycle_epochs
- one_cycle:       linear from lr/25 up to lr over one_cycle_warmup_fraction of the phase,
                   then cosine down to min_learning_rate (or lr/1e4)
- reduce_on_plateau: lr, multiplied by decay_rate after plateau_patience epochs without
                   improvement of the monitored metric (Keras ReduceLROnPlateau)

Warm-up (any schedule but reduce_on_plateau): lr_at(s) = schedule(0) * (s + 1) / W for
s < W warm-up steps, then schedule(s - W).
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from training.config import Config, OptimizerConfig, ScheduleConfig
from training.engine.recipe import phase_epochs, phase_learning_rate

PACKAGE = "finetune_studio"


@keras.saving.register_keras_serializable(package=PACKAGE)
class TriangularCyclic(keras.optimizers.schedules.LearningRateSchedule):
    """Triangular cyclical learning rate (Smith 2017, "Cyclical Learning Rates")."""

    def __init__(self, base_learning_rate: float, max_learning_rate: float, step_size: int):
        self.base_learning_rate = float(base_learning_rate)
        self.max_learning_rate = float(max_learning_rate)
        self.step_size = int(step_size)  # half a cycle, in steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        cycle = ops.floor(1.0 + step / (2.0 * self.step_size))
        x = ops.abs(step / self.step_size - 2.0 * cycle + 1.0)
        return self.base_learning_rate + (self.max_learning_rate - self.base_learning_rate) * ops.maximum(0.0, 1.0 - x)

    def get_config(self) -> dict[str, Any]:
        return {"base_learning_rate": self.base_learning_rate,
                "max_learning_rate": self.max_learning_rate, "step_size": self.step_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle policy: linear ramp up to the peak, then cosine annealing to the floor."""

    def __init__(self, max_learning_rate: float, total_steps: int, warmup_fraction: float,
                 initial_learning_rate: float, final_learning_rate: float):
        self.max_learning_rate = float(max_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_fraction = float(warmup_fraction)
        self.initial_learning_rate = float(initial_learning_rate)
        self.final_learning_rate = float(final_learning_rate)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        up_steps = max(1.0, self.warmup_fraction * self.total_steps)
        down_steps = max(1.0, self.total_steps - up_steps)
        up = self.initial_learning_rate + (self.max_learning_rate - self.initial_learning_rate) * step / up_steps
        progress = ops.clip((step - up_steps) / down_steps, 0.0, 1.0)
        down = self.final_learning_rate + 0.5 * (self.max_learning_rate - self.final_learning_rate) * (
            1.0 + ops.cos(math.pi * progress))
        return ops.where(step < up_steps, up, down)

    def get_config(self) -> dict[str, Any]:
        return {"max_learning_rate": self.max_learning_rate, "total_steps": self.total_steps,
                "warmup_fraction": self.warmup_fraction,
                "initial_learning_rate": self.initial_learning_rate,
                "final_learning_rate": self.final_learning_rate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to the wrapped schedule's starting rate, then that schedule."""

    def __init__(self, schedule, warmup_steps: int):
        if isinstance(schedule, dict):
            schedule = keras.optimizers.schedules.deserialize(schedule)
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        target = ops.cast(_rate_at(self.schedule, 0), "float32")
        warm = target * (step + 1.0) / float(self.warmup_steps)
        after = ops.cast(_rate_at(self.schedule, ops.maximum(step - self.warmup_steps, 0.0)), "float32")
        return ops.where(step < self.warmup_steps, warm, after)

    def get_config(self) -> dict[str, Any]:
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule),
                "warmup_steps": self.warmup_steps}


def _rate_at(schedule, step):
    return schedule(step) if callable(schedule) else schedule


def build_schedule(schedule_cfg: ScheduleConfig, base_rate: float, *, epochs: int,
                   steps_per_epoch: int):
    """The learning rate for one phase: a float (constant, plateau) or a Keras schedule."""
    s = schedule_cfg
    spe = max(1, int(steps_per_epoch))
    total = max(1, epochs * spe)
    warmup = int(round(s.warmup_epochs * spe)) if s.name != "reduce_on_plateau" else 0
    warmup = min(warmup, total - 1) if total > 1 else 0
    decay_steps = max(1, total - warmup)
    floor = s.min_learning_rate
    schedules = keras.optimizers.schedules
    if s.name in ("constant", "reduce_on_plateau"):
        schedule: Any = float(base_rate)
    elif s.name == "step":
        schedule = schedules.ExponentialDecay(base_rate, max(1, round(s.step_epochs * spe)),
                                              s.decay_rate, staircase=True)
    elif s.name == "exponential":
        schedule = schedules.ExponentialDecay(base_rate, spe, s.decay_rate)
    elif s.name == "inverse_time":
        schedule = schedules.InverseTimeDecay(base_rate, spe, s.decay_rate)
    elif s.name == "cosine":
        schedule = schedules.CosineDecay(base_rate, decay_steps, alpha=min(1.0, floor / base_rate))
    elif s.name == "cosine_restarts":
        schedule = schedules.CosineDecayRestarts(
            base_rate, max(1, round(s.restart_epochs * spe)), t_mul=s.restart_t_mul,
            m_mul=s.restart_m_mul, alpha=min(1.0, floor / base_rate))
    elif s.name == "cyclic":
        low = floor if floor > 0 else base_rate / 10.0
        schedule = TriangularCyclic(low, base_rate, max(1, round(s.cycle_epochs * spe / 2)))
    elif s.name == "one_cycle":
        schedule = OneCycle(base_rate, decay_steps, s.one_cycle_warmup_fraction,
                            base_rate / 25.0, floor if floor > 0 else base_rate / 1e4)
    else:  # pragma: no cover - validate() refuses unknown names
        raise ValueError(f"Unknown schedule {s.name!r}")
    if warmup > 0:
        if isinstance(schedule, float):
            schedule = schedules.ExponentialDecay(schedule, 1, 1.0)  # a constant as a schedule
        schedule = LinearWarmup(schedule, warmup)
    return schedule


def build_optimizer(optimizer_cfg: OptimizerConfig, learning_rate) -> keras.optimizers.Optimizer:
    """A Keras optimizer as the config says; ``learning_rate`` is a float or a schedule."""
    o = optimizer_cfg
    common: dict[str, Any] = {"learning_rate": learning_rate}
    if o.weight_decay > 0 or o.name == "adamw":
        common["weight_decay"] = o.weight_decay
    if o.clipnorm > 0:
        common["clipnorm"] = o.clipnorm
    if o.clipvalue > 0:
        common["clipvalue"] = o.clipvalue
    if o.ema:
        common.update(use_ema=True, ema_momentum=o.ema_momentum)
    optimizers = keras.optimizers
    if o.name == "sgd":
        return optimizers.SGD(momentum=o.momentum, nesterov=o.nesterov, **common)
    if o.name == "adam":
        return optimizers.Adam(amsgrad=o.amsgrad, **common)
    if o.name == "adamw":
        return optimizers.AdamW(amsgrad=o.amsgrad, **common)
    if o.name == "rmsprop":
        return optimizers.RMSprop(**common)
    if o.name == "adagrad":
        return optimizers.Adagrad(**common)
    if o.name == "nadam":
        return optimizers.Nadam(**common)
    if o.name == "adadelta":
        return optimizers.Adadelta(**common)
    raise ValueError(f"Unknown optimizer {o.name!r}")  # pragma: no cover


def build_phase_optimizer(config: Config, phase: str, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    schedule = build_schedule(config.schedule, phase_learning_rate(config, phase),
                              epochs=phase_epochs(config, phase), steps_per_epoch=steps_per_epoch)
    return build_optimizer(config.optimizer, schedule)


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The rate the optimizer applies at its next step (schedules evaluated at iterations)."""
    return float(ops.convert_to_numpy(optimizer.learning_rate))


def planned_learning_rates(config: Config, steps_per_epoch: int) -> dict[str, list[float]]:
    """The learning rate at every planned step of each phase (plateau: as if no plateau)."""
    rates: dict[str, list[float]] = {}
    for phase in ("head", "fine_tune"):
        epochs = phase_epochs(config, phase)
        if epochs <= 0:
            continue
        schedule = build_schedule(config.schedule, phase_learning_rate(config, phase),
                                  epochs=epochs, steps_per_epoch=steps_per_epoch)
        steps = epochs * max(1, steps_per_epoch)
        if isinstance(schedule, float):
            rates[phase] = [schedule] * steps
        else:
            rates[phase] = [float(ops.convert_to_numpy(schedule(step))) for step in range(steps)]
    return rates

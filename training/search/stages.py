"""Coarse to fine: how the trials are split between the stages, how short a coarse trial is,
and how the fine stage's ranges shrink around the best coarse trials. No Optuna, no Keras."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

from training.config import Config, training_mode
from training.engine.recipe import planned_epochs
from training.search.space import Dimension, SearchSpace

# Two thirds of the trials (rounded up) explore the whole space with short trials; the rest
# train for the configured epochs inside the narrowed ranges. Below 3 trials, all are coarse.
COARSE_SHARE = 2 / 3
MIN_TRIALS_FOR_FINE = 3
# A coarse trial trains a third of each phase's epochs (rounded, at least 1).
COARSE_EPOCH_FRACTION = 1 / 3
# The fine stage centres on the best few coarse trials ...
FINE_TOP_TRIALS = 3
# ... taking in their values plus an eighth of the coarse width on each side, then kept
# between a quarter and a half of the coarse width (log ranges: measured in log space).
FINE_PADDING = 1 / 8
FINE_MIN_WIDTH = 1 / 4
FINE_MAX_WIDTH = 1 / 2


@dataclass(frozen=True)
class Stage:
    name: str                     # "coarse" or "fine"
    trials: int
    overrides: dict[str, Any]     # config changes of every trial of the stage (its epochs)

    def config(self, base: Config) -> Config:
        return base.with_overrides(self.overrides) if self.overrides else base

    def epochs(self, base: Config) -> int:
        """The epochs one trial of this stage trains, over all phases."""
        return planned_epochs(self.config(base))


def plan_stages(config: Config, trials: int) -> list[Stage]:
    """The coarse stage, then the fine stage when there are enough trials for both."""
    if trials < 1:
        raise ValueError(f"`trials` must be >= 1. Received: trials={trials}")
    coarse = trials if trials < MIN_TRIALS_FOR_FINE else math.ceil(trials * COARSE_SHARE)
    stages = [Stage("coarse", coarse, short_epochs(config))]
    if trials > coarse:
        stages.append(Stage("fine", trials - coarse, {}))
    return stages


def short_epochs(config: Config) -> dict[str, Any]:
    """The overrides that shorten each phase that trains to a third of its epochs, at least 1."""
    t = config.training

    def short(epochs: int) -> int:
        return max(1, round(epochs * COARSE_EPOCH_FRACTION))

    mode = training_mode(config)
    if mode == "from_scratch":  # one phase of head + fine-tune epochs (training.config.modes)
        return {"training.head_epochs": 0, "training.fine_tune_epochs": short(t.head_epochs + t.fine_tune_epochs)}
    overrides = {}
    if t.head_epochs > 0:
        overrides["training.head_epochs"] = short(t.head_epochs)
    if t.fine_tune_epochs > 0 and mode != "head_only":
        overrides["training.fine_tune_epochs"] = short(t.fine_tune_epochs)
    return overrides


def narrow_space(space: SearchSpace, top: Sequence[dict[str, Any]]) -> SearchSpace:
    """The fine stage's space: each dimension shrunk around the values of ``top`` (the best
    coarse trials' parameters, best first). A range takes in their values, padded by
    ``FINE_PADDING`` of its width each side, and is then kept between ``FINE_MIN_WIDTH`` and
    ``FINE_MAX_WIDTH`` of its width (centred on the best value when their spread is wider),
    inside the coarse range; a log range shrinks in log space. Choices keep those the top
    trials used. With no ``top`` the space is returned as it is."""
    if not top:
        return space
    return SearchSpace(tuple(narrow_dimension(d, [params[d.key] for params in top if d.key in params])
                             for d in space))


def narrow_dimension(dimension: Dimension, values: Sequence[Any]) -> Dimension:
    """One dimension shrunk around ``values`` (best first); see ``narrow_space``."""
    if not values:
        return dimension
    if dimension.categorical:
        kept = tuple(choice for choice in dimension.choices if choice in values)
        return replace(dimension, choices=kept or dimension.choices)
    low, high = _narrow_interval(dimension, [float(v) for v in values])
    if dimension.integer:
        low, high = math.floor(low + 1e-9), math.ceil(high - 1e-9)
        low, high = max(low, dimension.low), min(high, dimension.high)
        if low == high:  # keep a range: Optuna samples from it, and a fixed value is a config setting
            low, high = (low, low + 1) if low < dimension.high else (low - 1, high)
        return replace(dimension, low=int(low), high=int(high))
    return replace(dimension, low=low, high=high)


def _narrow_interval(dimension: Dimension, values: list[float]) -> tuple[float, float]:
    log = dimension.log

    def scaled(value: float) -> float:
        return math.log10(value) if log else value

    def unscaled(value: float) -> float:
        return 10.0**value if log else value

    low, high = scaled(dimension.low), scaled(dimension.high)
    width = high - low
    points = [min(max(scaled(v), low), high) for v in values]
    start, end = min(points) - width * FINE_PADDING, max(points) + width * FINE_PADDING
    span = end - start
    new_width = min(max(span, width * FINE_MIN_WIDTH), width * FINE_MAX_WIDTH)
    centre = (start + end) / 2 if span <= new_width else points[0]
    new_low, new_high = centre - new_width / 2, centre + new_width / 2
    if new_low < low:
        new_low, new_high = low, low + new_width
    if new_high > high:
        new_low, new_high = high - new_width, high
    # Exact ends where they touch the coarse range (10**log10(x) need not give x back).
    return (dimension.low if new_low <= low else unscaled(new_low),
            dimension.high if new_high >= high else unscaled(new_high))

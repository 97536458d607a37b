"""Small pieces every hint builder shares: rounding a rate, a percentage, the config key of a
phase's learning rate."""

from __future__ import annotations

from training.config import Config, training_mode


def config_or_default(config: Config | None) -> Config:
    """The run's config, or the defaults when the caller knows none."""
    return config if config is not None else Config()


def learning_rate_key(phase: str, config: Config | None = None) -> str:
    """The config key that sets a phase's base learning rate (a fix's key).

    Setting ``training.fine_tune_learning_rate`` sets the fine-tuning rate, whatever the
    recipe would have chosen for ``null`` (``training.engine.recipe``). From scratch, with
    that key left ``null``, the one phase trains at ``optimizer.learning_rate``: the key the
    user set ("Learning rate"), and the one the fix changes. A running from-scratch config
    holds the rate it resolved for ``null``, ``optimizer.learning_rate`` itself, which tells
    it from a fine-tuning rate the user set to another value."""
    if phase == "head":
        return "optimizer.learning_rate"
    if config is not None and training_mode(config) == "from_scratch":
        rate = config.training.fine_tune_learning_rate
        if rate is None or rate == config.optimizer.learning_rate:
            return "optimizer.learning_rate"
    return "training.fine_tune_learning_rate"


def percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def rounded_rate(rate: float) -> float:
    """A learning rate to 2 significant digits (1e-05, not 9.999999999999999e-06)."""
    return float(f"{rate:.2g}")


def random_frozen_head(config: Config | None, phase: str) -> bool:
    """Whether ``phase`` trains a head on a frozen backbone with random weights.

    A head phase always freezes the backbone, and ``model.weights: none`` means random
    weights; the recipe runs a head phase on them only when ``training.mode`` explicitly asks
    for one (``training.engine.recipe.frozen_random_backbone``). Decided from the phase that
    runs rather than by asking the recipe, which lives in the engine (that imports this)."""
    return phase == "head" and config is not None and config.model.weights == "none"

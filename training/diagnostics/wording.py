"""Small pieces every hint builder shares: rounding a rate, a percentage, the config key of a
phase's learning rate."""

from __future__ import annotations

from training.config import Config


def config_or_default(config: Config | None) -> Config:
    """The run's config, or the defaults when the caller knows none."""
    return config if config is not None else Config()


def learning_rate_key(phase: str) -> str:
    """The config key that sets a phase's base learning rate explicitly (a fix's key).

    Setting ``training.fine_tune_learning_rate`` always sets the fine-tuning rate, whatever
    the recipe would have chosen for ``null`` (``training.engine.recipe``)."""
    return "optimizer.learning_rate" if phase == "head" else "training.fine_tune_learning_rate"


def percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def rounded_rate(rate: float) -> float:
    """A learning rate to 2 significant digits (1e-05, not 9.999999999999999e-06)."""
    return float(f"{rate:.2g}")

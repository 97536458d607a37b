"""The transfer-learning recipe as plain data: which phases run, for how long, at what rate.

Keras-free, so the window can show the plan and the CLI can explain it without TensorFlow.
"""

from __future__ import annotations

from training.config import Config

PHASES = ("head", "fine_tune")


def phase_epochs(config: Config, phase: str) -> int:
    return config.training.head_epochs if phase == "head" else config.training.fine_tune_epochs


def fine_tune_learning_rate(config: Config) -> float:
    """The fine-tuning phase's base rate: as configured, else a tenth of the head's."""
    rate = config.training.fine_tune_learning_rate
    return rate if rate is not None else config.optimizer.learning_rate / 10.0


def phase_learning_rate(config: Config, phase: str) -> float:
    return config.optimizer.learning_rate if phase == "head" else fine_tune_learning_rate(config)

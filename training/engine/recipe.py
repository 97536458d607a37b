"""The transfer-learning recipe as plain data: which phases run, for how long, at what rate
and why.

Keras-free, so the window can show the plan and the CLI can explain it without TensorFlow.

Which rate trains each phase:

- ``head``: ``optimizer.learning_rate``.
- ``fine_tune``: ``training.fine_tune_learning_rate`` when it is set. Left ``null``, it is a
  tenth of the head's rate only when a head phase on a pretrained backbone precedes it: the
  head has just learned to read the pretrained features, and large updates would wreck them.
  From scratch (``model.weights: "none"``) or with no head phase (``training.head_epochs: 0``)
  there is nothing to protect, and ``optimizer.learning_rate`` trains: a tenth of the rate the
  user chose only trains ten times slower (docs/facts.md#from-scratch-rate).
"""

from __future__ import annotations

from dataclasses import dataclass

from training.config import Config

PHASES = ("head", "fine_tune")

# Why a phase trains at its rate, in words for the log, the summary and the window.
REASON_HEAD = "optimizer.learning_rate"
REASON_CONFIGURED = "training.fine_tune_learning_rate"
REASON_TENTH = ("a tenth of the head's rate, the usual recipe after a head phase on a "
                "pretrained backbone")
REASON_NO_HEAD_PHASE = "optimizer.learning_rate: no head phase precedes it"
REASON_FROM_SCRATCH = ("optimizer.learning_rate: the backbone starts from random weights "
                       "(model.weights: none), so there are no pretrained features to protect")


@dataclass(frozen=True)
class PhasePlan:
    """One phase that runs: its length, its base learning rate and why that rate."""
    phase: str
    epochs: int
    learning_rate: float
    reason: str

    def describe_rate(self) -> str:
        """e.g. "0.0001 (a tenth of the head's rate, the usual recipe ...)"."""
        return f"{self.learning_rate:.3g} ({self.reason})"


def phase_epochs(config: Config, phase: str) -> int:
    return config.training.head_epochs if phase == "head" else config.training.fine_tune_epochs


def follows_pretrained_head(config: Config) -> bool:
    """Whether fine-tuning comes after a head phase on a pretrained backbone."""
    return config.training.head_epochs > 0 and config.model.weights != "none"


def _fine_tune_rate(config: Config) -> tuple[float, str]:
    rate = config.training.fine_tune_learning_rate
    if rate is not None:
        return rate, REASON_CONFIGURED
    base = config.optimizer.learning_rate
    if follows_pretrained_head(config):
        return base / 10.0, REASON_TENTH
    if config.training.head_epochs == 0:
        return base, REASON_NO_HEAD_PHASE
    return base, REASON_FROM_SCRATCH


def fine_tune_learning_rate(config: Config) -> float:
    """The fine-tuning phase's base rate: as configured, else as the recipe says (above)."""
    return _fine_tune_rate(config)[0]


def phase_learning_rate(config: Config, phase: str) -> float:
    return config.optimizer.learning_rate if phase == "head" else fine_tune_learning_rate(config)


def phase_plan(config: Config) -> list[PhasePlan]:
    """The phases that run (more than 0 epochs), in order, each with its rate and why.

    Computed from the config as the user wrote it: once the run resolved
    ``training.fine_tune_learning_rate`` into config.json, the reason reads "as configured".
    """
    plans = []
    for phase in PHASES:
        epochs = phase_epochs(config, phase)
        if epochs <= 0:
            continue
        if phase == "head":
            rate, reason = config.optimizer.learning_rate, REASON_HEAD
        else:
            rate, reason = _fine_tune_rate(config)
        plans.append(PhasePlan(phase=phase, epochs=epochs, learning_rate=rate, reason=reason))
    return plans


def first_phase(config: Config) -> str:
    """The phase that trains first (a valid config trains at least one)."""
    return "head" if config.training.head_epochs > 0 else "fine_tune"


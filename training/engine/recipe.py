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

Which phases run is the ``training.mode`` (``resolve_mode``): ``fine_tune`` runs both,
``head_only`` the head, ``from_scratch`` one phase in which the whole network (BatchNorm
included) trains from the first epoch, and ``auto`` is ``from_scratch`` exactly when
``model.weights`` is ``none``. A frozen backbone with random weights computes random
features, on which a head learns next to nothing (docs/facts.md#frozen-random-backbone):
only a config that asks for it explicitly gets one, with a warning at start.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.config import Config, resolve_mode, training_mode

__all__ = ["PHASES", "PhasePlan", "training_mode", "resolve_mode", "frozen_random_backbone",
           "phase_epochs", "planned_epochs", "follows_pretrained_head", "fine_tune_learning_rate",
           "phase_learning_rate", "phase_plan", "first_phase"]

PHASES = ("head", "fine_tune")

# Why a phase trains at its rate, in words for the log, the summary and the window.
REASON_HEAD = "optimizer.learning_rate"
REASON_CONFIGURED = "training.fine_tune_learning_rate"
REASON_TENTH = ("a tenth of the head's rate, the usual recipe after a head phase on a "
                "pretrained backbone")
REASON_NO_HEAD_PHASE = "optimizer.learning_rate: no head phase precedes it"
REASON_FROM_SCRATCH = ("optimizer.learning_rate: the backbone starts from random weights "
                       "(`model.weights` is none), so there are no pretrained features to protect")


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


def frozen_random_backbone(config: Config) -> bool:
    """Whether a head phase trains on a backbone with random weights (an explicit
    ``fine_tune`` or ``head_only`` mode with ``model.weights: none``)."""
    resolved = resolve_mode(config)
    return resolved.model.weights == "none" and resolved.training.head_epochs > 0


def phase_epochs(config: Config, phase: str) -> int:
    t = resolve_mode(config).training
    return t.head_epochs if phase == "head" else t.fine_tune_epochs


def planned_epochs(config: Config) -> int:
    """The epochs of all phases that run."""
    return sum(phase_epochs(config, phase) for phase in PHASES)


def follows_pretrained_head(config: Config) -> bool:
    """Whether fine-tuning comes after a head phase on a pretrained backbone."""
    return resolve_mode(config).training.head_epochs > 0 and config.model.weights != "none"


def _fine_tune_rate(config: Config) -> tuple[float, str]:
    config = resolve_mode(config)
    rate = config.training.fine_tune_learning_rate
    if rate is not None:
        return rate, REASON_CONFIGURED
    base = config.optimizer.learning_rate
    if follows_pretrained_head(config):
        return base / 10.0, REASON_TENTH
    if config.model.weights == "none":
        return base, REASON_FROM_SCRATCH
    return base, REASON_NO_HEAD_PHASE


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
    config = resolve_mode(config)  # once: the helpers below then find nothing to change
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
    return "head" if phase_epochs(config, "head") > 0 else "fine_tune"


"""Each trial's settings, from Optuna's ask-and-tell interface: one study per stage (a coarse
trial's score, after a third of the epochs, is not comparable with a fine trial's), a
``RandomSampler`` (log-uniform on log ranges) and, when asked, a ``MedianPruner`` that
judges the epochs a trial reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from training.config import MAX_SEED, Config, ConfigError
from training.search.records import TrialRecord
from training.search.space import Dimension, SearchSpace, SpaceError

# Sampled numbers keep 4 significant digits: a config a person reads (and a difference
# far below what a search can tell apart).
SIGNIFICANT_DIGITS = 4
# Attempts to sample a config the validation accepts (a combination of values can be
# refused where each value alone is allowed) before the search gives up.
MAX_SAMPLING_ATTEMPTS = 50


@dataclass(frozen=True)
class Sample:
    """One trial's settings: ``params`` (searched key -> value) and the valid ``config``."""

    trial: Any                  # the Optuna trial
    params: dict[str, Any]
    config: Config

    def report(self, epoch: int, val_accuracy: float) -> bool:
        """Tells the pruner an epoch's score; True when the trial should stop."""
        self.trial.report(val_accuracy, epoch)
        return self.trial.should_prune()


class StageSampler:
    """Random samples of ``space`` on ``base``, each a config the validation accepts.

    Raises (from ``ask``):
        SpaceError: no valid config in ``MAX_SAMPLING_ATTEMPTS`` samples; names the setting.
    """

    def __init__(self, space: SearchSpace, base: Config, *, seed: int, median_pruning: bool = False,
                 median_startup_trials: int = 3):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=median_startup_trials)
                  if median_pruning else optuna.pruners.NopPruner())
        self.study = optuna.create_study(direction="maximize", pruner=pruner,
                                         sampler=optuna.samplers.RandomSampler(seed=seed % (MAX_SEED + 1)))
        self.space, self.base = space, base
        self.distributions = {d.key: _distribution(d) for d in space}

    def ask(self) -> Sample:
        from optuna.trial import TrialState

        error: ConfigError | None = None
        for _ in range(MAX_SAMPLING_ATTEMPTS):
            trial = self.study.ask(self.distributions)
            params = {d.key: _value(d, trial.params[d.key]) for d in self.space}
            try:
                return Sample(trial, params, self.base.with_overrides(params))
            except ConfigError as refused:
                error = refused
                self.study.tell(trial, state=TrialState.FAIL)
        raise SpaceError(f"The search space gave no valid config in {MAX_SAMPLING_ATTEMPTS} samples; the "
                         f"last was refused: {error} Narrow the ranges that conflict (--space).")

    def tell(self, sample: Sample, record: TrialRecord) -> None:
        from optuna.trial import TrialState

        if record.status == "completed" and record.val_accuracy is not None:
            self.study.tell(sample.trial, record.val_accuracy)
        elif record.status == "pruned":
            self.study.tell(sample.trial, state=TrialState.PRUNED)
        else:
            self.study.tell(sample.trial, state=TrialState.FAIL)


def _distribution(dimension: Dimension):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dimension.categorical:
        # As JSON text: Optuna's choices are plain scalars, a config's can be lists too.
        return CategoricalDistribution([json.dumps(choice) for choice in dimension.choices])
    if dimension.integer:
        return IntDistribution(int(dimension.low), int(dimension.high), log=dimension.log)
    return FloatDistribution(float(dimension.low), float(dimension.high), log=dimension.log)


def _value(dimension: Dimension, sampled: Any) -> Any:
    if dimension.categorical:
        return json.loads(sampled)
    if dimension.integer:
        return int(sampled)
    rounded = float(f"{sampled:.{SIGNIFICANT_DIGITS}g}")
    return min(max(rounded, dimension.low), dimension.high)

"""The events of a search, beside the engine's (``training.events``) in one stream.

A search's listener receives these and, between a ``TrialStarted`` and its
``TrialFinished``, every event of that trial's run (``BatchEnd``, ``EpochEnd``, ...).
Plain values only, like the engine's events, so they cross a process boundary as JSON.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from training.events import Event


@dataclass(frozen=True)
class SearchStarted(Event):
    """A search began: its folder, its stages and the space of its coarse stage."""
    type: ClassVar[str] = "search_started"
    out_dir: str
    trials: int
    stages: list = field(default_factory=list)   # [{"stage": "coarse", "trials": 4, "epochs": 1}, ...]
    space: dict = field(default_factory=dict)    # SPACE.json form


@dataclass(frozen=True)
class StageStarted(Event):
    """A stage begins; the fine stage's ``space`` is narrowed around ``around`` (trial numbers)."""
    type: ClassVar[str] = "search_stage"
    stage: str                   # coarse, fine
    trials: int
    epochs: int                  # of each trial, over all phases
    space: dict = field(default_factory=dict)
    around: list = field(default_factory=list)


@dataclass(frozen=True)
class TrialStarted(Event):
    type: ClassVar[str] = "trial_started"
    trial: int                   # 1-based over the whole search
    stage: str
    run_dir: str
    params: dict = field(default_factory=dict)   # searched key -> value
    epochs: int = 0              # planned, over all phases


@dataclass(frozen=True)
class TrialFinished(Event):
    """A trial's run ended. ``status``: completed, pruned (the loss diverged, or the trial
    fell below the median of its stage), stopped (by the user) or failed."""
    type: ClassVar[str] = "trial_finished"
    trial: int
    stage: str
    run_dir: str
    status: str
    val_accuracy: float | None = None   # of the run's best epoch; None when no epoch completed
    val_loss: float | None = None
    params: dict = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class SearchFinished(Event):
    """The search ended (``stop_reason``: completed or stopped); ``best_trial`` is 0 when no
    trial completed, and then there is no best_config.json."""
    type: ClassVar[str] = "search_finished"
    out_dir: str
    stop_reason: str
    best_trial: int = 0
    best_config: str = ""
    best_metrics: dict = field(default_factory=dict)
    trials_csv: str = ""


SEARCH_EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls for cls in (SearchStarted, StageStarted, TrialStarted, TrialFinished, SearchFinished)
}


def search_event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuilds a search event from its ``to_dict()`` form (e.g. one line sent by a child process)."""
    data = dict(data)
    cls = SEARCH_EVENT_TYPES[data.pop("type")]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})

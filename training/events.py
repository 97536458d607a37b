"""Plain, immutable events that the engine emits while it works.

Every event holds only plain Python values (str, int, float, bool, None, and lists or
dicts of those), so it can cross a thread or process boundary and be written as one JSON
line of a run's ``events.jsonl``. The GUI and the CLI are two listeners of one stream.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        data = {"type": self.type}
        data.update({k: to_jsonable(v) for k, v in dataclasses.asdict(self).items()})
        return data


@dataclass(frozen=True)
class RunStarted(Event):
    """A run began: where it writes and on what it computes."""
    type: ClassVar[str] = "started"
    run_dir: str
    device: str
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Log(Event):
    """A human-readable engine message (level: info, warning, error)."""
    type: ClassVar[str] = "log"
    message: str
    level: str = "info"


@dataclass(frozen=True)
class DataReport(Event):
    """What was found in the data folders and how they were split."""
    type: ClassVar[str] = "data_report"
    root: str
    classes: list = field(default_factory=list)
    train_counts: dict = field(default_factory=dict)
    validation_counts: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)   # [{"path": ..., "reason": ...}]
    ignored: list = field(default_factory=list)   # [{"path": ..., "reason": ...}]
    warnings: list = field(default_factory=list)  # [str]
    # The held-out test set, never trained on nor used to pick the best epoch: images per
    # class ({} when there is none), and the test folder when it is one (`data.test_dir`).
    test_counts: dict = field(default_factory=dict)
    test_dir: str | None = None


@dataclass(frozen=True)
class PhaseChanged(Event):
    """A training stage begins: "head" (backbone frozen) or "fine_tune"."""
    type: ClassVar[str] = "phase"
    phase: str
    epochs: int
    first_epoch: int             # 1-based global epoch number where this phase starts
    steps_per_epoch: int
    learning_rate: float
    trainable_weights: int       # number of trainable parameters
    description: str = ""
    planned_epochs: int = 0      # epochs planned over all phases of the run


@dataclass(frozen=True)
class BatchEnd(Event):
    """One training step ended (emitted at most every ~0.1 s, plus each epoch's last)."""
    type: ClassVar[str] = "batch"
    phase: str
    epoch: int                   # 1-based global epoch
    batch: int                   # 1-based batch within the epoch
    batches: int                 # batches per epoch
    step: int                    # 1-based global step over the whole run
    loss: float
    accuracy: float
    learning_rate: float
    images_per_second: float
    eta_seconds: float           # remaining time for the whole run, estimated


@dataclass(frozen=True)
class EpochEnd(Event):
    """One epoch ended with its training and validation metrics."""
    type: ClassVar[str] = "epoch"
    phase: str
    epoch: int                   # 1-based global epoch
    epochs: int                  # planned epochs over all phases
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    seconds: float
    images_per_second: float
    is_best: bool = False


@dataclass(frozen=True)
class Hint(Event):
    """A diagnosis of the run or the data, with fixes written as config changes."""
    type: ClassVar[str] = "hint"
    id: str
    severity: str                # info, warning, error
    title: str
    message: str
    evidence: dict = field(default_factory=dict)
    fixes: list = field(default_factory=list)    # [{"optimizer.learning_rate": 1e-4}, ...]


@dataclass(frozen=True)
class Finished(Event):
    """The run ended and its run directory is complete."""
    type: ClassVar[str] = "finished"
    run_dir: str
    stop_reason: str             # completed, early_stopping, stopped, diverged
    best_epoch: int              # 0 when no epoch completed
    best_metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    # The best model scored at the end: {"validation": {...}, "test": {...}} (summary.json's).
    evaluation: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Failed(Event):
    """The run failed; ``message`` says what went wrong and what to do."""
    type: ClassVar[str] = "error"
    message: str
    error_type: str = ""
    run_dir: str = ""
    details: str = ""            # traceback, for the log; never the headline


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (RunStarted, Log, DataReport, PhaseChanged, BatchEnd, EpochEnd, Hint, Finished, Failed)
}

EventCallback = Callable[[Event], None]


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuilds an event from one line of ``events.jsonl``."""
    data = dict(data)
    cls = EVENT_TYPES[data.pop("type")]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def to_jsonable(value: Any) -> Any:
    # JSON has no NaN or infinity; None keeps a line parseable by every JSON reader.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value

"""Resume checkpoints: after every completed epoch, everything needed to go on.

``checkpoint/epoch-NNNN.weights.h5`` holds the model's weights and the optimizer's state
(its iteration count, hence the schedule's position); ``checkpoint/state.json`` holds the
epoch counter, the best-so-far score (Keras's BackupAndRestore forgets it,
keras-team/keras#17012), the metric history, the random-number states of the model's
layers (dropout) and the early-stopping and plateau counters. The weights file is written
first and ``state.json`` names it, both atomically, so a kill at any instant leaves a
consistent pair; older weight files are removed only after ``state.json`` moved on.

Data order and augmentation are functions of (seed, epoch) (``DataBundle.start_epoch``),
so the resumed run sees the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from training.events import to_jsonable
from training.rundir import atomic_path, write_json_atomic

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"


@dataclass
class ResumeState:
    epoch: int                       # global epochs completed
    phase: str
    global_step: int
    weights_file: str
    best_value: float | None = None
    best_epoch: int = 0
    best_metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    seed_states: list[list[int]] = field(default_factory=list)
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)


def _seed_variables(model: keras.Model) -> list:
    return [v for v in model.variables if "seed_generator_state" in v.path]


def save_checkpoint(run_dir: Path, model: keras.Model, state: ResumeState) -> None:
    folder = run_dir / CHECKPOINT_DIR
    folder.mkdir(exist_ok=True)
    state.weights_file = f"epoch-{state.epoch:04d}.weights.h5"
    state.seed_states = [[int(x) for x in np.asarray(v.numpy())] for v in _seed_variables(model)]
    with atomic_path(folder / state.weights_file, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    write_json_atomic(folder / STATE_FILE, to_jsonable(asdict(state)))
    for old in folder.glob("epoch-*.weights.h5"):
        if old.name != state.weights_file:
            old.unlink(missing_ok=True)


def load_checkpoint(run_dir: Path) -> ResumeState | None:
    path = Path(run_dir) / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    state = ResumeState(**data)
    if state.best_value is None and state.best_epoch:
        state.best_value = math.nan
    return state


def restore_checkpoint(run_dir: Path, model: keras.Model, state: ResumeState) -> None:
    """Loads weights, optimizer state and layer random states into a freshly built,
    compiled model set up for ``state.phase``."""
    model.optimizer.build(model.trainable_variables)
    model.load_weights(Path(run_dir) / CHECKPOINT_DIR / state.weights_file)
    variables = _seed_variables(model)
    if len(variables) != len(state.seed_states):
        raise ValueError(f"The checkpoint in {run_dir} does not match the model built from its "
                         "config.json (different random layers); it cannot be resumed.")
    for variable, value in zip(variables, state.seed_states):
        variable.assign(np.asarray(value, dtype=variable.dtype))


class _CountersSurviveResume:
    """Mixin for Keras callbacks: ``counters`` and ``best`` are restored after
    ``on_train_begin`` (which resets them) and reported by ``snapshot``."""

    counters: tuple[str, ...] = ("wait",)

    def __init__(self, restored: dict[str, Any] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.restored = restored or {}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for name in self.counters:
            if name in self.restored:
                setattr(self, name, int(self.restored[name]))
        if self.restored.get("best") is not None:
            self.best = float(self.restored["best"])

    def snapshot(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: int(getattr(self, name)) for name in self.counters}
        data["best"] = None if self.best is None else float(self.best)
        return data


class ResumableEarlyStopping(_CountersSurviveResume, keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience counter and best score survive a resume."""


class ResumableReduceLROnPlateau(_CountersSurviveResume, keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose counters survive a resume (the rate is optimizer state)."""

    counters = ("wait", "cooldown_counter")


class ResumeCheckpoint(keras.callbacks.Callback):
    """Saves a resume checkpoint after every completed epoch; runs after all other callbacks."""

    def __init__(self, run_dir: Path, run_state, stateful: dict[str, Any]):
        super().__init__()
        self.run_dir = run_dir
        self.run_state = run_state
        self.stateful = stateful

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        rs = self.run_state
        if rs.interrupted or not rs.history or rs.history[-1]["epoch"] != epoch + 1:
            return
        save_checkpoint(self.run_dir, self.model, ResumeState(
            epoch=epoch + 1, phase=rs.phase, global_step=rs.global_step, weights_file="",
            best_value=rs.best_value, best_epoch=rs.best_epoch, best_metrics=dict(rs.best_metrics),
            history=[dict(row) for row in rs.history],
            callbacks={name: cb.snapshot() for name, cb in self.stateful.items()}))

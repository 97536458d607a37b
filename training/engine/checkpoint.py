"""Resume checkpoints: after every completed epoch, everything needed to go on.

``checkpoint/epoch-NNNN.weights.h5`` holds the model's weights and the optimizer's state
(its iteration count, hence the schedule's position); ``checkpoint/state.json`` holds the
epoch counter, the best-so-far score (Keras's BackupAndRestore forgets it,
keras-team/keras#17012), the metric history, the random-number states of the model's
layers (dropout) and the early-stopping and plateau counters. The weights file is written
first and ``state.json`` names it, both atomically, so a kill at any instant leaves a
consistent pair; older weight files are removed only after ``state.json`` moved on. A
write that fails (a full disk) leaves the previous pair as it was.

Data order and augmentation are functions of (seed, epoch) (``DataBundle.start_epoch``),
so the resumed run sees the batches the uninterrupted run would have seen.

The state file's format and its checks belong to ``training.rundir`` (no Keras there, so
the window can ask "resumable?" cheaply); this module reads and writes the weights.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

from training.events import to_jsonable
from training.rundir import (
    CHECKPOINT_DIR,
    STATE_FILE,
    RunDirError,
    atomic_path,
    checkpoint_folder,
    read_checkpoint_state,
    write_json_atomic,
)


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
    # The Keras dtype policy the model trained in: a mixed_float16 optimizer holds a loss
    # scale, so its state restores only into a model compiled under the same policy.
    policy: str = "float32"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResumeState:
        """From a state checked by ``training.rundir.read_checkpoint_state``."""
        state = cls(**data)
        if state.best_value is None and state.best_epoch:
            state.best_value = math.nan
        return state


def _seed_variables(model: keras.Model) -> list:
    return [v for v in model.variables if "seed_generator_state" in v.path]


def save_checkpoint(run_dir: Path, model: keras.Model, state: ResumeState) -> None:
    folder = checkpoint_folder(run_dir)
    state.weights_file = f"epoch-{state.epoch:04d}.weights.h5"
    state.seed_states = [[int(x) for x in np.asarray(v.numpy())] for v in _seed_variables(model)]
    with atomic_path(folder / state.weights_file, suffix=".weights.h5") as tmp:
        try:
            model.save_weights(tmp)
        except BaseException:
            _close_hdf5_file(tmp)
            raise
    write_json_atomic(folder / STATE_FILE, to_jsonable(asdict(state)))
    for old in folder.glob("epoch-*.weights.h5"):
        if old.name != state.weights_file:
            old.unlink(missing_ok=True)


def _close_hdf5_file(path: Path) -> None:
    """Closes the HDF5 file a failed ``save_weights`` left open on ``path``.

    Keras does not close its weights file when a write fails. h5py then closes it when the
    traceback is dropped or at exit, flushes into the still-full disk, fails, and the
    process ends in a segmentation fault. Emptying the file first frees its space, so the
    close succeeds; the file is deleted right after anyway.
    """
    target = os.path.abspath(path)
    for file_id in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        try:
            if os.path.abspath(os.fsdecode(file_id.name)) != target:
                continue
            os.ftruncate(file_id.get_vfd_handle(), 0)
            h5py.File(file_id).close()
        except Exception:  # noqa: BLE001 - best effort: the save already failed and says why
            continue


def load_checkpoint(run_dir: Path) -> ResumeState | None:
    """The checked checkpoint state of a run folder, or None when it has none.

    Raises:
        RunDirError: state.json is damaged or names a missing weights file.
    """
    data = read_checkpoint_state(Path(run_dir))
    return None if data is None else ResumeState.from_dict(data)


def check_weights_file(run_dir: Path, state: ResumeState) -> None:
    """Refuses a checkpoint weights file that HDF5 cannot open (truncated, overwritten).

    Raises:
        RunDirError: the file is damaged or incomplete.
    """
    path = Path(run_dir) / CHECKPOINT_DIR / state.weights_file
    try:
        with h5py.File(path, "r") as handle:
            handle.visit(lambda name: None)  # walks every group: a torn index fails here
    except Exception as error:  # noqa: BLE001 - h5py raises OSError, KeyError, RuntimeError
        text = str(error)
        reason = ("truncated: the file is shorter than its header says" if "truncated" in text
                  else text.split("(")[0].strip() or type(error).__name__)
        raise RunDirError(
            f"The checkpoint file {path} is damaged or incomplete ({reason}); resume from "
            f"epoch {state.epoch} is impossible. Start a new run, or restore the run folder "
            "from a copy.") from None


def restore_checkpoint(run_dir: Path, model: keras.Model, state: ResumeState,
                       described: str = "") -> None:
    """Loads weights, optimizer state and layer random states into a freshly built,
    compiled model set up for ``state.phase``.

    Raises:
        RunDirError: the checkpoint does not fit the model (config.json was edited), or
            its file is damaged.
    """
    model.optimizer.build(model.trainable_variables)
    path = Path(run_dir) / CHECKPOINT_DIR / state.weights_file
    # Keras warns (hundreds of lines) and keeps fresh weights where the file does not fit;
    # any such warning means the checkpoint belongs to another model.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception:  # noqa: BLE001 - Keras's own message is a many-line dump
            check_weights_file(run_dir, state)
            raise _mismatch(run_dir, described) from None
    skipped = [w for w in caught if "Skipping" in str(w.message) or "could not be loaded" in str(w.message)]
    variables = _seed_variables(model)
    if skipped or len(variables) != len(state.seed_states):
        raise _mismatch(run_dir, described)
    for variable, value in zip(variables, state.seed_states):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _mismatch(run_dir: Path, described: str) -> RunDirError:
    model = f" ({described})" if described else ""
    return RunDirError(
        f"The checkpoint in {run_dir} does not match the model described by config.json{model} "
        "(was it edited?). Undo the change to resume, or start a new run with the new settings.")


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
        self.saved_model: keras.Model | None = None  # as ``BestModelSaver.saved_model``

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        rs = self.run_state
        if rs.interrupted or not rs.history or rs.history[-1]["epoch"] != epoch + 1:
            return
        model = self.model if self.saved_model is None else self.saved_model
        save_checkpoint(self.run_dir, model, ResumeState(
            epoch=epoch + 1, phase=rs.phase, global_step=rs.global_step, weights_file="",
            best_value=rs.best_value, best_epoch=rs.best_epoch, best_metrics=dict(rs.best_metrics),
            history=[dict(row) for row in rs.history],
            callbacks={name: cb.snapshot() for name, cb in self.stateful.items()},
            policy=keras.mixed_precision.global_policy().name))

"""Keeps recently opened runs, so that explaining image after image of one run is quick.

The window asks for a Grad-CAM once per clicked image; opening ``best.keras`` again each
time (checking the archive, building the model, reading its weights) would cost seconds a
click. ``cached_run`` keeps the last ``MAX_RUNS`` runs loaded, keyed by the resolved run
folder and ``best.keras``'s modification time and size, so a run that saved a newer best
model is opened afresh. ``for_model`` keeps things derived from one loaded model (such as
the Grad-CAM sub-model) for as long as that model is alive.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from training.inference import predict
from training.rundir import BEST_MODEL

MAX_RUNS = 2

T = TypeVar("T")

_LOCK = threading.RLock()
# (resolved run folder, best.keras's (mtime_ns, size)) -> load_run's (model, classes, image_size)
_RUNS: OrderedDict[tuple[str, tuple[int, int] | None], tuple[Any, list[str], int]] = OrderedDict()
# model -> {name: what was built from it}; an entry goes when its model is garbage-collected.
_PER_MODEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached_run(run_dir: str | Path) -> tuple[Any, list[str], int]:
    """``predict.load_run(run_dir)``'s ``(model, classes, image_size)``, from memory when
    the same run, with the same ``best.keras``, was loaded lately.

    Raises:
        PredictError: as ``load_run`` (failures are not cached: the next call tries again).
    """
    folder = _resolved(run_dir)
    key = (str(folder), _stamp(folder / BEST_MODEL))
    with _LOCK:
        if key in _RUNS:
            _RUNS.move_to_end(key)
            return _RUNS[key]
        loaded = predict.load_run(run_dir)
        # An older model of the same folder is never asked for again: free it now.
        for stale in [old for old in _RUNS if old[0] == key[0]]:
            del _RUNS[stale]
        _RUNS[key] = loaded
        while len(_RUNS) > MAX_RUNS:
            _RUNS.popitem(last=False)
        return loaded


def for_model(model: Any, name: str, build: Callable[[Any], T]) -> T:
    """``build(model)``, built once per model and ``name`` and kept while ``model`` lives."""
    with _LOCK:
        built = _PER_MODEL.setdefault(model, {})
        if name not in built:
            built[name] = build(model)
        return built[name]


def clear() -> None:
    """Forgets every loaded run and everything built from a model."""
    with _LOCK:
        _RUNS.clear()
        _PER_MODEL.clear()


def _resolved(run_dir: str | Path) -> Path:
    try:
        return Path(run_dir).expanduser().resolve()
    except (OSError, RuntimeError):  # a link loop, or "~user" with no such user
        return Path(run_dir).absolute()


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None  # load_run reports what is wrong with the folder
    return status.st_mtime_ns, status.st_size

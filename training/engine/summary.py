"""summary.json's content: why the run stopped, its best epoch and model, how long it took
and on what (Keras-free; the session writes it)."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.config import Config
from training.engine.device import versions
from training.engine.state import RunState
from training.files import is_regular_file
from training.rundir import BEST_MODEL


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_summary(reason: str, error: str, *, run_dir: Path, config: Config, state: RunState | None,
                data: Any, image_size: int, timing: tuple[float, str],
                device: str) -> dict[str, Any]:
    """summary.json's content. ``best_model`` is null when no model was saved.

    Args:
        data: the run's ``training.data.pipeline.DataBundle``, or None before it was made.
        timing: the run's start as ``time.monotonic()`` and as an ISO time.
    """
    started, started_at = timing
    saved = bool(state and state.best_epoch) and is_regular_file(run_dir / BEST_MODEL)
    best = dict(state.best_metrics) if state else {}
    return {
        "run_dir": str(run_dir),
        "stop_reason": reason,
        "error": error,
        "monitor": config.training.monitor,
        "best_epoch": state.best_epoch if state else 0,
        "best_metrics": finite_metrics(best),
        "best_model": BEST_MODEL if saved else None,
        "epochs_completed": len(state.history) if state else 0,
        "epochs_planned": state.planned_epochs if state else 0,
        "started_at": started_at,
        "finished_at": now_iso(),
        "elapsed_seconds": round(time.monotonic() - started, 3),
        "device": device,
        "versions": versions(),
        "backbone": config.model.backbone,
        "image_size": image_size,
        "classes": data.classes if data else [],
        "train_images": data.train_count if data else 0,
        "validation_images": data.validation_count if data else 0,
    }


def finite_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN or infinity: a non-finite metric becomes null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}

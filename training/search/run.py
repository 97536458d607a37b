"""The search loop: the stages in turn, each trial sampled (``sampling``), trained by the
engine as a normal run, pruned when it goes bad (``pruning``) and written down (``records``)."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import Config
from training.engine.recipe import planned_epochs
from training.events import EventCallback, Log
from training.search.events import SearchFinished, SearchStarted, StageStarted, TrialFinished, TrialStarted
from training.search.pruning import TrialWatcher
from training.search.records import (
    TRIALS_FILE,
    SearchError,
    TrialRecord,
    best_record,
    prepare_search_dir,
    ranked_records,
    trial_dir_name,
    write_best_config,
    write_search_json,
    write_trials_csv,
)
from training.search.sampling import Sample, StageSampler
from training.search.space import SearchSpace, SpaceError, default_space
from training.search.stages import FINE_TOP_TRIALS, Stage, narrow_space, plan_stages

# Failures that every trial would meet alike: the search ends at the first.
SHARED_FAILURES = frozenset({"DataError", "RunDirError"})


@dataclass(frozen=True)
class SearchOptions:
    """How a search prunes: the divergence rule always; the median rule when
    ``median_pruning``, once ``median_startup_trials`` trials of the stage completed."""

    median_pruning: bool = True
    median_startup_trials: int = 3


@dataclass
class SearchResult:
    out_dir: str
    stop_reason: str                  # completed, stopped, failed
    trials: list[TrialRecord] = field(default_factory=list)
    best: TrialRecord | None = None
    best_config: str = ""             # the path of best_config.json; "" when no trial completed
    trials_csv: str = ""
    error: str = ""                   # why a failed search ended
    error_type: str = ""


def run_search(config: Config, *, out_dir: str | Path, trials: int, space: SearchSpace | None = None,
               on_event: EventCallback | None = None, stop: threading.Event | None = None,
               options: SearchOptions | None = None) -> SearchResult:
    """Searches ``space`` (default: ``default_space(config)``) with ``trials`` runs of
    ``config``, coarse then fine, each a run folder ``out_dir/trial-NNN``.

    ``on_event`` hears the search's events (``training.search.events``) and, between a
    ``TrialStarted`` and its ``TrialFinished``, every event of that trial's run. Setting
    ``stop`` stops the current trial within a batch and ends the search; everything written
    stays. Imports TensorFlow and Optuna: call it off a GUI thread.

    Raises:
        SpaceError: the space cannot be used with this config (names the key).
        SearchError: ``out_dir`` holds other files or cannot be created, or ``trials`` < 1.
    """
    if trials < 1:
        raise SearchError(f"A search needs at least 1 trial. Received: trials={trials}")
    if config.training.distributed == "multi_worker":
        # Every worker of a cluster would have to draw the same trials and prune them together.
        raise SearchError(
            'A search cannot run on a cluster (`training.distributed` is "multi_worker"): its trials are drawn '
            "and pruned on one machine. Search on one machine (`training.distributed` \"mirrored\" uses all "
            "of its GPUs, or \"off\"), then train its best_config.json on the cluster.")
    space = default_space(config) if space is None else space
    if not len(space):
        raise SpaceError("The search space is empty: give at least one key to search.")
    search = _Search(config, space, plan_stages(config, trials), prepare_search_dir(out_dir),
                     on_event or (lambda event: None), stop or threading.Event(), options or SearchOptions())
    with _quiet_retracing():
        return search.run()


class _Search:
    def __init__(self, config: Config, space: SearchSpace, stages: list[Stage], out_dir: Path,
                 on_event: EventCallback, stop: threading.Event, options: SearchOptions):
        self.config, self.space, self.stages, self.out_dir = config, space, stages, out_dir
        self.emit, self.stop, self.options = on_event, stop, options
        self.records: list[TrialRecord] = []
        self.stage_notes: list[dict[str, Any]] = []
        self.best_config = ""
        self.failure: TrialRecord | None = None
        self.failure_type = ""

    def run(self) -> SearchResult:
        self.emit(SearchStarted(out_dir=str(self.out_dir), trials=sum(s.trials for s in self.stages),
                                stages=[{"stage": s.name, "trials": s.trials, "epochs": s.epochs(self.config)}
                                        for s in self.stages],
                                space=self.space.to_dict()))
        self._write()
        for index, stage in enumerate(self.stages):
            if self._ended():
                break
            self._run_stage(index, stage)
        stop_reason = "failed" if self.failure else "stopped" if self.stop.is_set() else "completed"
        best = best_record(self.records)
        self._write(stop_reason)
        self.emit(SearchFinished(out_dir=str(self.out_dir), stop_reason=stop_reason,
                                 best_trial=best.trial if best else 0, best_config=self.best_config,
                                 best_metrics=_metrics(best), trials_csv=str(self.out_dir / TRIALS_FILE)))
        return SearchResult(out_dir=str(self.out_dir), stop_reason=stop_reason, trials=list(self.records),
                            best=best, best_config=self.best_config,
                            trials_csv=str(self.out_dir / TRIALS_FILE),
                            error=self.failure.reason if self.failure else "", error_type=self.failure_type)

    def _ended(self) -> bool:
        return self.stop.is_set() or self.failure is not None

    # -- a stage -------------------------------------------------------------------------
    def _run_stage(self, index: int, stage: Stage) -> None:
        space, around = self.space, []
        if stage.name == "fine":
            top = ranked_records(self.records)[:FINE_TOP_TRIALS]
            around = [record.trial for record in top]
            space = narrow_space(self.space, [record.params for record in top])
            if not top:
                self.emit(Log("No coarse trial completed, so the fine stage searches the whole space.",
                              level="warning"))
        base = stage.config(self.config)
        self.stage_notes.append({"stage": stage.name, "trials": stage.trials, "epochs": stage.epochs(self.config),
                                 "space": space.to_dict(), "around": around})
        self.emit(StageStarted(stage=stage.name, trials=stage.trials, epochs=stage.epochs(self.config),
                               space=space.to_dict(), around=around))
        sampler = StageSampler(space, base, seed=self.config.training.seed + index,
                               median_pruning=self.options.median_pruning,
                               median_startup_trials=self.options.median_startup_trials)
        for _ in range(stage.trials):
            if self._ended():
                return
            sample = sampler.ask()
            sampler.tell(sample, self._run_trial(stage, sample))

    # -- a trial -------------------------------------------------------------------------
    def _run_trial(self, stage: Stage, sample: Sample) -> TrialRecord:
        from training.api import run_training

        params, config = sample.params, sample.config
        number = len(self.records) + 1
        run_dir = self.out_dir / trial_dir_name(number)
        epochs = planned_epochs(config)
        self.emit(TrialStarted(trial=number, stage=stage.name, run_dir=str(run_dir), params=dict(params),
                               epochs=epochs))
        trial_stop, done = threading.Event(), threading.Event()
        relay = threading.Thread(target=_relay, args=(self.stop, trial_stop, done), daemon=True,
                                 name=f"search-stop-{number}")
        relay.start()

        watcher = TrialWatcher(trial_stop, self.emit, report=sample.report, planned_epochs=epochs)
        started = time.monotonic()
        try:
            result = run_training(config, run_dir=run_dir, on_event=watcher, stop=trial_stop)
        finally:
            done.set()
            relay.join()
            _release_models()
        status, reason = _status(result, watcher.pruned)
        metrics = result.best_metrics or {}
        record = TrialRecord(trial=number, stage=stage.name, run_dir=str(run_dir), status=status,
                             val_accuracy=_float(metrics.get("val_accuracy")),
                             val_loss=_float(metrics.get("val_loss")), params=dict(params), reason=reason,
                             epochs=epochs, seconds=time.monotonic() - started)
        self.records.append(record)
        if status == "failed" and result.error_type in SHARED_FAILURES:
            self.failure, self.failure_type = record, result.error_type
        self._write()
        self.emit(TrialFinished(trial=number, stage=stage.name, run_dir=str(run_dir), status=status,
                                val_accuracy=record.val_accuracy, val_loss=record.val_loss,
                                params=dict(params), reason=reason, seconds=round(record.seconds, 1)))
        return record

    # -- the files -----------------------------------------------------------------------
    def _write(self, stop_reason: str = "running") -> None:
        write_trials_csv(self.out_dir, self.records, self.space.keys)
        best = best_record(self.records)
        if best is not None:
            self.best_config = str(write_best_config(self.out_dir, self.config, best))
        write_search_json(self.out_dir, {
            "trials": sum(s.trials for s in self.stages), "stop_reason": stop_reason,
            "best_trial": best.trial if best else 0, "space": self.space.to_dict(),
            "stages": self.stage_notes, "records": [r.to_dict() for r in self.records]})


# -- helpers -------------------------------------------------------------------------------------
def _status(result, pruned: str) -> tuple[str, str]:
    if result.stop_reason == "failed":
        return "failed", result.error
    if result.stop_reason == "diverged":
        return "pruned", "the training loss diverged (above 3x its start, or not finite)"
    if pruned:
        return "pruned", pruned
    if result.stop_reason == "stopped":
        return "stopped", "stopped by the user"
    return "completed", result.stop_reason


def _relay(source: threading.Event, target: threading.Event, done: threading.Event) -> None:
    """Passes the search's stop on to the running trial's own flag (which pruning sets too)."""
    while not done.is_set():
        if source.wait(0.05):
            target.set()
            return


def _release_models() -> None:
    """Frees the trial's models and graphs before the next (KerasTuner does the same between
    trials): memory stays flat over a long search, and each trial starts as a fresh process."""
    if "keras" in sys.modules:
        import keras

        keras.backend.clear_session()


class _RetracingFilter(logging.Filter):
    """TensorFlow warns "N out of the last M calls ... triggered tf.function retracing" when
    new models trace their steps in a row; each trial builds a new model, so in a search
    the warning only repeats what is expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_retracing():
    logger, quiet = logging.getLogger("tensorflow"), _RetracingFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _metrics(record: TrialRecord | None) -> dict[str, Any]:
    if record is None:
        return {}
    return {"val_accuracy": record.val_accuracy, "val_loss": record.val_loss}


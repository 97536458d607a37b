"""Experiments: where runs go, every run remembered, any runs compared. No Keras, no Qt.

    runs_root.py  the folder under which new runs are named (user data dir, FINETUNE_STUDIO_RUNS, --root)
    history.py    every run folder under a root, read from its small JSON files: ``list_runs``
    compare.py    config keys that differ: from the defaults (``changed_keys``), between runs (``config_diff``)
"""

from training.experiments.compare import changed_keys, config_diff, flat_config, shown_value
from training.experiments.history import STATUSES, RunRecord, list_runs, read_run
from training.experiments.runs_root import RUNS_ENV, default_runs_root, runs_root

__all__ = ["RUNS_ENV", "STATUSES", "RunRecord", "changed_keys", "config_diff", "default_runs_root",
           "flat_config", "list_runs", "read_run", "runs_root", "shown_value"]

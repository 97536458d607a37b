"""Hyperparameter search as the lectures teach it: random, log-uniform, coarse to fine, with
diverging trials stopped early. Built on Optuna; each trial is a normal run of the engine.

    from training.search import run_search, load_space
    result = run_search(config, out_dir="runs/search-1", trials=12, space=None,
                        on_event=print, stop=threading.Event())

Importing this package is cheap: Optuna and TensorFlow load when a search starts.

The search space (SPACE.json)
-----------------------------
A JSON object from config keys (dotted, as in ``python main.py config --default``) to what
each may take::

    {
      "optimizer.learning_rate": {"low": 1e-5, "high": 1e-2, "log": true},
      "model.head.dropout": {"low": 0.0, "high": 0.5},
      "training.fine_tune_layers": {"choices": [20, 40, "all"]},
      "data.batch_size": {"low": 16, "high": 64},
      "regularization.label_smoothing": "default"
    }

- ``{"low": a, "high": b}``: uniform in [a, b]; ``"log": true`` samples log-uniformly
  (learning rates, regularization strengths: 1e-5 is as likely as 1e-3), and needs a > 0.
  An integer key takes integer ends and samples integers.
- ``{"choices": [...]}``: one of the values, equally likely (any value the key accepts:
  true/false, text, numbers, lists).
- ``"default"``: the default space's entry for that key.

Only the keys listed are searched; the others keep the config's values (CONFIG and
``--set``). Each end of a range and each choice must be valid with the config (with its
own values for the other keys, or with the other searched keys all at their low or all at
their high ends, so that two keys that bound each other are judged together); an unknown
key, a bad range or a value the config refuses is an error that names the key
(``SpaceError``), before any trial runs. A sampled combination the config refuses is sampled
again, so no trial starts with an invalid config.

The default space: the learning rate that trains (``optimizer.learning_rate``, log, 1e-5 to
0.1 for Adam-like optimizers, 1e-4 to 1 for SGD and Adagrad; also
``training.fine_tune_learning_rate`` when the config sets one), ``optimizer.weight_decay``
(log, 1e-5 to 0.1), ``model.head.dropout`` (0 to 0.5), ``regularization.label_smoothing``
(0 to 0.2), ``augmentation.zoom`` (0 to 0.3) and ``augmentation.translation`` (0 to 0.2), and
``training.fine_tune_layers`` (10, 20, 40, 80 or all) when a pretrained backbone is fine-tuned.

Coarse to fine
--------------
Two thirds of the trials (rounded up; all of them below 3 trials) are coarse: they sample the
whole space and train each phase for a third of its epochs (rounded, at least 1). The rest
are fine: they train the configured epochs, in ranges shrunk around the best 3 coarse
trials (their values padded by an eighth of the coarse width each side, then between a
quarter and a half of it; log ranges shrink in log space; choices keep those the best used).
Each stage samples at random (Optuna's ``RandomSampler``, seeded from ``training.seed``).

Pruning
-------
A trial whose training loss climbs above 3x its start (mean of the last 3 batches; the start
never below ln(C)), or turns NaN, is stopped at once: status ``pruned``. Once 3 trials of a
stage completed, a trial whose validation accuracy after an epoch is below their median at
that epoch is stopped before its next epoch (Optuna's ``MedianPruner``), also ``pruned``.

The folder: ``trial-NNN/`` run folders, ``trials.csv``, ``best_config.json`` (the best
completed trial's settings with the configured epochs) and ``search.json``
(``training.search.records``).
"""

from training.search.events import (
    SEARCH_EVENT_TYPES,
    SearchFinished,
    SearchStarted,
    StageStarted,
    TrialFinished,
    TrialStarted,
    search_event_from_dict,
)
from training.search.records import (
    BEST_CONFIG_FILE,
    SEARCH_FILE,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    SearchError,
    TrialRecord,
    best_record,
    next_search_dir,
    read_trials_csv,
)
from training.search.run import SearchOptions, SearchResult, run_search
from training.search.sampling import Sample, StageSampler
from training.search.space import (
    DEFAULT_RANGES,
    LEARNING_RATE_RANGES,
    Dimension,
    SearchSpace,
    SpaceError,
    default_space,
    load_space,
    parse_space,
    searchable_keys,
)
from training.search.stages import narrow_space, plan_stages, short_epochs

__all__ = [
    "BEST_CONFIG_FILE", "DEFAULT_RANGES", "LEARNING_RATE_RANGES", "SEARCH_EVENT_TYPES", "SEARCH_FILE",
    "TRIALS_FILE", "TRIAL_COLUMNS",
    "Dimension", "SearchError", "SearchFinished", "SearchOptions", "SearchResult", "SearchSpace",
    "SearchStarted", "Sample", "SpaceError", "StageSampler", "StageStarted", "TrialFinished", "TrialRecord", "TrialStarted",
    "best_record", "default_space", "load_space", "narrow_space", "next_search_dir", "parse_space",
    "plan_stages", "read_trials_csv", "run_search", "search_event_from_dict", "searchable_keys",
    "short_epochs",
]

"""The hyperparameter search: its space, sampling, coarse-to-fine stages, pruning and files,
and the issue's acceptance test (a search from a bad learning rate finds a clearly better one)."""

from __future__ import annotations

import csv
import json
import math
import threading
from pathlib import Path

import pytest

from tests.helpers import make_tiny_dataset
from training.cli.main import main
from training.config import Config, validate
from training.events import BatchEnd, DataReport, EpochEnd, PhaseChanged
from training.search import (
    BEST_CONFIG_FILE,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    Dimension,
    SearchError,
    SpaceError,
    StageSampler,
    TrialFinished,
    TrialRecord,
    TrialStarted,
    best_record,
    default_space,
    load_space,
    narrow_space,
    parse_space,
    plan_stages,
    read_trials_csv,
    run_search,
    searchable_keys,
    short_epochs,
)
from training.search.pruning import DivergenceRule, TrialWatcher
from training.search.records import prepare_search_dir
from training.search.stages import FINE_MAX_WIDTH, narrow_dimension

QUIET_AUGMENTATION = {"augmentation.horizontal_flip": False, "augmentation.rotation": 0.0,
                      "augmentation.zoom": 0.0, "augmentation.translation": 0.0}


def small_config(data_dir: Path | str = "builtin:shapes", **overrides) -> Config:
    values = {"data.dir": str(data_dir), "model.backbone": "SmallCNN", "model.weights": "none",
              "data.image_size": 32, "data.batch_size": 16, "training.head_epochs": 0,
              "training.fine_tune_epochs": 2, **QUIET_AUGMENTATION}
    values.update(overrides)
    return Config().with_overrides(values)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("search-data"), per_class=30, size=32)


# -- the space -----------------------------------------------------------------------------------
def test_space_reads_ranges_choices_and_defaults():
    config = Config()
    space = parse_space({
        "optimizer.learning_rate": {"low": 1e-5, "high": 1e-2, "log": True},
        "model.head.dropout": {"low": 0, "high": 0.5},
        "data.batch_size": {"low": 16, "high": 64},
        "training.fine_tune_layers": {"choices": [20, "all"]},
        "model.head.hidden_units": {"choices": [[], [128]]},
        "regularization.label_smoothing": "default",
    }, config)
    assert space.keys[0] == "optimizer.learning_rate"
    rate = space.get("optimizer.learning_rate")
    assert (rate.low, rate.high, rate.log, rate.integer) == (1e-5, 1e-2, True, False)
    assert space.get("model.head.dropout").low == 0.0 and not space.get("model.head.dropout").log
    assert space.get("data.batch_size").integer and space.get("data.batch_size").high == 64
    assert space.get("training.fine_tune_layers").choices == (20, "all")
    assert space.get("regularization.label_smoothing").to_dict() == {"low": 0.0, "high": 0.2, "log": False}
    assert parse_space(space.to_dict(), config) == space  # SPACE.json round trip
    assert "data.dir" not in searchable_keys() and set(space.keys) <= set(searchable_keys())


@pytest.mark.parametrize("entry, words", [
    ({"optimizer.learning_rat": {"low": 1e-5, "high": 1e-2}}, ["optimizer.learning_rat", "optimizer.learning_rate"]),
    ({"optimizer.learning_rate": {"low": 0.0, "high": 1e-2, "log": True}}, ["optimizer.learning_rate", "> 0"]),
    ({"optimizer.learning_rate": {"low": 1e-3, "high": 1e-4}}, ["optimizer.learning_rate", "below"]),
    ({"optimizer.learning_rate": {"low": 1e-3, "high": 50.0}}, ["optimizer.learning_rate", "50", "10.0"]),
    ({"model.head.dropout": {"low": 0.1, "hi": 0.4}}, ["model.head.dropout", "`hi`"]),
    ({"model.head.dropout": {"low": 0.1}}, ["model.head.dropout", "high"]),
    ({"model.head.dropout": {"low": 0.1, "high": 0.4, "log": "yes"}}, ["model.head.dropout", "log"]),
    ({"model.head.dropout": {"low": 0.1, "high": 1.0}}, ["model.head.dropout", "1.0"]),
    ({"training.head_epochs": {"low": 1.5, "high": 4}}, ["training.head_epochs", "integer"]),
    ({"augmentation.horizontal_flip": {"low": 0, "high": 1}}, ["augmentation.horizontal_flip", "choices"]),
    ({"model.head.activation": {"choices": ["relu", "sigmoidish"]}}, ["model.head.activation", "sigmoidish"]),
    ({"model.head.activation": {"choices": []}}, ["model.head.activation", "non-empty"]),
    ({"model.head.activation": {"choices": ["relu", "relu"]}}, ["model.head.activation", "twice"]),
    ({"data.dir": {"choices": ["a", "b"]}}, ["data.dir", "cannot be searched"]),
    ({"data.batch_size": "default"}, ["data.batch_size", "default"]),
    ({"model.head.dropout": 0.3}, ["model.head.dropout", "must be an object"]),
    ({"schedule.min_learning_rate": {"low": 0.0, "high": 0.01}}, ["schedule.min_learning_rate", "0.01"]),
    ({}, ["at least one key"]),
])
def test_space_errors_name_the_key(entry, words):
    with pytest.raises(SpaceError) as error:
        parse_space(entry, Config())
    for word in words:
        assert word in str(error.value)


def test_space_file_errors_name_the_file(tmp_path):
    broken = tmp_path / "space.json"
    broken.write_text("{\"optimizer.learning_rate\": {\"low\": 1e-5,", encoding="utf-8")
    with pytest.raises(SpaceError, match="space.json"):
        load_space(broken, Config())
    with pytest.raises(SpaceError, match="missing.json"):
        load_space(tmp_path / "missing.json", Config())
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"model.head.dropout": {"low": 0.1, "high": 0.3}}), encoding="utf-8")
    assert load_space(good, Config()).keys == ["model.head.dropout"]


def test_default_space_searches_what_the_config_trains():
    pretrained = default_space(Config())
    assert pretrained.keys == ["optimizer.learning_rate", "optimizer.weight_decay", "model.head.dropout",
                               "regularization.label_smoothing", "augmentation.zoom",
                               "augmentation.translation", "training.fine_tune_layers"]
    assert pretrained.get("optimizer.learning_rate").log and pretrained.get("optimizer.weight_decay").log
    assert not pretrained.get("model.head.dropout").log
    # From scratch nothing is left frozen, so the fine-tune depth would change nothing.
    assert "training.fine_tune_layers" not in default_space(small_config()).keys
    # SGD's rates are higher; a fine-tuning rate of the config's own is searched too.
    sgd = default_space(Config().with_overrides({"optimizer.name": "sgd",
                                                 "training.fine_tune_learning_rate": 1e-4}))
    assert sgd.get("optimizer.learning_rate").high == 1.0
    assert "training.fine_tune_learning_rate" in sgd.keys


# -- sampling --------------------------------------------------------------------------------------
def test_sampling_is_log_uniform_within_bounds_and_valid():
    space = parse_space({"optimizer.learning_rate": {"low": 1e-5, "high": 1e-1, "log": True},
                         "model.head.dropout": {"low": 0.0, "high": 0.5},
                         "training.fine_tune_layers": {"choices": [10, "all"]}}, Config())
    sampler = StageSampler(space, Config(), seed=7)
    samples = [sampler.ask() for _ in range(1000)]
    rates = [s.params["optimizer.learning_rate"] for s in samples]
    assert all(1e-5 <= r <= 1e-1 for r in rates)
    # Each decade holds about a quarter of the samples (uniform sampling would put 90 % in the last).
    decades = [sum(1 for r in rates if 10.0**k <= r < 10.0**(k + 1)) / len(rates) for k in range(-5, -1)]
    assert all(0.18 <= share <= 0.32 for share in decades), decades
    assert abs(sorted(math.log10(r) for r in rates)[500] + 3) < 0.25  # the median is near 1e-3
    dropouts = [s.params["model.head.dropout"] for s in samples]
    assert 0.0 <= min(dropouts) and max(dropouts) <= 0.5
    assert 0.2 < sum(d < 0.25 for d in dropouts) / len(dropouts) < 0.8  # linear, not log
    assert {s.params["training.fine_tune_layers"] for s in samples} == {10, "all"}
    for sample in samples[:20]:  # every sample is a config the validation accepts, with its values
        validate(sample.config)
        assert sample.config.optimizer.learning_rate == sample.params["optimizer.learning_rate"]


def test_sampling_skips_combinations_the_config_refuses():
    # Each end is valid alone; a rate below the schedule's floor is refused and sampled again.
    base = Config().with_overrides({"schedule.min_learning_rate": 1e-3})
    space = parse_space({"optimizer.learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
                         "schedule.min_learning_rate": {"low": 1e-4, "high": 5e-3, "log": True}}, base)
    sampler = StageSampler(space, base, seed=1)
    for _ in range(30):
        config = sampler.ask().config
        assert config.schedule.min_learning_rate <= config.optimizer.learning_rate


# -- coarse to fine ---------------------------------------------------------------------------------
def test_stages_split_trials_and_shorten_coarse_epochs():
    config = Config()  # head 5 + fine-tune 5 epochs
    stages = plan_stages(config, 6)
    assert [(s.name, s.trials) for s in stages] == [("coarse", 4), ("fine", 2)]
    assert stages[0].overrides == {"training.head_epochs": 2, "training.fine_tune_epochs": 2}
    assert stages[1].overrides == {} and stages[1].epochs(config) == 10
    assert [(s.name, s.trials) for s in plan_stages(config, 2)] == [("coarse", 2)]
    assert [(s.name, s.trials) for s in plan_stages(config, 3)] == [("coarse", 2), ("fine", 1)]
    # From scratch is one phase; never below one epoch.
    assert short_epochs(small_config(**{"training.fine_tune_epochs": 9})) == {
        "training.head_epochs": 0, "training.fine_tune_epochs": 3}
    assert plan_stages(small_config(**{"training.fine_tune_epochs": 1}), 3)[0].epochs(Config()) == 1


def test_fine_ranges_shrink_around_the_best_coarse_trials():
    space = parse_space({"optimizer.learning_rate": {"low": 1e-5, "high": 1e-1, "log": True},
                         "model.head.dropout": {"low": 0.0, "high": 0.5},
                         "data.batch_size": {"low": 8, "high": 128},
                         "training.fine_tune_layers": {"choices": [10, 20, 40, "all"]}}, Config())
    top = [{"optimizer.learning_rate": 2e-3, "model.head.dropout": 0.1, "data.batch_size": 32,
            "training.fine_tune_layers": 20},
           {"optimizer.learning_rate": 1e-3, "model.head.dropout": 0.15, "data.batch_size": 40,
            "training.fine_tune_layers": "all"}]
    fine = narrow_space(space, top)
    rate = fine.get("optimizer.learning_rate")
    # Narrower in log space (4 decades -> at most 2), around the best values, inside the coarse range.
    assert math.log10(rate.high / rate.low) <= 4 * FINE_MAX_WIDTH + 1e-9
    assert rate.low <= 1e-3 and 2e-3 <= rate.high and rate.low >= 1e-5 and rate.high <= 1e-1
    assert rate.log and math.log10(rate.low) > -5 and math.log10(rate.high) < -1
    dropout = fine.get("model.head.dropout")
    assert 0.0 <= dropout.low <= 0.1 and 0.15 <= dropout.high <= 0.25 + 1e-9
    batch = fine.get("data.batch_size")
    assert batch.integer and batch.low <= 32 and batch.high >= 40 and batch.high - batch.low <= 60
    assert fine.get("training.fine_tune_layers").choices == (20, "all")
    # Near an end of the range, the fine range stays inside it and still holds the best value.
    edge = narrow_dimension(Dimension("optimizer.learning_rate", low=1e-5, high=1e-1, log=True), [1.2e-5])
    assert edge.low == 1e-5 and edge.high < 1e-2
    # Values spread over the whole range: the fine range is centred on the best one.
    spread = narrow_dimension(Dimension("model.head.dropout", low=0.0, high=0.5), [0.45, 0.0, 0.25])
    assert spread.low <= 0.45 <= spread.high and spread.high - spread.low <= 0.25 + 1e-9
    assert narrow_space(space, []) == space


def test_best_trial_is_the_completed_one_with_the_highest_accuracy():
    records = [TrialRecord(1, "coarse", "a", "completed", 0.8, 0.5),
               TrialRecord(2, "coarse", "b", "pruned", 0.95, 0.1),
               TrialRecord(3, "fine", "c", "completed", 0.9, 0.4),
               TrialRecord(4, "fine", "d", "completed", 0.9, 0.3),
               TrialRecord(5, "fine", "e", "failed")]
    assert best_record(records).trial == 4
    assert best_record(records[4:]) is None


# -- pruning -----------------------------------------------------------------------------------------
def batch(loss: float, step: int = 1) -> BatchEnd:
    return BatchEnd(phase="fine_tune", epoch=1, batch=step, batches=50, step=step, loss=loss, accuracy=0.5,
                    learning_rate=1.0, images_per_second=10.0, eta_seconds=1.0)


def test_divergence_rule_fires_on_a_loss_three_times_its_start():
    rule = DivergenceRule()
    rule.observe(DataReport(root="x", classes=["a", "b", "c"]))
    healthy = [1.1, 1.0, 0.9, 0.8, 0.7, 0.8, 1.2, 0.6]
    assert not [r for r in (rule.observe(batch(loss)) for loss in healthy) if r]
    exploding = DivergenceRule()
    exploding.observe(DataReport(root="x", classes=["a", "b", "c"]))
    reasons = [exploding.observe(batch(loss)) for loss in (1.1, 1.5, 3.0, 6.0, 9.0)]
    assert reasons[:3] == ["", "", ""] and "3x its start" in reasons[3]
    assert "nan" in DivergenceRule().observe(batch(float("nan")))
    # One bad batch stops nothing; and a new phase starts from its own level (never below ln C).
    spike = DivergenceRule()
    spike.observe(DataReport(root="x", classes=["a", "b", "c"]))
    assert not [r for r in (spike.observe(batch(loss)) for loss in (1.1, 1.0, 6.0, 0.5, 0.4)) if r]
    spike.observe(PhaseChanged(phase="fine_tune", epochs=2, first_epoch=2, steps_per_epoch=5,
                               learning_rate=1e-3, trainable_weights=10))
    assert not [r for r in (spike.observe(batch(loss)) for loss in (0.01, 0.05, 0.2, 0.3)) if r]


def test_trial_watcher_sets_the_trial_stop_flag_and_passes_events_on():
    stop, seen = threading.Event(), []
    watcher = TrialWatcher(stop, seen.append)
    for loss in (1.1, 2.0, 5.0, 9.0, 20.0):
        watcher(batch(loss))
    assert stop.is_set() and "3x" in watcher.pruned and len(seen) == 5
    # The median rule: asked after each epoch but the last.
    stop, asked = threading.Event(), []
    watcher = TrialWatcher(stop, lambda e: None, report=lambda epoch, acc: asked.append(epoch) or epoch == 2,
                           planned_epochs=3)
    for epoch in (1, 2, 3):
        watcher(EpochEnd(phase="fine_tune", epoch=epoch, epochs=3, loss=1.0, accuracy=0.5, val_loss=1.0,
                         val_accuracy=0.4, learning_rate=1e-3, seconds=1.0, images_per_second=1.0))
    assert asked == [1, 2] and stop.is_set() and "median" in watcher.pruned


def test_a_diverging_trial_is_pruned(tiny_data, tmp_path):
    config = small_config(tiny_data, **{"training.fine_tune_epochs": 6})  # coarse trials: 2 epochs
    space = parse_space({"optimizer.learning_rate": {"low": 5.0, "high": 10.0, "log": True}}, config)
    events = []
    result = run_search(config, out_dir=tmp_path / "search", trials=1, space=space, on_event=events.append)
    (trial,) = result.trials
    assert trial.status == "pruned", trial
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] in ([], [1])  # stopped before its 2 epochs
    rows = read_trials_csv(tmp_path / "search")
    assert [r["status"] for r in rows] == ["pruned"]
    assert result.best is None and not (tmp_path / "search" / BEST_CONFIG_FILE).exists()
    assert (Path(trial.run_dir) / "config.json").is_file()  # a normal run folder all the same


def test_stop_ends_the_search_after_the_current_trial(tiny_data, tmp_path):
    stop, events = threading.Event(), []

    def listen(event):
        events.append(event)
        if isinstance(event, BatchEnd):
            stop.set()

    result = run_search(small_config(tiny_data), out_dir=tmp_path / "search", trials=3,
                        space=parse_space({"model.head.dropout": {"low": 0.0, "high": 0.5}}, Config()),
                        on_event=listen, stop=stop)
    assert result.stop_reason == "stopped"
    assert [(t.trial, t.status) for t in result.trials] == [(1, "stopped")]
    assert len([e for e in events if isinstance(e, TrialStarted)]) == 1
    assert [r["status"] for r in read_trials_csv(tmp_path / "search")] == ["stopped"]


def test_a_data_problem_ends_the_search_at_the_first_trial(tmp_path):
    import shutil

    data = make_tiny_dataset(tmp_path, classes=2, per_class=4, size=32)
    shutil.rmtree(data / "square")  # one class left: every trial would fail alike
    result = run_search(small_config(data), out_dir=tmp_path / "search", trials=3,
                        space=parse_space({"model.head.dropout": {"low": 0.0, "high": 0.5}}, Config()))
    assert result.stop_reason == "failed" and result.error_type == "DataError"
    assert [t.status for t in result.trials] == ["failed"] and "class" in result.error


# -- the folder and the command line -----------------------------------------------------------------
def test_a_folder_with_other_files_is_refused(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SearchError, match="notes.txt"):
        prepare_search_dir(tmp_path / "taken")
    assert prepare_search_dir(tmp_path / "new" / "search").is_dir()
    config = tmp_path / "config.json"
    config.write_text(small_config().to_json(), encoding="utf-8")
    assert main(["search", str(config), "--trials", "2", "--out", str(tmp_path / "taken")]) == 2
    assert (tmp_path / "taken" / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_cli_refuses_a_bad_space_naming_the_key(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(small_config().to_json(), encoding="utf-8")
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"optimizer.learning_rate": {"low": 0, "high": 1, "log": True}}), encoding="utf-8")
    code = main(["search", str(config), "--trials", "2", "--space", str(space), "--out", str(tmp_path / "s")])
    assert code == 2
    assert "optimizer.learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_search_from_a_bad_learning_rate_finds_a_clearly_better_one(tiny_data, tmp_path, capsys):
    """The issue's acceptance test, through the command line: 5 trials (4 coarse of 1 epoch,
    1 fine of 2) from a learning rate of 1e-6, at which the run itself learns nothing."""
    from training.api import run_training

    bad = small_config(tiny_data, **{"optimizer.learning_rate": 1e-6})
    bad_run = run_training(bad, run_dir=tmp_path / "bad", on_event=lambda e: None)
    bad_accuracy = bad_run.best_metrics["val_accuracy"]

    config_file = tmp_path / "bad.json"
    config_file.write_text(bad.to_json(), encoding="utf-8")
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps({"optimizer.learning_rate": "default",
                                      "model.head.dropout": {"low": 0.0, "high": 0.3}}), encoding="utf-8")
    out = tmp_path / "search"
    code = main(["search", str(config_file), "--trials", "5", "--space", str(space_file), "--out", str(out),
                 "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == str(out)

    with open(out / TRIALS_FILE, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == [*TRIAL_COLUMNS, "optimizer.learning_rate", "model.head.dropout"]
    rows = read_trials_csv(out)
    assert [int(r["trial"]) for r in rows] == [1, 2, 3, 4, 5]
    assert {r["status"] for r in rows} <= {"completed", "pruned"}
    for row in rows:
        assert Path(row["run_dir"]).name == f"trial-{int(row['trial']):03d}"
        assert (Path(row["run_dir"]) / "config.json").is_file()
        assert 1e-5 <= float(row["optimizer.learning_rate"]) <= 0.1
    search = json.loads((out / "search.json").read_text(encoding="utf-8"))
    assert [(s["stage"], s["trials"], s["epochs"]) for s in search["stages"]] == [("coarse", 4, 1), ("fine", 1, 2)]
    assert search["stop_reason"] == "completed"

    completed = [r for r in rows if r["status"] == "completed"]
    best = max(completed, key=lambda r: float(r["val_accuracy"]))
    assert float(best["val_accuracy"]) >= bad_accuracy + 0.3, (bad_accuracy, rows)
    assert float(best["optimizer.learning_rate"]) >= 1e-4

    best_config = Config.load(out / BEST_CONFIG_FILE)  # validates
    validate(best_config)
    assert best_config.optimizer.learning_rate == float(best["optimizer.learning_rate"])
    assert best_config.training.fine_tune_epochs == 2  # the configured epochs, not a coarse trial's
    assert best_config.data.dir == str(tiny_data)
    assert "python main.py train" in captured.err


def test_search_events_are_plain_and_rebuildable():
    from training.search import search_event_from_dict

    event = TrialFinished(trial=2, stage="fine", run_dir="/x/trial-002", status="completed", val_accuracy=0.9,
                          val_loss=0.3, params={"optimizer.learning_rate": 1e-3}, seconds=4.0)
    data = json.loads(json.dumps(event.to_dict()))
    assert data["type"] == "trial_finished"
    assert search_event_from_dict(data) == event


def test_a_search_on_a_cluster_is_refused_saying_why(tmp_path):
    from training.search import run_search
    from training.search.records import SearchError

    # (A mirrored search runs: tests/test_distributed.py.)
    config = Config().with_overrides({"training.distributed": "multi_worker"})
    with pytest.raises(SearchError, match="cannot run on a cluster.*best_config.json on the cluster"):
        run_search(config, out_dir=tmp_path / "search", trials=2, on_event=lambda e: None)
    assert not (tmp_path / "search").exists()


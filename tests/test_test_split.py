"""A held-out test set (issue 12): carved out of each class before the validation split, or
a folder of its own; never trained on, never used to choose the best epoch, recorded in the
data report. With no test set the split is, index for index, the one made before."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import make_tiny_dataset
from tests.test_engine import small_config
from tests.test_split_plan import make_folder
from training import api
from training.config import Config, ConfigError, DataConfig
from training.data import pipeline
from training.data.errors import DataError
from training.data.pipeline import plan_data, prepare_data
from training.data.scan import scan_folder
from training.data.split import plan_split
from training.engine import run as engine_run
from training.events import DataReport, event_from_dict
from training.rundir import RunDirError
from training.rundir.reading import read_data_report


def shuffled_labels(counts: list[int], seed: int = 0) -> np.ndarray:
    """Class labels with ``counts[i]`` images of class i, in a scan-like mixed order."""
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


def names(counts: list[int]) -> list[str]:
    return [f"class_{i}" for i in range(len(counts))]


def split_before_test_sets(labels, validation_split: float, seed: int):
    """``split_stratified`` as it was before test sets (issue 12), kept here verbatim as the
    reference: runs made then must resume and be exported on exactly these indices."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels, dtype=np.int64)
    indices = np.arange(len(labels), dtype=np.int64)
    if validation_split <= 0 or len(labels) == 0:
        return np.random.default_rng(seed).permutation(indices), np.zeros(0, dtype=np.int64)
    counts = np.bincount(labels)
    splittable = counts[labels] >= 2
    singles, pool = indices[~splittable], indices[splittable]
    pool_classes = int(np.count_nonzero(counts >= 2))
    if pool_classes == 0:
        return np.random.default_rng(seed).permutation(indices), np.zeros(0, dtype=np.int64)
    n_validation = math.ceil(validation_split * len(pool))
    n_validation = min(max(n_validation, pool_classes), len(pool) - pool_classes)
    train, validation = train_test_split(pool, test_size=n_validation, random_state=seed,
                                         shuffle=True, stratify=labels[pool])
    train = np.concatenate([train, singles])
    return np.random.default_rng(seed).permutation(train), np.asarray(validation, dtype=np.int64)


SHAPES = [[10, 10, 10], [17, 6, 3], [1, 7, 1, 4], [2, 2], [9, 11, 13, 2], [40, 25, 60, 5]]


# -- the split -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 3, 1337])
@pytest.mark.parametrize("split", [0.1, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("counts", SHAPES)
def test_no_test_set_gives_exactly_the_split_made_before_test_sets(counts, split, seed):
    labels = shuffled_labels(counts, seed)
    train, validation = split_before_test_sets(labels, split, seed)

    for plan in (plan_split(names(counts), labels, split, seed),
                 plan_split(names(counts), labels, split, seed, test_split=0.0)):
        assert plan.train_index.dtype == train.dtype and plan.validation_index.dtype == validation.dtype
        assert np.array_equal(plan.train_index, train)
        assert np.array_equal(plan.validation_index, validation)
        assert plan.test_index.size == 0 and plan.test_counts == {} and plan.test_count == 0


def test_no_test_set_keeps_the_recorded_indices_of_an_earlier_run():
    # Recorded with the planner of the previous release: a run made then resumes on these.
    labels = [0] * 7 + [1] * 4 + [2] * 9 + [3] * 1
    plan = plan_split(["a", "b", "c", "d"], labels, 0.3, 11)
    assert plan.train_index.tolist() == [7, 5, 18, 12, 4, 9, 6, 17, 2, 15, 14, 10, 3, 13, 20]
    assert plan.validation_index.tolist() == [11, 1, 0, 16, 8, 19]
    folder = plan_split(["a", "b", "c", "d"], labels, 0.3, 11, validation_labels=[0, 1, 2, 3])
    assert folder.train_index.tolist() == [11, 2, 17, 8, 12, 15, 0, 9, 1, 20, 6, 18, 5, 3, 4, 13, 19,
                                           10, 7, 16, 14]


def test_a_data_folder_without_a_test_set_trains_and_validates_on_the_same_files_as_before(tmp_path):
    data = DataConfig(dir=str(make_folder(tmp_path / "data", [9, 11, 13, 2])), validation_split=0.2,
                      batch_size=4, seed=5)
    scan = scan_folder(data.dir)
    train, validation = split_before_test_sets(scan.labels, 0.2, 5)

    bundle = prepare_data(data, 16, seed=data.seed)

    assert bundle.train_files == [scan.files[i] for i in train]
    assert bundle.validation_files == [scan.files[i] for i in validation]
    assert bundle.test_files == [] and bundle.test_labels.size == 0 and bundle.test_counts == {}


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("test_split", [0.1, 0.25, 0.45])
@pytest.mark.parametrize("counts", SHAPES)
def test_the_test_split_is_stratified_disjoint_and_covers_every_image(counts, test_split, seed):
    labels = shuffled_labels(counts, seed)

    plan = plan_split(names(counts), labels, 0.2, seed, test_split=test_split)

    train, validation, test = (set(p.tolist()) for p in (plan.train_index, plan.validation_index,
                                                          plan.test_index))
    assert not (train & validation) and not (train & test) and not (validation & test)
    assert train | validation | test == set(range(len(labels)))
    assert len(plan.train_index) + len(plan.validation_index) + len(plan.test_index) == len(labels)
    for index, count in enumerate(counts):
        name = f"class_{index}"
        tested = plan.test_counts[name]
        assert tested == int(np.count_nonzero(labels[plan.test_index] == index))
        assert plan.train_counts[name] + plan.validation_counts[name] + tested == count
        if count < 3:
            # Too small to give one: training and validation keep one image each first.
            assert tested == 0
        else:
            assert abs(tested - test_split * count) <= 1, (name, tested)  # stratified
            assert plan.train_counts[name] >= 1
        if tested == 0 and count > 1:  # e.g. 3 images at 0.1: the class's share rounds to none
            assert any(w.startswith(f"Class '{name}' has no test image ({count} images in all")
                       for w in plan.warnings)
    assert plan.test_count == len(plan.test_index)


def test_the_test_split_is_seeded():
    labels = shuffled_labels([30, 20, 25])

    first = plan_split(names([30, 20, 25]), labels, 0.2, 4, test_split=0.2)
    again = plan_split(names([30, 20, 25]), labels, 0.2, 4, test_split=0.2)
    other = plan_split(names([30, 20, 25]), labels, 0.2, 5, test_split=0.2)

    for a, b in ((first.train_index, again.train_index), (first.validation_index, again.validation_index),
                 (first.test_index, again.test_index)):
        assert np.array_equal(a, b)
    assert not np.array_equal(first.test_index, other.test_index)


def test_validation_and_test_are_both_shares_of_all_the_images():
    labels = shuffled_labels([100, 100])

    plan = plan_split(names([100, 100]), labels, 0.2, 0, test_split=0.1)

    assert plan.test_counts == {"class_0": 10, "class_1": 10}
    assert plan.validation_counts == {"class_0": 20, "class_1": 20}
    assert plan.train_counts == {"class_0": 70, "class_1": 70}


def test_a_test_split_beside_a_validation_folder_keeps_only_one_training_image_per_class():
    labels = shuffled_labels([2, 10])

    plan = plan_split(names([2, 10]), labels, 0.2, 0, validation_labels=[0, 1], test_split=0.3)

    assert plan.validation_index.size == 0 and plan.validation_counts == {"class_0": 1, "class_1": 1}
    assert plan.test_counts == {"class_0": 1, "class_1": 3}
    assert sorted(plan.train_index.tolist() + plan.test_index.tolist()) == list(range(12))


def test_the_engine_and_the_window_plan_the_same_test_set(tmp_path):
    data = DataConfig(dir=str(make_folder(tmp_path / "data", [12, 9, 15])), validation_split=0.2,
                      test_split=0.25, batch_size=4, seed=2)
    scan = scan_folder(data.dir)

    bundle = prepare_data(data, 16, seed=data.seed)
    plan = api.plan_split(api.scan_folder(data.dir), data)
    files, labels = pipeline.test_images(scan, plan, data)

    assert bundle.test_files == files and np.array_equal(bundle.test_labels, labels)
    assert bundle.test_counts == plan.test_counts == {"class_0": 3, "class_1": 2, "class_2": 4}
    assert [scan.classes[i] for i in labels] == [Path(f).parent.name for f in files]
    assert not set(files) & (set(bundle.train_files) | set(bundle.validation_files))
    assert len(files) + bundle.train_count + bundle.validation_count == len(scan.files)
    assert bundle.report().test_counts == plan.test_counts and bundle.report().test_dir is None


# -- a test folder --------------------------------------------------------------------------------
def test_a_test_folder_is_the_test_set_and_every_image_of_the_data_folder_trains_or_validates(tmp_path):
    train_dir = make_folder(tmp_path / "train", [8, 6, 7])
    test_dir = make_folder(tmp_path / "test", [3, 2, 4])
    data = DataConfig(dir=str(train_dir), test_dir=str(test_dir), validation_split=0.25, seed=1)
    scan = scan_folder(data.dir)

    plan, _ = plan_data(scan, data, seed=data.seed)
    files, labels = pipeline.test_images(scan, plan, data)
    bundle = prepare_data(data, 16, seed=data.seed)

    assert plan.test_index.size == 0
    assert plan.test_counts == bundle.test_counts == {"class_0": 3, "class_1": 2, "class_2": 4}
    assert plan.train_count + plan.validation_count == len(scan.files)
    assert files == bundle.test_files and all(Path(f).is_relative_to(test_dir) for f in files)
    assert [scan.classes[i] for i in labels] == [Path(f).parent.name for f in files]
    report = bundle.report()
    assert report.test_dir == str(test_dir) and report.test_counts == plan.test_counts


def test_a_test_folder_with_other_classes_is_refused_clearly(tmp_path):
    train_dir = make_folder(tmp_path / "train", [4, 4, 4])
    test_dir = make_folder(tmp_path / "test", [2, 2])
    (test_dir / "class_1").rename(test_dir / "dogs")
    data = DataConfig(dir=str(train_dir), test_dir=str(test_dir))

    for attempt in (lambda: prepare_data(data, 16, seed=0), lambda: api.plan_split(scan_folder(data.dir), data)):
        with pytest.raises(DataError) as info:
            attempt()
        message = str(info.value)
        assert message.startswith(f"The test folder {test_dir} must have the same class folders (with images) "
                                  f"as the training folder {train_dir}")
        assert "missing from the test folder: class_1, class_2" in message
        assert "only in the test folder: dogs" in message
        assert "set `data.test_dir` to null" in message


def test_an_empty_test_folder_says_what_it_needs(tmp_path):
    train_dir = make_folder(tmp_path / "train", [4, 4])
    (tmp_path / "test").mkdir()

    with pytest.raises(DataError, match=r"The test folder .* \(`data.test_dir`\) has no usable images. "
                                        r"It needs the training folder's class subfolders \(class_0, class_1\)"):
        prepare_data(DataConfig(dir=str(train_dir), test_dir=str(tmp_path / "test")), 16, seed=0)


@pytest.mark.parametrize("where", ["inside", "same", "validation"])
def test_a_test_folder_that_overlaps_the_training_or_validation_images_is_refused(tmp_path, where):
    train_dir = make_folder(tmp_path / "train", [4, 4])
    validation_dir = make_folder(tmp_path / "validation", [2, 2])
    test_dir = {"inside": train_dir / "class_0", "same": train_dir, "validation": validation_dir}[where]
    data = DataConfig(dir=str(train_dir), validation_dir=str(validation_dir), test_dir=str(test_dir))

    with pytest.raises(DataError) as info:
        prepare_data(data, 16, seed=0)

    message = str(info.value)
    assert message.startswith(f"The test folder {test_dir} (`data.test_dir`)")
    assert ("the validation folder (`data.validation_dir`)" if where == "validation"
            else "the training folder (`data.dir`)") in message
    assert "set `data.test_dir` to null and `data.test_split` > 0" in message


def test_a_blank_test_folder_means_none(tmp_path):
    data = DataConfig(dir=str(make_folder(tmp_path / "data", [6, 6])), test_dir="  ", test_split=0.2)

    bundle = prepare_data(data, 16, seed=0)

    assert sum(bundle.test_counts.values()) == 3 and min(bundle.test_counts.values()) == 1
    assert bundle.test_scan is None and len(bundle.test_files) == 3


# -- the config ------------------------------------------------------------------------------------
def test_a_test_split_and_a_test_folder_together_are_refused_naming_both():
    with pytest.raises(ConfigError) as info:
        Config().with_overrides({"data.test_split": 0.1, "data.test_dir": "/data/test"})
    message = str(info.value)
    assert "`data.test_split` must be 0 when `data.test_dir` is given" in message
    assert "set `data.test_split` to 0 or clear `data.test_dir`" in message
    assert message.endswith("Received: data.test_split=0.1")


def test_validation_and_test_must_leave_images_to_train_on():
    with pytest.raises(ConfigError) as info:
        Config().with_overrides({"data.validation_split": 0.6, "data.test_split": 0.35})
    assert str(info.value).startswith("`data.test_split` must be at most 0.3 when `data.validation_split` is 0.6")
    # Float sums just over the limit (0.1 + 0.8 = 0.9000000000000001) and a validation
    # folder (the split only makes the test set) are fine.
    Config().with_overrides({"data.validation_split": 0.8, "data.test_split": 0.1})
    Config().with_overrides({"data.validation_split": 0.9, "data.validation_dir": "/v", "data.test_split": 0.45})


def test_the_test_settings_round_trip_and_default_to_no_test_set():
    assert (Config().data.test_split, Config().data.test_dir) == (0.0, None)
    config = Config().with_overrides({"data.test_dir": "/data/test"})
    assert Config.from_json(config.to_json()) == config
    older = json.loads(Config().to_json())
    del older["data"]["test_split"], older["data"]["test_dir"]
    assert Config.from_dict(older) == Config()


# -- the run record -------------------------------------------------------------------------------
def test_a_data_report_from_before_test_sets_still_reads(tmp_path):
    old = {"root": "/data", "classes": ["a", "b"], "train_counts": {"a": 4, "b": 4},
           "validation_counts": {"a": 1, "b": 1}, "skipped": [], "ignored": [], "warnings": [],
           "train_images": 8, "validation_images": 2}
    (tmp_path / "data_report.json").write_text(json.dumps(old), encoding="utf-8")

    assert read_data_report(tmp_path) == old
    event = event_from_dict({"type": "data_report", **{k: v for k, v in old.items() if not k.endswith("images")}})
    assert isinstance(event, DataReport) and event.test_counts == {} and event.test_dir is None

    (tmp_path / "data_report.json").write_text(json.dumps({**old, "test_counts": {"a": -1}}), encoding="utf-8")
    with pytest.raises(RunDirError, match="`test_counts` must map class names to whole numbers"):
        read_data_report(tmp_path)


def test_a_real_run_never_trains_or_chooses_its_best_epoch_on_the_test_images(tmp_path, monkeypatch):
    data_dir = make_tiny_dataset(tmp_path, classes=3, per_class=12, size=32)
    config = small_config(data_dir, **{"data.test_split": 0.25, "data.validation_split": 0.2,
                                       "training.head_epochs": 0, "training.fine_tune_epochs": 1})
    bundles, piped = [], []
    real_prepare, real_make_dataset = engine_run.prepare_data_bundle, pipeline.make_dataset

    def make_dataset(files, *args, **kwargs):
        piped.append([str(f) for f in files])
        return real_make_dataset(files, *args, **kwargs)

    def prepare(*args, **kwargs):
        # Only the pipelines prepare_data builds (the ones fit trains and validates on) are recorded.
        with monkeypatch.context() as patch:
            patch.setattr(pipeline, "make_dataset", make_dataset)
            bundle = real_prepare(*args, **kwargs)
        bundles.append(bundle)
        return bundle

    monkeypatch.setattr(engine_run, "prepare_data_bundle", prepare)

    result = api.run_training(config, run_dir=tmp_path / "run", on_event=lambda event: None)

    assert result.stop_reason == "completed", result.error
    (bundle,) = bundles
    test = set(bundle.test_files)
    assert len(test) == 9 and bundle.test_counts == {"circle": 3, "square": 3, "triangle": 3}
    assert not test & set(bundle.train_files) and not test & set(bundle.validation_files)
    assert len(piped) == 2 and sorted(piped[0]) == sorted(bundle.train_files)
    assert sorted(piped[1]) == sorted(bundle.validation_files)
    assert not test & {f for files in piped for f in files}  # neither fit nor the best-epoch choice saw them
    report = json.loads((tmp_path / "run" / "data_report.json").read_text(encoding="utf-8"))
    listed = {item["path"] for item in report["skipped"] + report["ignored"]}
    assert not test & listed
    assert report["test_counts"] == bundle.test_counts and report["test_dir"] is None
    for name in report["classes"]:
        assert report["train_counts"][name] + report["validation_counts"][name] + \
            report["test_counts"][name] == 12
    assert report["train_images"] + report["validation_images"] + sum(report["test_counts"].values()) == 36
    assert report["train_images"] == len(bundle.train_files)
    assert report["validation_images"] == len(bundle.validation_files)
    # The run ends by scoring its best model on both, apart: evaluation/ and evaluation-test/.
    run = tmp_path / "run"
    validation = json.loads((run / "evaluation" / "evaluation.json").read_text(encoding="utf-8"))
    held_out = json.loads((run / "evaluation-test" / "evaluation.json").read_text(encoding="utf-8"))
    assert validation["split"] == "validation" and validation["images"] == len(bundle.validation_files)
    assert held_out["split"] == "test" and held_out["images"] == 9
    with open(run / "evaluation-test" / "predictions.csv", encoding="utf-8") as handle:
        assert {line.split(",")[0] for line in handle.read().splitlines()[1:]} == test
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["evaluation"]["test"]["accuracy"] == held_out["accuracy"]
    # and `evaluate --split test` finds the same images again
    again = api.evaluate(run, split="test", out=tmp_path / "again")
    assert again["confusion_matrix"] == held_out["confusion_matrix"]


def test_the_command_line_refuses_a_missing_test_folder_before_training(tmp_path, capsys):
    from training.cli.main import main

    data_dir = make_tiny_dataset(tmp_path, classes=2, per_class=4, size=32)
    code = main(["train", "--data", str(data_dir), "--out", str(tmp_path / "run"),
                 "--set", f"data.test_dir={tmp_path / 'nowhere'}", "--set", "data.test_split=0"])
    assert code == 2
    assert "The test folder (data.test_dir) cannot be used" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

"""Reproducing a run: data_files.json records every file of every split with its class and
content hash, and ``train RUN_DIR/config.json`` repeats the run and says so (or says what
differs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from main import main
from tests.helpers import make_tiny_dataset
from training.experiments.reproduce import reproduction_report
from training.rundir import read_metrics
from training.rundir.data_files import data_differences, read_data_files

SETTINGS = ["--set", "model.backbone=\"SmallCNN\"", "--set", "model.weights=\"none\"",
            "--set", "data.image_size=32", "--set", "data.batch_size=16", "--set", "training.mode=\"from_scratch\"",
            "--set", "training.head_epochs=0", "--set", "training.fine_tune_epochs=2",
            "--set", "data.test_split=0.2", "--set", "training.tensorboard_histograms=false"]


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reproduce")
    data = make_tiny_dataset(root / "data", per_class=12, size=32)
    assert main(["train", "--data", str(data), "--out", str(root / "first"), "--quiet", *SETTINGS]) == 0
    return data, root / "first"


def test_a_run_records_every_file_of_every_split_with_its_hash(first):
    data, run = first
    record = read_data_files(run)
    sizes = {split: len(record[split]) for split in ("train", "validation", "test")}
    assert sum(sizes.values()) == 36 and all(sizes.values())
    every = [entry for split in ("train", "validation", "test") for entry in record[split]]
    assert len({entry["path"] for entry in every}) == 36  # no file in two splits
    entry = record["test"][0]
    assert entry["path"].startswith(entry["class"] + "/")
    assert entry["sha256"] == hashlib.sha256((data / entry["path"]).read_bytes()).hexdigest()
    report = json.loads((run / "data_report.json").read_text())
    assert sizes["test"] == sum(report["test_counts"].values())


def test_training_a_runs_config_again_reproduces_it_and_says_so(first, tmp_path, capsys):
    _, run = first
    capsys.readouterr()
    assert main(["train", str(run / "config.json"), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "Same files with the same content" in err and "reproduced" in err
    assert read_data_files(tmp_path / "again") == read_data_files(run)
    def figures(run_dir):
        return [(r["epoch"], r["loss"], r["accuracy"], r["val_loss"], r["val_accuracy"]) for r in read_metrics(run_dir)]
    assert figures(tmp_path / "again") == figures(run) and len(figures(run)) == 2


def test_changed_data_is_named_and_the_figures_are_not_called_reproduced(first, tmp_path):
    data, run = first
    record = read_data_files(run)
    changed = data / record["train"][0]["path"]
    original = changed.read_bytes()
    try:
        Image.new("RGB", (32, 32), (1, 2, 3)).save(changed, format="JPEG")
        main(["train", str(run / "config.json"), "--out", str(tmp_path / "changed"), "--quiet"])
    finally:
        changed.write_bytes(original)
    lines = reproduction_report(run, tmp_path / "changed")
    assert lines[0].startswith(f"The data differs from {run}'s (train: 1 with other content (e.g. "
                               f"{record['train'][0]['path']})")
    assert not any("reproduced" in line for line in lines)


def test_differences_count_added_missing_and_changed_files_per_split():
    old = {"train": [{"path": "a/1.jpg", "class": "a", "sha256": "x"}, {"path": "a/2.jpg", "class": "a", "sha256": "y"}],
           "validation": [], "test": []}
    new = {"train": [{"path": "a/1.jpg", "class": "a", "sha256": "z"}, {"path": "a/3.jpg", "class": "a", "sha256": "w"}],
           "validation": [], "test": []}
    assert data_differences(old, old) == []
    assert data_differences(old, new) == [
        "train: 1 added (e.g. a/3.jpg), 1 missing (e.g. a/2.jpg), 1 with other content (e.g. a/1.jpg)"]

"""Experiments: the runs root, every run listed with its status, runs compared (issue 14, parts 1-2).

The runs are real and tiny (SmallCNN, 32 px, 24 images, 1-2 epochs), made once for the module:
finished, stopped by the stop event before any epoch, stopped after an epoch (resumable),
failed (one class); the running, killed and damaged ones are copies of those, held or broken
as a real process or a crash would leave them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from main import main
from tests.helpers import make_tiny_dataset
from training.api import run_training
from training.config import Config
from training.events import EpochEnd
from training.experiments import (
    RUNS_ENV,
    changed_keys,
    config_diff,
    default_runs_root,
    list_runs,
    read_run,
    runs_root,
)
from training.experiments.compare import resolved_defaults
from training.rundir import lock_run_dir

ROOT = Path(__file__).resolve().parent.parent
RECORD_FIELDS = {"run_dir", "status", "started_at", "backbone", "image_size", "best_epoch",
                 "best_metrics", "changed", "reason"}
TINY = {"model.backbone": "SmallCNN", "model.weights": "none", "data.image_size": 32,
        "data.batch_size": 8, "training.head_epochs": 0, "training.fine_tune_epochs": 1}


def tiny_config(data: Path, **overrides) -> Config:
    return Config().with_overrides({**TINY, "data.dir": str(data), **overrides})


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The real runs, each in its own folder under ``made/``: name -> run folder."""
    base = tmp_path_factory.mktemp("experiments")
    data = make_tiny_dataset(base, classes=2, per_class=12, size=32)
    one_class = base / "one-class"
    shutil.copytree(data / "circle", one_class / "circle")
    runs = base / "made"
    config = base / "config.json"
    tiny_config(data).save(config)

    # Finished, through the CLI with --root: the run's folder is named under that root.
    assert main(["train", str(config), "--root", str(runs / "cli-root"), "--quiet"]) == 0
    (finished,) = (runs / "cli-root").iterdir()

    stop_now = threading.Event()
    stop_now.set()
    stopped = run_training(tiny_config(data), run_dir=runs / "stopped", on_event=lambda e: None,
                           stop=stop_now)
    assert stopped.stop_reason == "stopped" and stopped.best_epoch == 0

    stop_later = threading.Event()

    def stop_after_first_epoch(event) -> None:
        if isinstance(event, EpochEnd):
            stop_later.set()
    two_epochs = tiny_config(data, **{"training.fine_tune_epochs": 2, "optimizer.learning_rate": 0.003})
    resumable = run_training(two_epochs, run_dir=runs / "resumable", on_event=stop_after_first_epoch,
                             stop=stop_later)
    assert resumable.stop_reason == "stopped" and resumable.best_epoch == 1, resumable.error

    failed = run_training(tiny_config(one_class), run_dir=runs / "failed", on_event=lambda e: None)
    assert failed.stop_reason == "failed"
    return {"finished": finished, "stopped": runs / "stopped", "resumable": runs / "resumable",
            "failed": runs / "failed", "data": data, "one_class": one_class}


@pytest.fixture
def root(tmp_path, made):
    """A runs root holding a copy of every kind of run, plus what is not a run."""
    root = tmp_path / "root"
    for name in ("finished", "stopped", "resumable", "failed"):
        shutil.copytree(made[name], root / name)
    killed = root / "killed"  # a kill leaves no summary; its checkpoint remains
    shutil.copytree(made["resumable"], killed)
    (killed / "summary.json").unlink()
    bad_config = root / "bad-config"
    shutil.copytree(made["finished"], bad_config)
    (bad_config / "config.json").write_text("{not json", encoding="utf-8")
    bad_summary = root / "bad-summary"
    shutil.copytree(made["finished"], bad_summary)
    (bad_summary / "summary.json").write_text("[1, 2]", encoding="utf-8")
    (root / "holiday-photos" / "beach").mkdir(parents=True)  # not runs: skipped quietly
    (root / "holiday-photos" / "beach" / "a.jpg").write_bytes(b"\xff\xd8")
    (root / "notes.txt").write_text("not a folder")
    search = root / "search-1"  # a search's folder: its trials are runs one level down
    search.mkdir()
    shutil.copy(made["finished"] / "config.json", search / "config.json")
    (search / "trials.csv").write_text("trial,run_dir,status,val_accuracy,val_loss\n")
    shutil.copytree(made["finished"], search / "trial-000")
    return root


def by_name(records, root: Path) -> dict[str, object]:
    return {str(Path(r.run_dir).relative_to(root)): r for r in records}


# -- listing ------------------------------------------------------------------------------
def test_every_run_is_listed_with_its_status_and_nothing_else(root):
    runs = by_name(list_runs(root), root)
    assert {name: r.status for name, r in runs.items()} == {
        "finished": "finished", "stopped": "stopped", "resumable": "resumable", "failed": "failed",
        "killed": "resumable", "bad-config": "damaged", "bad-summary": "damaged",
        "search-1/trial-000": "finished"}
    assert "no epoch of that run completed" in runs["stopped"].reason
    assert "after epoch 1 of 2" in runs["resumable"].reason and "--resume" in runs["resumable"].reason
    assert "without a summary" in runs["killed"].reason
    assert "a classifier needs at least 2" in runs["failed"].reason  # the summary's error
    assert "config.json" in runs["bad-config"].reason
    assert "summary.json" in runs["bad-summary"].reason and "not an object" in runs["bad-summary"].reason


def test_a_record_holds_the_runs_backbone_size_best_epoch_and_metrics(root):
    runs = by_name(list_runs(root), root)
    finished = runs["finished"]
    summary = json.loads((root / "finished" / "summary.json").read_text())
    assert (finished.backbone, finished.image_size, finished.best_epoch) == ("SmallCNN", 32, 1)
    assert finished.best_metrics["val_accuracy"] == summary["best_metrics"]["val_accuracy"]
    assert finished.started_at == summary["started_at"]
    # Killed: no summary, so the best comes from the checkpoint and the start from config.json.
    killed = runs["killed"]
    assert killed.best_epoch == 1 and "val_loss" in killed.best_metrics and killed.started_at
    assert runs["stopped"].best_epoch == 0 and runs["stopped"].best_metrics == {}


def test_runs_are_listed_newest_first(root):
    for age, name in enumerate(["failed", "stopped", "finished"]):  # finished is the newest
        path = root / name / "summary.json"
        summary = json.loads(path.read_text())
        summary["started_at"] = f"2030-01-0{age + 1}T10:00:00+00:00"
        path.write_text(json.dumps(summary))
    names = [Path(r.run_dir).name for r in list_runs(root)]
    assert names[:3] == ["finished", "stopped", "failed"]


def test_a_run_whose_lock_a_process_holds_is_running(root, made):
    running = root / "running"
    shutil.copytree(made["finished"], running)
    (running / "summary.json").unlink()  # a run in progress has written no summary yet
    with lock_run_dir(running):
        record = read_run(running)
        assert record.status == "running" and "PID" in record.reason
    released = read_run(running)  # all its epochs done, but killed before its summary
    assert released.status == "failed" and "without a summary" in released.reason


def test_a_missing_root_holds_no_runs_and_a_file_is_refused(tmp_path):
    assert list_runs(tmp_path / "nothing-yet") == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="Cannot read the runs folder"):
        list_runs(tmp_path / "file")


def test_listing_loads_no_tensorflow(root):
    code = ("import sys; from training.experiments import list_runs; "
            f"print(len(list_runs({str(root)!r}))); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'PySide6') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.split("\n")[:2] == ["8", "[]"]


# -- the keys that differ ---------------------------------------------------------------------
def test_changed_keys_are_counted_against_the_defaults_as_a_run_records_them():
    assert changed_keys(resolved_defaults()) == {}
    # The defaults as written: the engine decides the mode and the fine-tuning rate into config.json.
    assert changed_keys(Config()) == {"training.mode": "auto", "training.fine_tune_learning_rate": None}
    config = resolved_defaults()
    config.optimizer.learning_rate = 3e-4
    config.model.head.hidden_units = [128]
    assert changed_keys(config) == {"optimizer.learning_rate": 3e-4, "model.head.hidden_units": [128]}


def test_a_runs_changed_keys_are_what_it_set(made):
    changed = read_run(made["resumable"]).changed
    assert changed["model.backbone"] == "SmallCNN" and changed["data.image_size"] == 32
    assert changed["optimizer.learning_rate"] == 0.003 and changed["training.fine_tune_epochs"] == 2
    assert changed["data.dir"] == str(made["data"])
    assert "optimizer.name" not in changed and "augmentation.zoom" not in changed


def test_config_diff_lists_each_key_that_is_not_the_same_everywhere():
    a, b, c = Config(), Config(), Config()
    b.optimizer.learning_rate = 0.01
    c.optimizer.learning_rate = 0.01
    c.regularization.l2 = 1e-4
    assert config_diff([a, b, c]) == {"optimizer.learning_rate": [0.001, 0.01, 0.01],
                                      "regularization.l2": [0.0, 0.0, 1e-4]}
    assert config_diff([a, Config()]) == {}


# -- the commands ---------------------------------------------------------------------------
def test_runs_json_prints_one_record_a_line(root, capsys):
    assert main(["runs", "--root", str(root), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 8 and all(set(r) == RECORD_FIELDS for r in records)
    finished = next(r for r in records if r["run_dir"] == str(root / "finished"))
    assert finished["status"] == "finished" and finished["backbone"] == "SmallCNN"
    assert finished["changed"]["model.backbone"] == "SmallCNN"


def test_runs_prints_a_table(root, capsys):
    assert main(["runs", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"8 run(s) under {root}")
    header = out.splitlines()[1].split()
    assert header[:3] == ["STARTED", "STATUS", "BACKBONE"]
    assert any(line.split()[2:4] == ["resumable", "SmallCNN"] for line in out.splitlines())
    assert "search-1/trial-000" in out


def test_runs_reads_the_default_root_and_refuses_a_missing_root(private_runs_root, made, tmp_path, capsys):
    shutil.copytree(made["finished"], private_runs_root / "one")
    assert main(["runs", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["run_dir"] == str(private_runs_root / "one")
    assert main(["runs", "--root", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_compare_prints_the_config_diff_then_the_best_metrics(made, capsys):
    assert main(["compare", str(made["finished"]), str(made["resumable"])]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "training.fine_tune_epochs: 1 -> 2" in lines
    assert "optimizer.learning_rate: 0.001 -> 0.003" in lines
    assert not any(line.startswith("data.dir") for line in lines)  # the same data
    table = lines[lines.index("") + 1:]
    assert table[0].split() == [made["finished"].name, "resumable"]
    assert table[1].split() == ["status", "finished", "resumable"]
    assert table[2].split() == ["best_epoch", "1", "1"]
    assert table[3].split()[0] == "val_accuracy"


def test_compare_three_runs_chains_the_values(made, capsys):
    assert main(["compare", str(made["finished"]), str(made["resumable"]), str(made["failed"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "training.fine_tune_epochs: 1 -> 2 -> 1" in lines
    assert f"data.dir: {made['data']} -> {made['data']} -> {made['one_class']}" in lines


def test_compare_json(made, capsys):
    assert main(["compare", str(made["finished"]), str(made["resumable"]), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["config_diff"]["training.fine_tune_epochs"] == [1, 2]
    assert [r["status"] for r in document["runs"]] == ["finished", "resumable"]
    assert document["runs"][0]["best_metrics"]["val_loss"] > 0


@pytest.mark.parametrize("other, message", [
    ("missing", "does not exist"),
    ("not-a-run", "is not a run folder"),
    ("damaged", "config.json"),
])
def test_compare_refuses_what_is_not_a_readable_run(made, tmp_path, capsys, other, message):
    target = tmp_path / other
    if other == "not-a-run":
        (target / "photos").mkdir(parents=True)
    elif other == "damaged":
        shutil.copytree(made["finished"], target)
        (target / "config.json").write_text('{"optimizer": {"learning_rate": -1}}')
    assert main(["compare", str(made["finished"]), str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_compare_needs_two_runs(made, capsys):
    assert main(["compare", str(made["finished"])]) == 2
    assert "two or more" in capsys.readouterr().err


# -- the runs root --------------------------------------------------------------------------
def test_the_runs_root_is_the_user_data_folder_unless_the_environment_moves_it(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "mine"))
    assert default_runs_root() == tmp_path / "mine" and runs_root(None) == tmp_path / "mine"
    assert runs_root(str(tmp_path / "explicit")) == tmp_path / "explicit"
    monkeypatch.delenv(RUNS_ENV)
    expected = Path(platformdirs.user_data_dir("finetune-studio", appauthor=False)) / "runs"
    assert default_runs_root() == expected and expected.is_absolute()


def test_the_first_runs_go_under_the_runs_root(made):
    assert made["finished"].parent.name == "cli-root"  # `train --root`
    assert made["finished"].name.endswith("-SmallCNN")


def test_train_without_out_names_its_folder_under_the_runs_root(private_runs_root, made, capsys):
    # One class: the run fails while reading its data (exit 2), after it took its folder.
    assert main(["train", "--data", str(made["one_class"]), "--set", "model.backbone=SmallCNN",
                 "--set", "model.weights=none", "--set", "data.image_size=32", "--quiet"]) == 2
    (run_dir,) = private_runs_root.iterdir()
    assert run_dir.name.endswith("-SmallCNN")
    assert read_run(run_dir).status == "failed"


def test_train_refuses_out_with_root_and_a_root_that_is_a_file(made, tmp_path, monkeypatch, capsys):
    assert main(["train", "--data", str(made["data"]), "--out", str(tmp_path / "a"),
                 "--root", str(tmp_path / "b")]) == 2
    assert "give one of them" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "file"))
    assert main(["train", "--data", str(made["data"])]) == 2
    assert "runs root cannot hold a new run folder" in capsys.readouterr().err
    assert main(["train", "--resume", str(made["resumable"]), "--root", str(tmp_path)]) == 2

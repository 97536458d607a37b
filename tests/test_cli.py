"""The command line: train, config, predict; clear errors and exit codes, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from main import main
from tests.helpers import make_tiny_dataset, write_broken_files
from training.config import Config

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})


def test_config_default_prints_the_complete_default_config():
    result = run_cli("config", "--default")
    assert result.returncode == 0, result.stderr
    assert Config.from_json(result.stdout) == Config()
    assert set(json.loads(result.stdout)) == {"schema_version", "data", "model", "regularization",
                                              "augmentation", "optimizer", "schedule", "training"}


def test_bad_config_exits_2_with_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"optimizer": {"learning_rate": 0.01, "momentun": 0.9}}))
    result = run_cli("train", str(bad))
    assert result.returncode == 2
    assert "`optimizer.momentun`" in result.stderr and "momentum" in result.stderr
    assert "Traceback" not in result.stderr

    result = run_cli("train", "--set", "data.batch_size=0")
    assert result.returncode == 2
    assert "Received: data.batch_size=0" in result.stderr and "Traceback" not in result.stderr


def test_missing_data_folder_exits_2(tmp_path):
    result = run_cli("train", "--data", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_train_then_predict(tmp_path, capsys):
    data = make_tiny_dataset(tmp_path, size=32)
    config = tmp_path / "config.json"
    Config().with_overrides({
        "model.backbone": "SmallCNN", "model.weights": "none", "data.image_size": 32,
        "data.batch_size": 16, "training.head_epochs": 0, "training.fine_tune_epochs": 6,
        "training.fine_tune_layers": "all", "training.fine_tune_learning_rate": 0.003,
    }).save(config)
    run_dir = tmp_path / "run"
    code = main(["train", str(config), "--data", str(data), "--out", str(run_dir),
                 "--set", "augmentation.rotation=0"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == str(run_dir.resolve())
    assert "epoch 6/6" in captured.err and "Finished (completed)" in captured.err
    assert Config.load(run_dir / "config.json").augmentation.rotation == 0.0

    # The same folder again is refused (unusable input: exit 2): an earlier run is never overwritten.
    assert main(["train", str(config), "--data", str(data), "--out", str(run_dir)]) == 2
    assert "already holds a run" in capsys.readouterr().err

    broken = write_broken_files(tmp_path / "unlabelled")
    circle = sorted((data / "circle").iterdir())[0]
    code = main(["predict", str(run_dir), str(circle), str(tmp_path / "unlabelled"), "--top", "2", "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert lines[0]["path"] == str(circle)
    assert [p["class"] for p in lines[0]["top"]][0] in {"circle", "square", "triangle"}
    assert len(lines[0]["top"]) == 2
    assert sum(p["probability"] for p in lines[0]["top"]) <= 1.0 + 1e-6
    errors = {Path(item["path"]).name: item.get("error") for item in lines[1:]}
    assert set(errors) == {p.name for p in broken.values()}
    assert all(errors.values()), "broken files must be reported, not classified"


def test_predict_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["predict", str(tmp_path), str(tmp_path)]) == 2
    assert "best.keras is missing" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "--help"], ["predict", "--help"]])
def test_help_is_available(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "usage" in capsys.readouterr().out

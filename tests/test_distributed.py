"""Training under tf.distribute (``training.distributed``; ``training.engine.distribute``).

Mirrored runs need two logical CPU devices, which TensorFlow allows to set only before it
starts its devices: they run in a subprocess of their own (tests/distributed_child.py), and a
cluster is two such processes on 127.0.0.1 that find each other through TF_CONFIG.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import make_tiny_dataset
from training.config import Config, ConfigError
from training.engine.distribute import read_tf_config
from training.engine.run import run_training

ROOT = Path(__file__).resolve().parents[1]
CHILD = ROOT / "tests" / "distributed_child.py"
RUN_FILES = ("config.json", "labels.json", "events.jsonl", "metrics.csv", "best.keras", "summary.json",
             "checkpoint/state.json", "evaluation", "tensorboard")


def _child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **extra}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _failed(process: subprocess.CompletedProcess | None, log: str = "") -> str:
    return (log or (process.stdout + process.stderr))[-6000:]


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory) -> dict:
    """Six runs on two logical CPU devices, in one process: plain (2 epochs); scaled learning
    rate, augmentation in the training step and mixed precision (1 epoch); the plain run stopped
    after epoch 1, then resumed; a frozen head phase with the feature cache on, then off; then a
    search of 2 trials."""
    root = tmp_path_factory.mktemp("mirrored")
    data = make_tiny_dataset(root, classes=2, per_class=20, size=32)
    report = root / "report.json"
    process = subprocess.run([sys.executable, str(CHILD), "mirrored", str(report), str(data), str(root / "runs")],
                             cwd=ROOT, env=_child_env(), capture_output=True, text=True, timeout=300)
    assert process.returncode == 0 and report.is_file(), _failed(process)
    return json.loads(report.read_text())


def test_mirrored_run_writes_a_normal_run_folder_with_the_global_batch(mirrored):
    plain = mirrored["plain"]
    assert plain["stop_reason"] == "completed", plain["error"]
    run_dir = Path(plain["run_dir"])
    for name in RUN_FILES:
        assert (run_dir / name).exists(), name
    summary = plain["summary"]
    distribution = summary["distribution"]
    assert distribution["strategy"] == "MirroredStrategy" and distribution["replicas"] == 2
    assert distribution["workers"] == 1 and distribution["devices"] == ["CPU:0", "CPU:1"]
    assert distribution["batch_size_per_replica"] == summary["batch_size"] == 8
    assert distribution["global_batch_size"] == 16
    assert summary["steps_per_epoch"] == math.ceil(summary["train_images"] / 16) == 2
    assert json.loads((run_dir / "config.json").read_text())["training"]["distributed"] == "mirrored"
    assert any("MirroredStrategy, 2 replica(s)" in line and "global batch of 16 (8 per replica)" in line
               for line in plain["logs"])
    assert any("this machine has no GPU" in line for line in plain["logs"])  # CPU devices only add cost
    # The replicas' BatchNorm statistics are averaged before validation: best.keras, evaluated
    # alone after the run, scores what validation scored during it.
    evaluation = summary["evaluation"]["validation"]
    assert evaluation["loss"] == pytest.approx(summary["best_metrics"]["val_loss"], rel=1e-4)


def test_the_feature_cache_trains_the_same_head_under_mirrored(mirrored):
    # Head-only models after the fine-tuned ones, in the same process: a second MirroredStrategy
    # would number its collectives as the first did, and fail on the other shapes. Their
    # validation set of 5 images is one first batch that the 2 replicas split 3 and 2.
    cached, uncached = mirrored["cache_auto"], mirrored["cache_off"]
    assert cached["stop_reason"] == uncached["stop_reason"] == "completed", (cached["error"], uncached["error"])
    assert cached["summary"]["validation_images"] == 5
    assert any(line.startswith("Feature cache: the backbone is frozen") for line in cached["logs"])
    assert not any(line.startswith("Feature cache: the backbone is frozen") for line in uncached["logs"])
    figures = ("loss", "accuracy", "val_loss", "val_accuracy")
    np.testing.assert_allclose([[row[k] for k in figures] for row in cached["history"]],
                               [[row[k] for k in figures] for row in uncached["history"]], rtol=1e-4, atol=1e-5)


def test_a_search_trains_its_trials_mirrored_in_one_process(mirrored):
    search = mirrored["search"]
    assert search["stop_reason"] == "completed", search["error"]
    assert [trial["status"] for trial in search["trials"]] == ["completed", "completed"], search["trials"]
    for trial in search["trials"]:
        summary = json.loads((Path(trial["run_dir"]) / "summary.json").read_text())
        assert summary["distribution"]["replicas"] == 2


def test_out_of_memory_halves_the_batch_of_every_replica(mirrored):
    scaled = mirrored["scaled"]
    assert scaled["stop_reason"] == "completed", scaled["error"]
    assert any(line.startswith("Out of memory at batch size 8: going on at 4") for line in scaled["logs"])
    summary = scaled["summary"]
    assert summary["batch_size"] == summary["distribution"]["batch_size_per_replica"] == 4
    assert summary["distribution"]["global_batch_size"] == 8
    assert summary["steps_per_epoch"] == math.ceil(summary["train_images"] / 8)
    config = json.loads((Path(scaled["run_dir"]) / "config.json").read_text())
    assert config["data"]["batch_size"] == 4


def test_a_cluster_out_of_memory_fails_saying_what_to_do():
    from training.engine.distribute import Distribution, Task
    from training.engine.precision import OutOfMemoryError, run_phase_with_backoff

    class Session:
        config = Config()
        device, state, resume = "GPU: test", None, None
        distribution = Distribution("multi_worker", object(), replicas=2, task=Task("worker", 0, 2))

        def run_phase(self, classifier, phase):
            import tensorflow as tf

            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    classifier = type("Classifier", (), {"model": type("Model", (), {"get_weights": lambda self: []})()})()
    with pytest.raises(OutOfMemoryError, match="cannot halve its batch size") as error:
        run_phase_with_backoff(Session(), classifier, "head")
    assert "lower `data.batch_size` in the run's config.json and resume" in str(error.value)


def test_scaling_the_learning_rate_multiplies_it_by_the_replicas(mirrored):
    plain, scaled = mirrored["plain"], mirrored["scaled"]
    assert scaled["stop_reason"] == "completed", scaled["error"]
    rate = Config().optimizer.learning_rate
    assert [row["learning_rate"] for row in plain["history"]] == pytest.approx([rate, rate])
    assert scaled["history"][0]["learning_rate"] == pytest.approx(2 * rate)
    assert scaled["summary"]["distribution"]["learning_rate_scale"] == 2.0
    assert plain["summary"]["distribution"]["learning_rate_scale"] == 1.0
    # config.json keeps the rate as configured: a resume scales it by its own replicas.
    config = json.loads((Path(scaled["run_dir"]) / "config.json").read_text())
    assert config["optimizer"]["learning_rate"] == pytest.approx(rate)
    assert any("augmentation in the training step" in line for line in scaled["logs"])
    # Mixed precision under the strategy: the loss scale and the float32 copy of the weights.
    assert scaled["summary"]["device"].endswith("(mixed_float16)")
    assert all(math.isfinite(row["loss"]) for row in scaled["history"])
    assert scaled["summary"]["evaluation"]["validation"]["loss"] == pytest.approx(
        scaled["summary"]["best_metrics"]["val_loss"], rel=1e-3)


def test_a_mirrored_run_resumes_as_if_never_stopped(mirrored):
    stopped, resumed, plain = mirrored["stopped"], mirrored["resumed"], mirrored["plain"]
    assert stopped["stop_reason"] == "stopped" and len(stopped["history"]) == 1
    assert resumed["stop_reason"] == "completed", resumed["error"]
    assert any(line.startswith("Resuming after epoch 1") for line in resumed["logs"])
    for key in ("loss", "val_loss", "accuracy"):
        assert [row[key] for row in resumed["history"]] == pytest.approx(
            [row[key] for row in plain["history"]], rel=1e-4, abs=1e-6), key


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_one_model_and_only_the_chief_writes_the_run_folder(tmp_path):
    data = make_tiny_dataset(tmp_path, classes=2, per_class=20, size=32)
    Config().with_overrides({
        "data.dir": str(data), "model.backbone": "SmallCNN", "model.weights": "none", "data.image_size": 32,
        "data.batch_size": 8, "training.head_epochs": 0, "training.fine_tune_epochs": 2,
        "training.fine_tune_layers": "all", "training.distributed": "multi_worker",
        "training.mixed_precision": "on",
        "augmentation.rotation": 0.0, "augmentation.zoom": 0.0, "augmentation.translation": 0.0,
    }).save(tmp_path / "config.json")
    hosts = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    run_dir = tmp_path / "run"  # the same path for both: storage the machines share
    processes, logs = [], []
    for index in range(2):
        temp = tmp_path / f"tmp{index}"
        temp.mkdir()
        tf_config = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
        log = (tmp_path / f"worker{index}.log").open("w")
        logs.append(log)
        processes.append(subprocess.Popen(
            [sys.executable, str(CHILD), "worker", str(tmp_path / f"report{index}.json"),
             str(tmp_path / "config.json"), str(run_dir)],
            cwd=ROOT, env=_child_env(TF_CONFIG=tf_config, TMPDIR=str(temp)), stdout=log, stderr=log))
    try:
        for process in processes:
            process.wait(timeout=400)
    finally:
        for process, log in zip(processes, logs):
            if process.poll() is None:
                process.kill()
            log.close()
    reports = []
    for index, process in enumerate(processes):
        text = (tmp_path / f"worker{index}.log").read_text(errors="replace")
        assert process.returncode == 0 and (tmp_path / f"report{index}.json").is_file(), _failed(None, text)
        reports.append(json.loads((tmp_path / f"report{index}.json").read_text()))
    chief, worker = reports
    # The chief stopped after epoch 1 and the worker, which never asked, stopped with it.
    for report in reports:
        assert report["stopped"]["stop_reason"] == "stopped", report["stopped"]["error"]
        assert len(report["stopped"]["history"]) == 1
        assert report["resumed"]["stop_reason"] == "completed", report["resumed"]["error"]
        assert report["resumed"]["run_dir"] == str(run_dir)
    for key in ("loss", "val_loss", "val_accuracy"):
        assert [row[key] for row in chief["resumed"]["history"]] == [row[key] for row in worker["resumed"]["history"]]
    # One model: the final weights (BatchNorm statistics included) are the same on both workers.
    final = [np.load(tmp_path / f"report{index}.npz") for index in range(2)]
    assert len(final[0].files) == len(final[1].files) > 0
    for name in final[0].files:
        np.testing.assert_array_equal(final[0][name], final[1][name])
    # A normal run folder, written by the chief alone; the worker's own folders are gone.
    for name in RUN_FILES:
        assert (run_dir / name).exists(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "completed" and summary["epochs_completed"] == 2
    assert summary["device"].endswith("(mixed_float16)")  # the loss scale agrees across the cluster
    distribution = summary["distribution"]
    assert (distribution["strategy"], distribution["workers"], distribution["replicas"],
            distribution["global_batch_size"]) == ("MultiWorkerMirroredStrategy", 2, 2, 16)
    assert summary["steps_per_epoch"] == math.ceil(summary["train_images"] / 16)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert sum(e["type"] == "started" for e in events) == 2  # the run and its resume, by the chief
    messages = [e.get("message", "") for e in events]
    assert any("(the chief: it writes the run folder)" in m for m in messages)
    assert not any("not the chief" in m for m in messages)
    said = next(line for line in worker["resumed"]["logs"] if "not the chief" in line)
    assert str(tmp_path / "tmp1" / "finetune-worker1-") in said
    assert not [path for path in (tmp_path / "tmp1").iterdir() if path.name.startswith("finetune-")]


def test_multi_worker_without_tf_config_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    data = make_tiny_dataset(tmp_path, classes=2, per_class=4, size=16)
    config = Config().with_overrides({"data.dir": str(data), "model.backbone": "SmallCNN",
                                      "model.weights": "none", "training.distributed": "multi_worker"})
    events = []
    result = run_training(config, run_dir=tmp_path / "run", on_event=events.append)
    assert result.stop_reason == "failed" and result.error_type == "ConfigError"
    assert "TF_CONFIG" in result.error and '"cluster": {"worker": [' in result.error
    assert "`training.distributed`" in result.error
    assert not (tmp_path / "run").exists()
    assert type(events[-1]).__name__ == "Failed"


@pytest.mark.parametrize("text, says", [
    ("", "is not set"),
    ("{not json", "not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', 'needs a "cluster" and a "task"'),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', '"chief" and "worker" machines only'),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', '"host:port"'),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "has 2 worker"),
])
def test_a_bad_tf_config_says_what_to_set(text, says):
    with pytest.raises(ConfigError, match="TF_CONFIG") as error:
        read_tf_config(text)
    assert says in str(error.value)


def test_the_chief_is_worker_0_unless_the_cluster_names_one():
    workers = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": %d}}'
    assert read_tf_config(workers % 0).chief and not read_tf_config(workers % 1).chief
    with_chief = '{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "%s", "index": 0}}'
    assert read_tf_config(with_chief % "chief").chief and not read_tf_config(with_chief % "worker").chief
    assert read_tf_config(with_chief % "worker").workers == 2


def test_cli_distributed_option_sets_the_knob(tmp_path, monkeypatch, capsys):
    from training.cli.main import main

    monkeypatch.delenv("TF_CONFIG", raising=False)
    data = make_tiny_dataset(tmp_path, classes=2, per_class=4, size=16)
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--quiet",
                 "--set", "model.backbone=\"SmallCNN\"", "--set", "model.weights=\"none\"",
                 "--distributed", "multi-worker"])
    assert code == 2 and "TF_CONFIG environment variable is not set" in capsys.readouterr().err
    code = main(["train", "--resume", str(tmp_path / "run"), "--distributed", "mirrored"])
    assert code == 2 and "--distributed" in capsys.readouterr().err

"""Evaluation (issue 12): what ``python main.py evaluate`` and the end of every run write.

The figures must be the ones ``predict`` gives for the same files, computed by scikit-learn;
mislabelled images must surface among the highest losses; TTA and ensembles average
probabilities.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, log_loss, precision_recall_fscore_support

from tests.helpers import make_tiny_dataset
from training import api
from training.cli.main import main
from training.config import Config
from training.evaluation import EvaluationError
from training.inference.tta import VIEWS, probabilities, tta_views

QUIET_AUGMENTATION = {"augmentation.horizontal_flip": False, "augmentation.rotation": 0.0,
                      "augmentation.zoom": 0.0, "augmentation.translation": 0.0}


def tiny_config(data: Path, **overrides) -> Config:
    values = {"data.dir": str(data), "model.backbone": "SmallCNN", "model.weights": "none",
              "data.image_size": 32, "data.batch_size": 16, "training.head_epochs": 6,
              "training.fine_tune_epochs": 0, **QUIET_AUGMENTATION}
    values.update(overrides)
    return Config().with_overrides(values)


def train(config: Config, run_dir: Path) -> list:
    events = []
    result = api.run_training(config, run_dir=run_dir, on_event=events.append)
    assert result.stop_reason == "completed", result.error
    return events


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data = make_tiny_dataset(root, classes=3, per_class=30, size=32)
    run = root / "run"
    events = train(tiny_config(data), run)
    return {"root": root, "data": data, "run": run, "events": events}


def read_predictions(folder: Path) -> list[dict]:
    with open(folder / "predictions.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_run_evaluates_its_best_model_on_its_validation_images(trained):
    run = trained["run"]
    folder = run / "evaluation"
    assert {p.name for p in folder.iterdir()} == {"evaluation.json", "predictions.csv",
                                                  "confusion_matrix.png", "report.md"}
    document = json.loads((folder / "evaluation.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    report = json.loads((run / "data_report.json").read_text())
    assert document["images"] == sum(report["validation_counts"].values()) == summary["validation_images"]
    assert document["classes"] == (run / "labels.txt").read_text().split()
    assert document["split"] == "validation" and document["tta"] is False
    assert summary["evaluation"]["validation"]["accuracy"] == document["accuracy"]
    finished = [e for e in trained["events"] if type(e).__name__ == "Finished"][-1]
    assert finished.evaluation["validation"]["accuracy"] == document["accuracy"]
    assert np.sum(document["confusion_matrix"]) == document["images"]
    assert "Per class" in (folder / "report.md").read_text()


def test_the_figures_are_scikit_learns_on_what_predict_gives(trained):
    run = trained["run"]
    document = json.loads((run / "evaluation" / "evaluation.json").read_text())
    rows = read_predictions(run / "evaluation")
    classes = document["classes"]
    paths = [row["path"] for row in rows]

    predicted = api.predict(run, paths, top_k=len(classes))

    true = [classes.index(Path(p).parent.name) for p in paths]
    top = [classes.index(item["top"][0]["class"]) for item in predicted]
    assert [row["predicted"] for row in rows] == [classes[i] for i in top]
    assert document["confusion_matrix"] == confusion_matrix(true, top, labels=[0, 1, 2]).tolist()
    assert document["accuracy"] == pytest.approx(np.mean(np.array(true) == np.array(top)))
    precision, recall, f1, support = precision_recall_fscore_support(true, top, labels=[0, 1, 2],
                                                                     zero_division=0)
    for i, name in enumerate(classes):
        assert document["per_class"][name] == pytest.approx(
            {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]})
    probs = np.array([[next(t["probability"] for t in item["top"] if t["class"] == c) for c in classes]
                      for item in predicted])
    probs /= probs.sum(axis=1, keepdims=True)  # float32 rows, summed in float64
    assert document["loss"] == pytest.approx(log_loss(true, probs, labels=[0, 1, 2]), rel=1e-4)
    # predictions.csv holds every image with one probability per class, summing to 1
    csv_probs = np.array([[float(row[c]) for c in classes] for row in rows])
    np.testing.assert_allclose(csv_probs, probs, atol=1e-5)
    losses = [entry["loss"] for entry in document["top_losses"]]
    assert losses == sorted(losses, reverse=True) and len(losses) == document["images"]


def test_mislabelled_images_come_out_among_the_highest_losses(trained, tmp_path):
    folder = tmp_path / "relabelled"
    shutil.copytree(trained["data"], folder)
    classes = sorted(p.name for p in folder.iterdir())
    rng = np.random.default_rng(1)
    moved = []
    for i in range(6):  # 6 images put into another class's folder
        source_class = classes[i % 3]
        files = sorted((folder / source_class).iterdir())
        image = files[rng.integers(len(files))]
        while image.name in {m.name for m in moved}:
            image = files[rng.integers(len(files))]
        target = folder / classes[(i + 1) % 3] / image.name
        shutil.move(image, target)
        moved.append(target)

    document = api.evaluate(trained["run"], data_dir=folder, out=tmp_path / "out")

    assert document["split"] == "folder" and document["images"] == 90
    highest = {Path(entry["path"]).resolve() for entry in document["top_losses"][:12]}
    found = sum(path.resolve() in highest for path in moved)
    assert found >= 4, f"only {found} of 6 mislabelled images among the 12 highest losses"


def test_tta_averages_the_probabilities_over_twelve_views():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 16, 16, 3)).astype(np.float32)
    views = tta_views(images)
    assert views.shape == (3 * VIEWS, 16, 16, 3)
    np.testing.assert_allclose(views[0], images[0], atol=1e-4)               # the image itself
    np.testing.assert_allclose(views[6], images[0][:, ::-1], atol=1e-4)      # and its mirror
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(
        keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))))
    plain = model.predict_on_batch(images)
    averaged = probabilities(model, images, tta=True)
    expected = model.predict_on_batch(views).reshape(3, VIEWS, 4).mean(axis=1)
    np.testing.assert_allclose(averaged, expected, atol=1e-6)
    assert not np.allclose(averaged, plain, atol=1e-4)  # the views really differ
    np.testing.assert_allclose(probabilities(model, images), plain, atol=1e-7)


def test_evaluate_and_predict_with_tta_report_both(trained, tmp_path):
    document = api.evaluate(trained["run"], tta=True, out=tmp_path / "tta")
    assert document["tta"] is True
    plain = json.loads((trained["run"] / "evaluation" / "evaluation.json").read_text())
    assert document["accuracy_without_tta"] == pytest.approx(plain["accuracy"])
    assert "without test-time augmentation" in (tmp_path / "tta" / "report.md").read_text()
    path = read_predictions(trained["run"] / "evaluation")[0]["path"]
    with_tta = api.predict(trained["run"], [path], top_k=3, tta=True)[0]["top"]
    row = next(r for r in read_predictions(tmp_path / "tta") if r["path"] == path)
    for entry in with_tta:
        assert float(row[entry["class"]]) == pytest.approx(entry["probability"], abs=1e-5)


def test_an_ensemble_averages_its_members_probabilities(trained, tmp_path):
    second = tmp_path / "second"
    train(tiny_config(trained["data"], **{"training.seed": 7, "training.head_epochs": 2}), second)
    first = api.evaluate(trained["run"], out=tmp_path / "a")
    alone = api.evaluate(second, out=tmp_path / "b")

    document = api.evaluate([trained["run"], second], ensemble=True, out=tmp_path / "both")

    classes = document["classes"]
    rows = {name: {r["path"]: np.array([float(r[c]) for c in classes]) for r in read_predictions(tmp_path / name)}
            for name in ("a", "b", "both")}
    for path, averaged in rows["both"].items():
        np.testing.assert_allclose(averaged, (rows["a"][path] + rows["b"][path]) / 2, atol=1e-5)
    ensemble = document["ensemble"]
    assert [m["accuracy"] for m in ensemble["members"]] == pytest.approx([first["accuracy"], alone["accuracy"]])
    assert ensemble["gain"] == pytest.approx(document["accuracy"] - max(first["accuracy"], alone["accuracy"]))
    assert document["warnings"] == []  # the same data settings: the same validation images


def test_an_ensemble_of_runs_split_differently_says_its_figures_are_optimistic(trained, tmp_path):
    other = tmp_path / "other-split"
    train(tiny_config(trained["data"], **{"data.seed": 99, "training.head_epochs": 1}), other)

    document = api.evaluate([trained["run"], other], ensemble=True, out=tmp_path / "both")

    (warning,) = document["warnings"]
    assert "other-split split the data differently" in warning and "optimistic" in warning
    assert "optimistic" in (tmp_path / "both" / "report.md").read_text()


def test_several_runs_need_ensemble_and_the_same_classes(trained, tmp_path):
    with pytest.raises(EvaluationError, match="--ensemble"):
        api.evaluate([trained["run"], trained["run"]])
    other = make_tiny_dataset(tmp_path, classes=2, per_class=10, size=32, name="two")
    two = tmp_path / "two-run"
    train(tiny_config(other, **{"training.head_epochs": 1}), two)
    with pytest.raises(EvaluationError, match="other classes"):
        api.evaluate([trained["run"], two], ensemble=True, out=tmp_path / "x")


def test_a_folder_with_a_class_the_model_does_not_know_is_refused(trained, tmp_path):
    folder = make_tiny_dataset(tmp_path, classes=4, per_class=3, size=32, name="four")
    with pytest.raises(EvaluationError, match="does not know: star"):
        api.evaluate(trained["run"], data_dir=folder)
    assert not (trained["run"] / "evaluation-four").exists()


def test_an_out_folder_with_other_files_is_never_overwritten(trained, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(EvaluationError, match="not an earlier evaluation"):
        api.evaluate(trained["run"], out=out)
    assert (out / "notes.txt").read_text() == "keep me"


def test_the_test_split_needs_a_run_with_a_test_set(trained):
    with pytest.raises(EvaluationError, match="no held-out test images"):
        api.evaluate(trained["run"], split="test")


def test_the_command_line_prints_the_figures_and_the_folder(trained, tmp_path, capsys):
    code = main(["evaluate", str(trained["run"]), "--out", str(tmp_path / "cli"), "--top-k", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == str(tmp_path / "cli")
    assert "accuracy" in captured.err and "top-2" in captured.err
    document = json.loads((tmp_path / "cli" / "evaluation.json").read_text())
    assert document["top_k_accuracy"]["k"] == 2
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2


def test_snapshots_at_each_cycle_end_and_their_ensemble(trained, tmp_path):
    run = tmp_path / "sgdr"
    events = train(tiny_config(trained["data"], **{
        "training.head_epochs": 4, "schedule.name": "cosine_restarts", "schedule.restart_epochs": 2.0,
        "schedule.restart_t_mul": 1.0, "schedule.save_snapshots": True}), run)
    snapshots = sorted(p.name for p in (run / "snapshots").iterdir())
    assert snapshots == ["snapshot-epoch-0002.keras", "snapshot-epoch-0004.keras"]  # the cycles' ends
    assert sum("snapshot snapshots/snapshot-epoch" in getattr(e, "message", "") for e in events) == 2

    document = api.evaluate(run, snapshots=True)

    folder = run / "evaluation-snapshots"
    assert document["folder"] == str(folder)
    rows = read_predictions(folder)
    classes = document["classes"]
    from models.safe_load import load_model_safely
    from training.data.images import load_image

    images = np.stack([load_image(row["path"], 32) for row in rows]).astype(np.float32)
    each = [load_model_safely(run / "snapshots" / name).predict(images, verbose=0) for name in snapshots]
    averaged = np.array([[float(row[c]) for c in classes] for row in rows])
    np.testing.assert_allclose(averaged, np.mean(each, axis=0), atol=1e-5)
    assert len(document["ensemble"]["members"]) == 2


def test_snapshots_need_at_least_two(trained):
    with pytest.raises(EvaluationError, match="cosine_restarts"):
        api.evaluate(trained["run"], snapshots=True)


def test_predict_on_the_command_line_takes_tta(trained, capsys):
    path = read_predictions(trained["run"] / "evaluation")[0]["path"]
    assert main(["predict", str(trained["run"]), path, "--tta", "--json", "--top", "3"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = api.predict(trained["run"], [path], top_k=3, tta=True)[0]["top"]
    plain = api.predict(trained["run"], [path], top_k=3)[0]["top"]
    assert [t["class"] for t in printed["top"]] == [t["class"] for t in expected]
    assert [t["probability"] for t in printed["top"]] == pytest.approx([t["probability"] for t in expected])
    assert [t["probability"] for t in plain] != pytest.approx([t["probability"] for t in expected])


def test_the_engine_process_reports_progress_before_its_answer(trained, tmp_path):
    from training.service.client import EngineHelper

    run = tmp_path / "copy"
    shutil.copytree(trained["run"], run)
    shutil.rmtree(run / "evaluation")
    seen = []
    helper = EngineHelper()
    try:
        document = helper.call("evaluate", on_progress=lambda done, total: seen.append((done, total)),
                               run_dir=str(run))
    finally:
        helper.close()
    assert document["folder"] == str(run / "evaluation") and (run / "evaluation" / "report.md").is_file()
    assert seen and seen[-1] == (document["images"], document["images"])
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)

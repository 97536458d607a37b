"""Export: every format and quantization written, reloaded by its own runtime and compared with
the Keras model; a float export that disagrees fails and leaves nothing; each folder's
predict.py runs with that runtime alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from main import main
from tests.helpers import make_tiny_dataset
from training import api
from training.config import Config
from training.export import FORMATS, ExportError, export_run
from training.export import run as export_module
from training.export.source import load_validation_images, open_run
from training.rundir import RunDirError
from training.rundir.reading import read_data_report

ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("training", "models", "gui", "main", "tests")
CASES = [("keras", "none"), ("saved_model", "none"), ("tflite", "none"), ("tflite", "float16"),
         ("tflite", "int8"), ("onnx", "none")]
TOLERANCE = {"none": 1e-4, "float16": 1e-2}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A SmallCNN trained for one epoch on 32 px shapes: 3 classes, 3 validation images each."""
    root = tmp_path_factory.mktemp("export")
    data = make_tiny_dataset(root, size=32, per_class=12)
    config = Config().with_overrides({
        "data.dir": str(data), "data.image_size": 32, "data.batch_size": 16, "data.validation_split": 0.25,
        "model.backbone": "SmallCNN", "model.weights": "none", "training.head_epochs": 0,
        "training.fine_tune_epochs": 1, "training.fine_tune_layers": "all"})
    run_dir = root / "run"
    result = api.run_training(config, run_dir=run_dir, on_event=lambda event: None)
    assert result.stop_reason == "completed", result
    return run_dir


@pytest.fixture(scope="module")
def keras_reference(tiny_run):
    """The run's Keras model on its validation images, as the project's own predict scores them."""
    source = open_run(tiny_run)
    images, labels, _ = load_validation_images(source)
    probabilities = np.asarray(source.model.predict_on_batch(images.astype(np.float32)))
    return source.validation_files, images, labels, probabilities, source.classes


def runtime_probabilities(folder: Path, fmt: str, images: np.ndarray, scratch: Path) -> np.ndarray:
    """The export scored with its runtime, written here independently of the exporter."""
    batch_of_one = [image[np.newaxis].astype(np.float32) for image in images]
    if fmt == "saved_model":
        import tensorflow as tf

        serve = tf.saved_model.load(str(folder / "saved_model")).signatures["serving_default"]
        name = next(iter(serve.structured_input_signature[1]))
        return np.concatenate([next(iter(serve(**{name: tf.constant(x)}).values())).numpy()
                               for x in batch_of_one])
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(folder / "model.tflite"))
        interpreter.allocate_tensors()
        rows = []
        for x in batch_of_one:
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
            interpreter.invoke()
            rows.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
        return np.concatenate(rows)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        return np.concatenate([session.run(None, {session.get_inputs()[0].name: x})[0] for x in batch_of_one])
    # keras: plain Keras in a separate Python with no code of this app importable.
    np.save(scratch / "images.npy", images)
    script = ("import sys, numpy as np\n"
              f"for name in {APP_PACKAGES!r}: sys.modules[name] = None\n"
              "import keras\n"
              "model = keras.saving.load_model(sys.argv[1], compile=False)\n"
              "np.save(sys.argv[3], np.asarray(model.predict_on_batch(np.load(sys.argv[2]).astype('float32'))))\n")
    out = scratch / "keras_scores.npy"
    done = subprocess.run([sys.executable, "-I", "-c", script, str(folder / "model.keras"),
                           str(scratch / "images.npy"), str(out)], cwd=scratch,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(out)


def run_predict_script(folder: Path, fmt: str, images: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python predict.py IMAGE...`` in a Python where this app cannot be imported, and for tflite
    and onnx neither TensorFlow nor Keras: the format's runtime, numpy and Pillow only."""
    blocked = APP_PACKAGES + (("tensorflow", "keras") if fmt in ("tflite", "onnx") else ())
    wrapper = ("import runpy, sys\n"
               f"for name in {blocked!r}: sys.modules[name] = None\n"
               "sys.argv = sys.argv[1:]\n"
               "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    return subprocess.run([sys.executable, "-I", "-c", wrapper, str(folder / "predict.py"), *images],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("fmt", "quantize"), CASES, ids=[f"{f}-{q}" for f, q in CASES])
def test_each_format_is_verified_self_contained_and_agrees_with_keras(tiny_run, keras_reference, fmt,
                                                                        quantize, tmp_path):
    files, images, labels, reference, classes = keras_reference
    result = export_run(tiny_run, fmt, quantize=quantize)

    folder = tiny_run / "export" / (fmt if quantize == "none" else f"{fmt}-{quantize}")
    assert result.passed, result.message
    assert Path(result.folder) == folder
    names = {path.name for path in folder.iterdir()}
    assert names == {FORMATS[fmt].model_file, "labels.txt", "labels.json", "model_card.json", "model_card.md",
                     "predict.py", "verification.json"}
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "staging folders left"
    assert (folder / "labels.txt").read_text(encoding="utf-8").split() == classes

    # Reloaded here with the format's own runtime: the same answers as the Keras model.
    scores = runtime_probabilities(folder, fmt, images, tmp_path)
    assert scores.shape == reference.shape
    difference = float(np.abs(scores - reference).max())
    if quantize in TOLERANCE:
        assert difference <= TOLERANCE[quantize]
        assert np.array_equal(scores.argmax(1), reference.argmax(1))
    else:  # int8: quantized, close but not equal
        assert 0 < difference < 0.25

    # The verification figures are the ones measured on these images, in both files.
    verification = json.loads((folder / "verification.json").read_text())
    card = json.loads((folder / "model_card.json").read_text())
    assert verification == card["verification"]
    assert verification["passed"] and verification["images"] == len(images)
    assert verification["max_probability_difference"] == pytest.approx(difference, abs=2e-6)
    assert verification["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == labels))
    assert verification["keras_accuracy"] == pytest.approx(np.mean(reference.argmax(1) == labels))
    assert verification["ms_per_image"] > 0
    assert verification["file_bytes"] == result.verification["file_bytes"] > 1000
    assert card["classes"] == classes and card["format"] == fmt and card["quantization"] == quantize
    assert card["input"]["shape"] == [None, 32, 32, 3] and card["input"]["value_range"] == [0, 255]
    assert card["input"]["layout"] == "NHWC" and card["input"]["color"] == "RGB"
    assert card["config"]["model"]["backbone"] == "SmallCNN"
    assert card["run"]["best_epoch"] == 1 and "val_accuracy" in card["run"]["best_metrics"]
    assert card["versions"]["keras"] and card["exported_at"]
    assert "x / 127.5 - 1" in card["preprocessing_inside"]
    markdown = (folder / "model_card.md").read_text()
    assert "0-255" in markdown and "passed" in markdown and ", ".join(classes) in markdown
    if quantize == "int8":
        assert card["calibration"]["images"] > 0 and "Accuracy drop from int8" in markdown

    # predict.py, with only the runtime: the classes this very file gives.
    picked = [0, len(files) // 2, len(files) - 1]
    done = run_predict_script(folder, fmt, [files[i] for i in picked], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert [line.rsplit(" ", 1)[0] for line in lines] == [f"{files[i]}: " + classes[int(scores[i].argmax())]
                                                         for i in picked]
    assert [float(line.rsplit(" ", 1)[1].rstrip("%")) for line in lines] == pytest.approx(
        [100 * float(scores[i].max()) for i in picked], abs=0.051)


def _tampered(real_write, bias_change: float):
    """A writer that exports a copy of the model with one output bias changed: the file no
    longer holds the Keras model's weights."""
    def write(model, folder, spec, quantize, calibration=None):
        import keras

        copy = keras.models.clone_model(model)
        weights = [w.copy() for w in model.get_weights()]
        weights[-1][0] += bias_change  # the "predictions" layer's bias
        copy.set_weights(weights)
        return real_write(copy, folder, spec, quantize, calibration)
    return write


@pytest.mark.parametrize(("fmt", "quantize"), [("onnx", "none"), ("tflite", "float16"), ("keras", "none")])
def test_a_tampered_float_export_fails_and_leaves_nothing_finished(tiny_run, monkeypatch, capsys, fmt,
                                                                     quantize, tmp_path):
    target = tmp_path / "out"
    monkeypatch.setattr(export_module, "write_model", _tampered(export_module.write_model, 2.0))
    code = main(["export", str(tiny_run), "--format", fmt, "--quantize", quantize, "--out", str(target)])
    err = capsys.readouterr().err
    assert code == 1
    assert "does not match the Keras model" in err and "more than the tolerance" in err
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == [], "a failed export must leave neither the folder nor its staging"


def test_a_failed_export_keeps_the_earlier_one_and_a_passing_one_replaces_it(tiny_run, monkeypatch, tmp_path):
    target = tmp_path / "onnx"
    assert export_run(tiny_run, "onnx", out=target).passed
    before = (target / "model.onnx").read_bytes()
    (target / "stale.txt").write_text("from the earlier export")

    with monkeypatch.context() as patch:
        patch.setattr(export_module, "write_model", _tampered(export_module.write_model, 0.5))
        failed = export_run(tiny_run, "onnx", out=target)
    assert not failed.passed and failed.verification["max_probability_difference"] > 1e-4
    assert (target / "model.onnx").read_bytes() == before and (target / "stale.txt").exists()

    assert export_run(tiny_run, "onnx", out=target).passed
    assert not (target / "stale.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["onnx"]


def test_a_model_with_custom_layers_exports_but_plain_keras_cannot_load_it(tiny_run, tmp_path):
    """A run saved by an earlier version of the app (its custom Preprocess layer): every format
    that traces the model works, and the keras export fails clearly instead of shipping a file
    plain Keras cannot open."""
    preprocess = pytest.importorskip("models.preprocess")
    if not hasattr(preprocess, "Preprocess"):
        pytest.skip("this version of the app no longer has the custom Preprocess layer")
    import keras

    from models.safe_load import load_model_safely

    legacy_run = tmp_path / "legacy"
    shutil.copytree(tiny_run, legacy_run, ignore=shutil.ignore_patterns("export"))
    trained = load_model_safely(legacy_run / "best.keras")
    inputs = keras.Input((32, 32, 3), name="image")
    legacy = keras.Model(inputs, trained(preprocess.Preprocess("none", name="preprocess")(inputs)))
    (legacy_run / "best.keras").unlink()
    legacy.save(legacy_run / "best.keras")

    assert export_run(legacy_run, "onnx").passed
    result = export_run(legacy_run, "keras")
    assert not result.passed
    assert "Plain Keras" in result.message and "Could not locate class 'Preprocess'" in result.message
    assert not (legacy_run / "export" / "keras").exists()


def test_images_changed_since_training_are_refused_unless_their_folder_is_given(tiny_run, tmp_path):
    moved = tmp_path / "moved"
    config = json.loads((tiny_run / "config.json").read_text())
    shutil.copytree(config["data"]["dir"], moved)
    run_copy = tmp_path / "run"
    shutil.copytree(tiny_run, run_copy, ignore=shutil.ignore_patterns("export"))
    config["data"]["dir"] = str(tmp_path / "gone")
    (run_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="--data"):
        export_run(run_copy, "tflite")

    first = sorted((moved / "circle").iterdir())[0]
    shutil.copy(first, first.with_name("extra.png"))  # one more image: another split
    with pytest.raises(ExportError, match="not the ones the run used"):
        export_run(run_copy, "tflite", data_dir=moved)
    first.with_name("extra.png").unlink()
    result = api.export_run(run_copy, "tflite", data_dir=moved)
    assert result.passed and Path(result.folder) == run_copy / "export" / "tflite"


def test_the_data_report_reader_names_a_damaged_key(tmp_path):
    (tmp_path / "data_report.json").write_text(json.dumps({"classes": ["a", "b"], "train_counts": {"a": -1}}))
    with pytest.raises(RunDirError, match="`train_counts` must map class names to whole numbers"):
        read_data_report(tmp_path)
    (tmp_path / "data_report.json").write_text("[]")
    with pytest.raises(RunDirError, match="not an object"):
        read_data_report(tmp_path)
    (tmp_path / "data_report.json").unlink()
    assert read_data_report(tmp_path) is None


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})


def test_cli_exit_codes(tiny_run, tmp_path):
    done = run_cli("export", str(tiny_run), "--format", "tflite", "--quantize", "int8", "--out",
                   str(tmp_path / "int8"), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["passed"] and result["folder"] == str(tmp_path / "int8")
    assert result["verification"]["tolerance"] is None and "accuracy_drop" in result["verification"]

    for args, expected in ((("--format", "onnx"), "not a finished run folder"),
                           (("--format", "onnx", "--quantize", "int8"), "tflite only")):
        run_dir = tmp_path if expected.startswith("not") else tiny_run
        done = run_cli("export", str(run_dir), *args)
        assert done.returncode == 2, done.stderr[-2000:]
        assert expected in done.stderr and "Traceback" not in done.stderr
    done = run_cli("export", str(tiny_run), "--format", "pickle")
    assert done.returncode == 2 and "invalid choice" in done.stderr

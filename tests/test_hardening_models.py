"""Attacks on model files, run folders and `predict` inputs (issue 8): each is refused with a
clear message, before Keras touches a hostile file, and nothing hangs or raises a traceback.

The hostile archives are built here cheaply: zeros compress ~1000x under DEFLATE, so a
64 MB member costs ~64 kB of disk and a fraction of a second.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from models.classifier import build_classifier
from models.safe_load import MAX_MEMBERS, UnsafeModelError, check_model_file, load_model_safely
from tests.helpers import jpeg_bytes
from training.config import Config
from training.inference.predict import PredictError, expand_inputs, load_run, predict
from training.rundir.labels import read_labels, write_labels

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["circle", "square", "triangle"]
MB = 1024**2


def run_cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})


# -- fixtures and archive tools -----------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A real classifier of this app (SmallCNN, 32 px, 3 classes) saved as .keras."""
    config = Config().with_overrides({"model.backbone": "SmallCNN", "model.weights": "none"})
    model = build_classifier(config.model, config.regularization, image_size=32, num_classes=3,
                             seed=0).model
    path = tmp_path_factory.mktemp("model") / "best.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def legacy_model(tmp_path_factory) -> Path:
    """A classifier saved before issue 11: it holds this app's registered Preprocess layer."""
    from tests.test_safe_load import legacy_classifier

    path = tmp_path_factory.mktemp("legacy") / "best.keras"
    legacy_classifier().save(path)
    return path


@pytest.fixture
def run_dir(tmp_path, saved_model) -> Path:
    """A finished run folder: best.keras, config.json (32 px), labels.json and labels.txt."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(saved_model, run / "best.keras")
    Config().with_overrides({"model.backbone": "SmallCNN", "model.weights": "none",
                             "data.image_size": 32}).save(run / "config.json")
    write_labels(run, CLASSES)
    return run


@pytest.fixture
def keras_must_not_load(monkeypatch):
    """Fails the test if Keras is asked to load anything: refusal must come first."""
    def fail(*args, **kwargs):
        pytest.fail("keras.saving.load_model was called on a file that should have been refused")
    monkeypatch.setattr(keras.saving, "load_model", fail)


def rebuild(source: Path, target: Path, *, add: list[tuple[str, bytes]] = (),
            replace: dict[str, bytes] | None = None, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A copy of the .keras archive ``source`` with members replaced or added."""
    replace = replace or {}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression) as new:
        for info in old.infolist():
            new.writestr(info.filename, replace.get(info.filename, old.read(info)))
        for name, data in add:
            new.writestr(name, data)
    return target


def model_config(saved_model: Path) -> dict:
    with zipfile.ZipFile(saved_model) as archive:
        return json.loads(archive.read("config.json"))


def data_offset(path: Path, member: str) -> tuple[int, int]:
    """Where the stored bytes of ``member`` start in the file, and how many there are."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    with open(path, "rb") as handle:
        handle.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", handle.read(4))
    return info.header_offset + 30 + name_length + extra_length, info.compress_size


def flip_byte(path: Path, member: str) -> None:
    start, length = data_offset(path, member)
    with open(path, "r+b") as handle:
        handle.seek(start + length // 2)
        byte = handle.read(1)
        handle.seek(start + length // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))


def declare_size(path: Path, member: str, size: int) -> None:
    """Rewrites the uncompressed size ``member`` declares, in its local and central headers."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
        directory = archive.start_dir
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, info.header_offset + 22, size)
    position = directory
    while data[position:position + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        if data[position + 46:position + 46 + name_length].decode() == member:
            struct.pack_into("<I", data, position + 24, size)
        position += 46 + name_length + extra_length + comment_length
    path.write_bytes(bytes(data))


def write_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(32))
    return path


# -- 1. archive bounds (item 3) -----------------------------------------------------------------
def test_a_model_of_this_app_still_loads_and_predicts(run_dir, tmp_path):
    image = write_image(tmp_path / "one.jpg")
    [result] = predict(run_dir, [image], top_k=3)
    assert sorted(p["class"] for p in result["top"]) == sorted(CLASSES)


def test_zero_filled_assets_are_refused_before_keras_unpacks_them(saved_model, tmp_path,
                                                                  keras_must_not_load):
    # Keras extracts every member to a temporary folder when there are more than three.
    bomb = rebuild(saved_model, tmp_path / "assets.keras", add=[("assets/pad.bin", bytes(96 * MB))])
    assert bomb.stat().st_size < 2 * MB
    with pytest.raises(UnsafeModelError, match="decompression bomb"):
        load_model_safely(bomb)


def test_zero_padded_weights_are_refused_before_keras_reads_them(saved_model, tmp_path,
                                                                 keras_must_not_load):
    with zipfile.ZipFile(saved_model) as archive:
        weights = archive.read("model.weights.h5")
    bomb = rebuild(saved_model, tmp_path / "padded.keras",
                   replace={"model.weights.h5": weights + bytes(96 * MB)})
    with pytest.raises(UnsafeModelError, match="'model.weights.h5' would unpack to .* decompression bomb"):
        load_model_safely(bomb)


def test_many_members_each_under_the_member_floor_are_refused_by_the_total(saved_model, tmp_path,
                                                                           keras_must_not_load):
    members = [(f"assets/pad{i}.bin", bytes(3 * MB)) for i in range(40)]
    bomb = rebuild(saved_model, tmp_path / "spread.keras", add=members)
    with pytest.raises(UnsafeModelError, match=r"would unpack to .* MB from a .* file \(over 100x\)"):
        load_model_safely(bomb)


def test_too_many_members_are_refused(saved_model, tmp_path, keras_must_not_load):
    members = [(f"assets/{i}.txt", b"x") for i in range(MAX_MEMBERS + 1)]
    crowded = rebuild(saved_model, tmp_path / "crowded.keras", add=members)
    with pytest.raises(UnsafeModelError, match=f"the limit is {MAX_MEMBERS}"):
        load_model_safely(crowded)


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "assets/../../evil", "assets//x",
                                  "C:/evil", "assets\\..\\evil", "assets/./x", "a\x01b"])
def test_members_with_absurd_names_are_refused(saved_model, tmp_path, keras_must_not_load, name):
    crafted = rebuild(saved_model, tmp_path / "names.keras", add=[(name, b"x")])
    with pytest.raises(UnsafeModelError, match="holds a member named"):
        load_model_safely(crafted)


def test_a_member_twice_is_refused(saved_model, tmp_path, keras_must_not_load):
    with pytest.warns(UserWarning, match="Duplicate name"):
        crafted = rebuild(saved_model, tmp_path / "twice.keras",
                          add=[("config.json", json.dumps({"class_name": "Sequential"}).encode())])
    with pytest.raises(UnsafeModelError, match="'config.json' twice"):
        load_model_safely(crafted)


def test_compressions_keras_does_not_write_are_refused(saved_model, tmp_path, keras_must_not_load):
    crafted = rebuild(saved_model, tmp_path / "bz2.keras", compression=zipfile.ZIP_BZIP2)
    with pytest.raises(UnsafeModelError, match="compression Keras does not write"):
        load_model_safely(crafted)


@pytest.mark.parametrize("declared", ["smaller", "larger"])
def test_a_member_whose_stream_does_not_match_its_declared_size_is_refused(
        saved_model, tmp_path, keras_must_not_load, declared):
    # "smaller": 8 MB of zeros declared as 1 kB, so the ratio check sees nothing wrong;
    # zipfile stops at the declared size, and the lie must surface as damage before Keras
    # extracts anything. "larger": 64 kB of noise declared 1 kB longer than it is.
    if declared == "smaller":
        data, size = bytes(8 * MB), 1024
    else:
        data = np.random.default_rng(0).bytes(64 * 1024)
        size = len(data) + 1024
    crafted = rebuild(saved_model, tmp_path / "lies.keras", add=[("assets/pad.bin", data)])
    declare_size(crafted, "assets/pad.bin", size)
    with pytest.raises(UnsafeModelError, match="is damaged: its member 'assets/pad.bin'"):
        load_model_safely(crafted)


# -- 2. registered_name (item 4) ----------------------------------------------------------------
def crafted_preprocess(saved_model: Path, tmp_path: Path, **changes) -> Path:
    """The saved classifier with its Preprocess layer's class entry changed."""
    config = model_config(saved_model)
    entries = [config]
    while entries:
        node = entries.pop()
        if isinstance(node, dict):
            if node.get("registered_name") == "finetune_studio>Preprocess":
                node.update(changes)
            entries += node.values()
        elif isinstance(node, list):
            entries += node
    return rebuild(saved_model, tmp_path / "crafted.keras",
                   replace={"config.json": json.dumps(config).encode()})


@pytest.mark.parametrize("changes, message", [
    ({"module": "os"}, "from module 'os'"),
    ({"module": "subprocess", "class_name": "Popen"}, "from module 'subprocess'"),
    ({"registered_name": "finetune_studio>Popen", "class_name": "Popen"},
     "'finetune_studio>Popen', which is not on this app's allow-list"),
    ({"registered_name": "finetune_studio>Preprocess", "module": None}, "from module None"),
])
def test_an_app_registered_name_needs_the_app_class_and_its_module(legacy_model, tmp_path,
                                                                   keras_must_not_load, changes, message):
    crafted = crafted_preprocess(legacy_model, tmp_path, **changes)
    with pytest.raises(UnsafeModelError, match=message):
        load_model_safely(crafted)


@pytest.mark.parametrize("module", ["kerasevil", "keras_evil.layers", "os"])
def test_only_keras_itself_passes_as_a_keras_module(saved_model, tmp_path, keras_must_not_load, module):
    config = model_config(saved_model)
    config["config"]["layers"][-1]["module"] = module
    crafted = rebuild(saved_model, tmp_path / "module.keras",
                      replace={"config.json": json.dumps(config).encode()})
    with pytest.raises(UnsafeModelError, match=f"from module '{module}'"):
        load_model_safely(crafted)


# -- 3. image_size comes from the model (item 3) ------------------------------------------------
@pytest.mark.parametrize("image_size", [100000, 64, None, 0, -32, "32", True, 32.0, "missing"])
def test_config_image_size_must_agree_with_the_model(run_dir, image_size):
    config = json.loads((run_dir / "config.json").read_text())
    if image_size == "missing":
        del config["data"]["image_size"]
    else:
        config["data"]["image_size"] = image_size
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(PredictError, match=r"data.image_size.*The run folder is damaged"):
        load_run(run_dir)


def save_any_size_model(run_dir: Path) -> None:
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)).save(run_dir / "best.keras")


def test_a_model_of_any_input_size_runs_at_the_configured_size(run_dir, tmp_path):
    save_any_size_model(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["image_size"] = 40
    (run_dir / "config.json").write_text(json.dumps(config))
    _, classes, image_size = load_run(run_dir)
    assert (classes, image_size) == (CLASSES, 40)
    [result] = predict(run_dir, [write_image(tmp_path / "x.jpg")])
    assert len(result["top"]) == 3

    config["data"]["image_size"] = 100000
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(PredictError, match="from 1 to 1024. Received: data.image_size=100000"):
        load_run(run_dir)


def test_a_model_input_larger_than_any_this_app_trains_is_refused(run_dir):
    inputs = keras.Input((4096, 4096, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)).save(run_dir / "best.keras")
    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["image_size"] = 4096
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(PredictError, match="expects 4096 x 4096 px images"):
        load_run(run_dir)


# -- 4. labels (item 8) -------------------------------------------------------------------------
def test_class_names_with_line_breaks_round_trip_into_predict(run_dir, tmp_path):
    names = ["cat\u2028dog", "car\rbus", "plain"]
    write_labels(run_dir, names)
    assert read_labels(run_dir, expected=3) == names
    [result] = predict(run_dir, [write_image(tmp_path / "x.jpg")], top_k=3)
    assert sorted(p["class"] for p in result["top"]) == sorted(names)


@pytest.mark.parametrize("lines", ["a\nb\nc\nd\n", "a\nb\n"])
def test_an_old_labels_txt_that_does_not_match_the_outputs_is_refused(run_dir, lines):
    (run_dir / "labels.json").unlink()
    (run_dir / "labels.txt").write_text(lines, encoding="utf-8")
    count = lines.count("\n")
    with pytest.raises(PredictError, match=f"names {count} classes but the model has 3 outputs"):
        load_run(run_dir)


def test_an_old_labels_txt_that_matches_still_works(run_dir):
    (run_dir / "labels.json").unlink()
    assert load_run(run_dir)[1] == CLASSES


# -- 5. damaged run folders (item 13) -----------------------------------------------------------
def damage(run_dir: Path, how: str) -> None:
    labels_txt, config, model = run_dir / "labels.txt", run_dir / "config.json", run_dir / "best.keras"
    if how.startswith("labels.txt"):
        (run_dir / "labels.json").unlink()
    if how == "labels.txt empty":
        labels_txt.write_bytes(b"")
    elif how == "labels.txt not UTF-8":
        labels_txt.write_bytes(b"circle\nsqu\xffare\ntriangle\n")
    elif how == "labels.txt FIFO":
        labels_txt.unlink()
        os.mkfifo(labels_txt)
    elif how == "labels.json FIFO":
        (run_dir / "labels.json").unlink()
        os.mkfifo(run_dir / "labels.json")
    elif how == "config.json invalid":
        config.write_text('{"data": {"image_size": 32,}}')
    elif how == "config.json not UTF-8":
        config.write_bytes(b'{"data": {"image_size": 32, "dir": "\xff"}}')
    elif how == "config.json nested":
        config.write_text("[" * 100000 + "]" * 100000)
    elif how == "config.json a list":
        config.write_text("[1, 2]")
    elif how == "config.json FIFO":
        config.unlink()
        os.mkfifo(config)
    elif how == "best.keras bad CRC in weights":
        flip_byte(model, "model.weights.h5")
    elif how == "best.keras bad CRC in config":
        flip_byte(model, "config.json")
    elif how in ("best.keras nested config", "best.keras config 150 deep"):
        depth = 100000 if how == "best.keras nested config" else 150
        shutil.copy(rebuild(model, run_dir / "tmp.keras",
                            replace={"config.json": ("[" * depth + "]" * depth).encode()}), model)
        (run_dir / "tmp.keras").unlink()
    elif how == "best.keras FIFO":
        model.unlink()
        os.mkfifo(model)
    elif how == "best.keras folder":
        model.unlink()
        model.mkdir()
    else:
        raise AssertionError(how)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how, message", [
    ("labels.txt empty", "names 0 class"),
    ("labels.txt not UTF-8", "not UTF-8"),
    ("labels.txt FIFO", "is a named pipe, not a file"),
    ("labels.json FIFO", "is a named pipe, not a file"),
    ("config.json invalid", "not valid JSON"),
    ("config.json not UTF-8", "not UTF-8"),
    ("config.json nested", "nested too deeply"),
    ("config.json a list", "is not a run config"),
    ("config.json FIFO", "is a named pipe, not a file"),
    ("best.keras bad CRC in weights", "is damaged: its member 'model.weights.h5'"),
    ("best.keras bad CRC in config", "is damaged: its member 'config.json'"),
    ("best.keras nested config", "nested more than 100 levels"),
    ("best.keras config 150 deep", "nested more than 100 levels"),
    ("best.keras FIFO", "is a named pipe, not a model file"),
    ("best.keras folder", "is a folder, not a model file"),
])
def test_a_damaged_run_folder_gives_a_clear_error(run_dir, how, message):
    damage(run_dir, how)
    with pytest.raises(PredictError, match=message):
        load_run(run_dir)


@pytest.mark.timeout(30)
def test_check_model_file_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.keras"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeModelError, match="named pipe"):
        check_model_file(fifo)


@pytest.mark.timeout(120)
def test_cli_predict_with_a_damaged_model_exits_2_without_a_traceback(run_dir, tmp_path):
    damage(run_dir, "best.keras bad CRC in config")
    result = run_cli("predict", str(run_dir), str(write_image(tmp_path / "x.jpg")))
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "is damaged" in last
    assert "Traceback" not in result.stderr


# -- 6. predict inputs (items 11, 12, 13, 15) ---------------------------------------------------
@pytest.mark.timeout(30)
def test_a_fifo_or_device_given_to_predict_is_skipped_not_opened(run_dir, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    os.mkfifo(write_image(folder / "a.jpg").with_name("b.png"))
    image = write_image(tmp_path / "ok.jpg")
    results = {Path(r["path"]).name: r for r in predict(run_dir, [fifo, os.devnull, folder, image])}
    assert results["pipe.png"]["error"] == "not a regular file: it is a named pipe"
    assert results["null"]["error"] == "not a regular file: it is a device"
    assert results["b.png"]["error"] == "not a regular file: it is a named pipe"
    assert "top" in results["a.jpg"] and "top" in results["ok.jpg"]


def remove_tree(top: Path) -> None:
    """Removes a tree of any depth without recursion: shutil.rmtree (and so pytest's own
    clean-up of old temporary folders) fails with RecursionError at ~1000 levels."""
    stack = [top]
    while stack:
        subfolders = []
        with os.scandir(stack[-1]) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(entry.path)
                else:
                    os.unlink(entry.path)
        if subfolders:
            stack += subfolders
        else:
            os.rmdir(stack.pop())


@pytest.fixture
def deep_folder(tmp_path):
    """1,100 nested folders; removed afterwards, or every later pytest run would crash."""
    deep = tmp_path / "deep"
    try:
        folder = deep
        for _ in range(1101):  # os.makedirs itself recurses once a level
            folder.mkdir()
            folder = folder / "d"
        yield deep, folder.parent
    finally:
        if deep.exists():
            remove_tree(deep)


@pytest.mark.timeout(30)
def test_predict_walks_1100_nested_folders_without_recursion(deep_folder):
    deep, bottom_folder = deep_folder
    bottom = write_image(bottom_folder / "x.jpg")
    write_image(deep / ".hidden" / "y.jpg")
    (deep / "loop").symlink_to(deep)  # a link loop must not trap the walk
    assert expand_inputs([deep]) == [(bottom, "")]


@pytest.mark.parametrize("contents", [[], ["notes.txt"], [".hidden.jpg"]])
def test_predict_on_a_folder_without_images_is_an_error(run_dir, tmp_path, contents):
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in contents:
        (empty / name).write_bytes(jpeg_bytes(32))
    with pytest.raises(PredictError, match=f"no images found in {empty}: pass image files or folders "
                                           "holding .*.jpg.*.png"):
        predict(run_dir, [empty])


@pytest.mark.timeout(120)
def test_cli_predict_on_an_empty_folder_exits_2(run_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("predict", str(run_dir), str(tmp_path / "empty"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no images found in")
    assert "Traceback" not in result.stderr


def test_a_path_with_a_part_over_255_bytes_is_a_clear_error(run_dir):
    long_name = "a" * 5000
    with pytest.raises(PredictError, match="longer than 255 bytes"):
        predict(run_dir, [long_name])
    with pytest.raises(PredictError, match="longer than 255 bytes"):
        load_run(long_name)


"""Issue 8, the run folder: nothing is written through a link or into a folder that is not
new, one process per folder, a resume checks before it writes, a full disk or a damaged
checkpoint is a clear message, a killed save's leftovers are removed.

Training runs are tiny (SmallCNN, no pretrained weights, 32 px, 3 classes x 10 images);
most tests copy one run stopped after its first epoch.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import keras
import pytest

from tests.helpers import make_tiny_dataset
from training import rundir
from training.api import next_run_dir, resume_problem
from training.config import Config
from training.engine import callbacks
from training.engine import checkpoint as resume
from training.engine import run as engine
from training.engine.run import resume_training, run_training
from training.events import EpochEnd, Failed, Log
from training.rundir import (
    RunDirError,
    RunRecorder,
    check_resume,
    export_best_model,
    lock_run_dir,
    prepare_run_dir,
    read_events,
)

ROOT = Path(__file__).resolve().parent.parent


def tiny_config(data: Path, **overrides) -> Config:
    values = {"data.dir": str(data), "model.backbone": "SmallCNN", "model.weights": "none",
              "data.image_size": 32, "data.batch_size": 8, "training.head_epochs": 1,
              "training.fine_tune_epochs": 2, "training.fine_tune_layers": "all",
              "augmentation.rotation": 0.0, "augmentation.zoom": 0.0,
              "augmentation.translation": 0.0}
    values.update(overrides)
    return Config().with_overrides(values)


class Events(list):
    def of(self, kind):
        return [e for e in self if isinstance(e, kind)]

    def failure(self) -> Failed:
        failed = self.of(Failed)
        assert len(failed) == 1, self
        assert "Traceback" not in failed[0].message
        return failed[0]


def stop_after_epoch(stop: threading.Event, epoch: int):
    def on_event(event):
        if isinstance(event, EpochEnd) and event.epoch == epoch:
            stop.set()
    return on_event


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A run of 3 planned epochs, stopped after its first: resumable."""
    root = tmp_path_factory.mktemp("stopped")
    data = make_tiny_dataset(root, per_class=10, size=32)
    stop = threading.Event()
    result = run_training(tiny_config(data), run_dir=root / "run", on_event=stop_after_epoch(stop, 1),
                          stop=stop)
    assert result.stop_reason == "stopped" and result.best_epoch == 1, result.error
    return root / "run"


def copy_run(source: Path, tmp_path: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(source, tmp_path / name, symlinks=True))


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time (links are not followed)."""
    result = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            result[str(path.relative_to(folder))] = (path.read_bytes(), path.stat().st_mtime_ns)
    return result


def resume_refused(run_dir: Path) -> Failed:
    events = Events()
    result = resume_training(run_dir, on_event=events.append)
    assert result.stop_reason == "failed" and result.error_type == "RunDirError", result
    return events.failure()


# -- item 2: writes never follow a symbolic link ----------------------------------------------
@pytest.mark.parametrize("name", ["events.jsonl", "metrics.csv"])
@pytest.mark.parametrize("dangling", [False, True], ids=["victim", "dangling"])
def test_resume_never_appends_through_a_linked_run_file(stopped_run, tmp_path, name, dangling):
    run_dir = copy_run(stopped_run, tmp_path)
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_bytes(b"the user's own file\n")
    (run_dir / name).unlink()
    (run_dir / name).symlink_to(victim)
    before = snapshot(run_dir)

    failed = resume_refused(run_dir)
    assert name in failed.message and "symbolic link" in failed.message
    if dangling:
        assert not victim.exists()
    else:
        assert victim.read_bytes() == b"the user's own file\n"
    assert snapshot(run_dir) == before


def test_the_recorder_opens_without_following_links(tmp_path):
    # The root of the fix, below the resume's up-front check: O_NOFOLLOW on every append.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me\n")
    (run_dir / "metrics.csv").symlink_to(victim)
    with pytest.raises(RunDirError, match="metrics.csv is a symbolic link"):
        RunRecorder(run_dir)
    assert victim.read_bytes() == b"keep me\n"


def test_a_replaced_file_replaces_the_link_not_its_target(tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    (tmp_path / "summary.json").symlink_to(victim)
    rundir.write_json_atomic(tmp_path / "summary.json", {"stop_reason": "completed"})
    assert victim.read_text() == "{}"
    assert not (tmp_path / "summary.json").is_symlink()
    assert json.loads((tmp_path / "summary.json").read_text()) == {"stop_reason": "completed"}


def test_a_linked_checkpoint_folder_is_refused(stopped_run, tmp_path):
    run_dir = copy_run(stopped_run, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run_dir / "checkpoint", elsewhere)
    (run_dir / "checkpoint").symlink_to(elsewhere)
    before = snapshot(elsewhere)
    failed = resume_refused(run_dir)
    assert "checkpoint is a symbolic link" in failed.message
    assert snapshot(elsewhere) == before
    with pytest.raises(RunDirError, match="symbolic link"):
        rundir.checkpoint_folder(run_dir)


# -- item 5: a new run only in a new or empty folder -------------------------------------------
def test_a_new_run_never_writes_into_a_folder_with_files(tmp_path):
    data = make_tiny_dataset(tmp_path, per_class=10, size=32)
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.json").write_text('{"my": "settings"}')
    (home / "labels.txt").write_text("my labels\n")
    before = snapshot(home)
    events = Events()
    result = run_training(tiny_config(data), run_dir=home, on_event=events.append)
    assert result.stop_reason == "failed" and result.error_type == "RunDirError"
    assert "not empty" in events.failure().message and "new folder" in events.failure().message
    assert snapshot(home) == before and sorted(os.listdir(home)) == ["config.json", "labels.txt"]

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.md").write_text("mine")
    events = Events()
    run_training(tiny_config(data), run_dir=other, on_event=events.append)
    assert "is not empty" in events.failure().message and "choose a new folder" in events.failure().message
    assert os.listdir(other) == ["notes.md"]


def test_out_naming_a_file_is_a_clear_error(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("mine")
    events = Events()
    result = run_training(tiny_config(tmp_path), run_dir=target, on_event=events.append)
    assert result.error_type == "RunDirError"
    assert "is a file, not a folder" in events.failure().message
    assert target.read_text() == "mine"


def test_an_empty_folder_is_taken_and_left_clean(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with prepare_run_dir(empty) as lock:
        assert lock.path == empty.resolve() and os.listdir(empty) == [".lock"]
    assert os.listdir(empty) == []


def test_gui_names_a_new_folder_even_beside_a_dangling_link(tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(time, "strftime", lambda fmt: "20260101-120000")
    (tmp_path / "20260101-120000-SmallCNN").symlink_to(tmp_path / "gone")
    run_dir = next_run_dir(tmp_path, "SmallCNN")
    assert run_dir.name == "20260101-120000-SmallCNN~2"


# -- item 6: one process per run folder ------------------------------------------------------
HOLD_LOCK = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from training.rundir import lock_run_dir
lock = lock_run_dir(Path(sys.argv[2]))
print("locked", flush=True)
time.sleep(120)
"""


def test_a_folder_in_use_is_refused_at_once_and_freed_when_its_process_dies(stopped_run, tmp_path):
    run_dir = copy_run(stopped_run, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(ROOT), str(run_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run_dir)
        failed = resume_refused(run_dir)
        assert f"is in use by another run (process PID {holder.pid})" in failed.message
        assert f"process PID {holder.pid}" in resume_problem(run_dir)

        events = Events()
        run_training(tiny_config(tmp_path), run_dir=run_dir, on_event=events.append)
        assert "in use by another run" in events.failure().message
        assert snapshot(run_dir) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The OS dropped the lock with the process: the folder can be resumed again.
    assert resume_problem(run_dir) == ""
    lock_run_dir(run_dir.resolve()).release()


# -- item 7: a resume checks everything before it writes anything ------------------------------
def test_a_resume_whose_classes_changed_is_refused_and_writes_nothing(stopped_run, tmp_path):
    run_dir = copy_run(stopped_run, tmp_path)
    config = json.loads((run_dir / "config.json").read_text())
    data = Path(shutil.copytree(config["data"]["dir"], tmp_path / "data"))
    shutil.copytree(data / "circle", data / "ellipse")
    shutil.rmtree(data / "triangle")
    config["data"]["dir"] = str(data)
    (run_dir / "config.json").write_text(json.dumps(config))
    before = snapshot(run_dir)

    events = Events()
    result = resume_training(run_dir, on_event=events.append)
    assert result.stop_reason == "failed" and result.error_type == "DataError"
    assert "classes added: ellipse; removed: triangle" in events.failure().message
    assert snapshot(run_dir) == before
    assert json.loads((run_dir / "labels.json").read_text()) == ["circle", "square", "triangle"]


def test_a_new_run_writes_its_labels_as_json_too(stopped_run):
    assert json.loads((stopped_run / "labels.json").read_text()) == ["circle", "square", "triangle"]
    assert (stopped_run / "labels.txt").read_text() == "circle\nsquare\ntriangle\n"


# -- item 9: a full disk ---------------------------------------------------------------------
def disk_full(path) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def test_disk_full_while_writing_the_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    import h5py

    data = make_tiny_dataset(tmp_path, per_class=10, size=32)
    original = keras.Model.save_weights
    saves = []

    def save_half_then_fill_the_disk(model, path, *args, **kwargs):
        saves.append(path)
        if len(saves) == 2:
            Path(path).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 1000)
            raise disk_full(path)
        return original(model, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", save_half_then_fill_the_disk)
    run_dir = tmp_path / "run"
    events = Events()
    result = run_training(tiny_config(data), run_dir=run_dir, on_event=events.append)
    assert result.stop_reason == "failed"
    message = events.failure().message
    assert message.startswith("The disk is full") and "(epoch-0002.weights.h5)" in message
    assert f"train --resume {run_dir}" in message
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "failed" and summary["error"] == message
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1
    assert sorted(os.listdir(run_dir / "checkpoint")) == ["epoch-0001.weights.h5", "state.json"]
    with h5py.File(run_dir / "checkpoint" / state["weights_file"], "r"):
        pass

    monkeypatch.setattr(keras.Model, "save_weights", original)
    resumed = resume_training(run_dir, on_event=lambda e: None)
    assert resumed.stop_reason == "completed", resumed.error
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]


def _fail(original, name: str, *, at: int):
    """``original`` (a writer taking the target first) that fails on its ``at``-th write of
    ``name`` as a full disk would."""
    calls = []

    def write(target, *args, **kwargs):
        if Path(target).name == name:
            calls.append(target)
            if len(calls) == at:
                raise disk_full(target)
        return original(target, *args, **kwargs)
    return write


@pytest.mark.parametrize("writer", ["state.json", "best.keras", "events.jsonl", "summary.json"])
def test_disk_full_at_any_write_ends_the_run_as_failed_with_the_same_message(tmp_path, monkeypatch, writer):
    data = make_tiny_dataset(tmp_path, per_class=10, size=32)
    if writer == "state.json":
        monkeypatch.setattr(resume, "write_json_atomic", _fail(resume.write_json_atomic, writer, at=2))
    elif writer == "best.keras":
        original = keras.Model.save
        saves = []

        def save(model, path, *args, **kwargs):
            saves.append(path)
            if len(saves) == 2:
                Path(path).write_bytes(b"PK\x03\x04 half a zip")
                raise disk_full(path)
            return original(model, path, *args, **kwargs)
        monkeypatch.setattr(keras.Model, "save", save)
        # Every epoch must count as the best, so that the second one saves.
        monkeypatch.setattr(callbacks.RunState, "improves", lambda self, value: True)
    elif writer == "events.jsonl":
        original = RunRecorder.__call__

        def record(self, event):
            if event.type == "epoch" and event.epoch == 2:
                raise disk_full(self.run_dir / "events.jsonl")
            original(self, event)
        monkeypatch.setattr(RunRecorder, "__call__", record)
    else:
        monkeypatch.setattr(engine, "write_json_atomic", _fail(engine.write_json_atomic, writer, at=1))
    run_dir = tmp_path / "run"
    events = Events()
    result = run_training(tiny_config(data), run_dir=run_dir, on_event=events.append)
    assert result.stop_reason == "failed" and result.error_type == "OSError"
    assert events.failure().message.startswith("The disk is full")
    if writer != "summary.json":
        assert json.loads((run_dir / "summary.json").read_text())["stop_reason"] == "failed"
        state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
        assert (run_dir / "checkpoint" / state["weights_file"]).is_file()
    assert not [p for p in run_dir.rglob(".*")], "temporary files left"


FILL_THE_DISK = """
import json, sys
sys.path.insert(0, sys.argv[1])
from training.config import Config
from training.engine.run import run_training
result = run_training(Config.from_dict(json.loads(sys.argv[2])), run_dir=sys.argv[3], on_event=lambda e: None)
print(json.dumps({"stop_reason": result.stop_reason, "error": result.error}))
"""


def test_a_real_full_disk_ends_cleanly_and_the_run_resumes(tmp_path):
    """A small tmpfs fills up while the checkpoint of epoch 2 is written (HDF5 used to leave
    its file open, and the process crashed at exit). Needs root and mount (not on CI)."""
    import h5py

    data = make_tiny_dataset(tmp_path, per_class=10, size=32)
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and permission to mount a small tmpfs (to fill a real disk)")
    try:
        # A head phase first: its checkpoint (no optimizer state for the backbone) fits, the
        # fine-tuning phase's does not.
        config = tiny_config(data, **{"training.mode": "fine_tune"})
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        process = subprocess.run([sys.executable, "-c", FILL_THE_DISK, str(ROOT), config.to_json(),
                                  str(disk / "run")], capture_output=True, text=True, env=env, timeout=300)
        assert process.returncode == 0, process.stderr[-3000:]
        result = json.loads(process.stdout.strip().splitlines()[-1])
        assert result["stop_reason"] == "failed" and result["error"].startswith("The disk is full")
        assert json.loads((disk / "run" / "summary.json").read_text())["stop_reason"] == "failed"
        state = json.loads((disk / "run" / "checkpoint" / "state.json").read_text())
        with h5py.File(disk / "run" / "checkpoint" / state["weights_file"], "r"):
            pass

        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        resumed = resume_training(disk / "run", on_event=lambda e: None)
        assert resumed.stop_reason == "completed", resumed.error
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# -- item 10: leftovers of a kill during a save --------------------------------------------------
def test_leftovers_of_a_killed_save_are_removed_on_resume_and_nothing_else(stopped_run, tmp_path):
    run_dir = copy_run(stopped_run, tmp_path)
    leftovers = [".best.keras.k2j4h6g8.keras", ".summary.json.ab_cd123.json", "tmpq9w8e7r6",
                 "checkpoint/.epoch-0002.weights.h5.z1x2c3v4.weights.h5",
                 "checkpoint/.state.json.m5n6b7v8.json", "checkpoint/epoch-0002.weights.h5"]
    for name in leftovers:
        (run_dir / name).write_bytes(b"half a file")
    (run_dir / ".keras-tmp" / "tmpabcdefgh" / "assets").mkdir(parents=True)
    mine = ["notes.txt", ".best.keras.backup", "checkpoint/README", "tmp-not-keras"]
    for name in mine:
        (run_dir / name).write_text("the user's")

    result = resume_training(run_dir, on_event=lambda e: None)
    assert result.stop_reason == "completed", result.error
    for name in leftovers + [".keras-tmp"]:
        assert not (run_dir / name).exists(), name
    for name in mine:
        assert (run_dir / name).read_text() == "the user's"


def test_keras_temporary_folders_of_a_save_stay_inside_the_run_folder(tmp_path, monkeypatch):
    from keras.src.saving import saving_lib

    created = []
    original = saving_lib.get_temp_dir

    def recording():
        created.append(Path(original()))
        return str(created[-1])

    monkeypatch.setattr(saving_lib, "get_temp_dir", recording)
    data = make_tiny_dataset(tmp_path, per_class=10, size=32)
    run_dir = tmp_path / "run"
    result = run_training(tiny_config(data, **{"training.fine_tune_epochs": 0}), run_dir=run_dir,
                          on_event=lambda e: None)
    assert result.best_epoch == 1, result.error
    assert created and all(p.parent == run_dir / ".keras-tmp" for p in created), created
    assert not any(p.exists() for p in created) and not (run_dir / ".keras-tmp").exists()


# -- item 13: damaged run folders --------------------------------------------------------------
def _edit_state(run_dir: Path, change) -> None:
    path = run_dir / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    path.write_text(json.dumps(change(state)))


def _set(key, value):
    def change(state):
        state[key] = value
        return state
    return change


def _drop(key):
    def change(state):
        del state[key]
        return state
    return change


DAMAGE = {
    "state missing a key": (lambda r: _edit_state(r, _drop("phase")), "`phase` is missing"),
    "state with an extra key": (lambda r: _edit_state(r, _set("surprise", 1)), "unknown key `surprise`"),
    "state is a list": (lambda r: _edit_state(r, lambda s: [s]), "holds a JSON list"),
    "string epoch": (lambda r: _edit_state(r, _set("epoch", "1")), "Received: epoch='1'"),
    "negative epoch": (lambda r: _edit_state(r, _set("epoch", -1)), "Received: epoch=-1"),
    "weights outside": (lambda r: _edit_state(r, _set("weights_file", "../../victim.weights.h5")),
                        "Received: weights_file='../../victim.weights.h5'"),
    "weights absolute": (lambda r: _edit_state(r, _set("weights_file", "/tmp/x.weights.h5")),
                         "Received: weights_file='/tmp/x.weights.h5'"),
    "state not json": (lambda r: (r / "checkpoint" / "state.json").write_text("{"), "not valid JSON"),
    "summary is a list": (lambda r: (r / "summary.json").write_text("[]"), "summary.json is damaged"),
    "config invalid": (lambda r: (r / "config.json").write_text("{nope"), "not valid JSON"),
    "config not utf-8": (lambda r: (r / "config.json").write_bytes(b'{"data": "\xff"}'), "not UTF-8"),
    "config a fifo": (lambda r: ((r / "config.json").unlink(), os.mkfifo(r / "config.json")), "named pipe"),
    "labels.json damaged": (lambda r: (r / "labels.json").write_text('{"a": 1}'), "labels.json must be"),
    "labels empty": (lambda r: ((r / "labels.json").unlink(), (r / "labels.txt").write_text("")),
                     "names 0 class(es)"),
}


def _without_hanging(function, *args):
    """Runs ``function`` in a thread: a FIFO opened for reading would block forever."""
    box = []
    thread = threading.Thread(target=lambda: box.append(function(*args)), daemon=True)
    thread.start()
    thread.join(60)
    assert box, f"{function.__name__} hung"
    return box[0]


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_run_folder_gets_a_clear_message_from_resume_and_the_window(stopped_run, tmp_path, case):
    run_dir = copy_run(stopped_run, tmp_path)
    # A real weights file where "../../victim.weights.h5" points: it must not be loaded.
    victim = tmp_path / "victim.weights.h5"
    shutil.copy(run_dir / "checkpoint" / "epoch-0001.weights.h5", victim)
    damage, expected = DAMAGE[case]
    damage(run_dir)
    before = snapshot(run_dir)

    events = Events()
    result = _without_hanging(lambda: resume_training(run_dir, on_event=events.append))
    assert result.stop_reason == "failed" and result.error_type == "RunDirError", result
    assert expected in events.failure().message
    assert snapshot(run_dir) == before
    if case != "state missing a key":  # the window's quick look checks the keys that are there
        assert expected in _without_hanging(resume_problem, run_dir)


# -- item 15: a run killed in its first epoch, an edited config, a torn checkpoint, no model ------
def test_a_run_killed_in_its_first_epoch_starts_over_with_resume(tmp_path):
    data = make_tiny_dataset(tmp_path, per_class=10, size=32)
    run_dir = tmp_path / "run"
    stop = threading.Event()
    stop.set()  # stops before the first epoch completes, as a kill would
    first = run_training(tiny_config(data, **{"training.fine_tune_epochs": 1}), run_dir=run_dir,
                         on_event=lambda e: None, stop=stop)
    assert first.best_epoch == 0 and not (run_dir / "checkpoint" / "state.json").exists()
    (run_dir / "summary.json").unlink()  # killed: no summary
    (run_dir / ".summary.json.abcd1234.json").write_text("{")

    events = Events()
    result = resume_training(run_dir, on_event=events.append)
    assert result.stop_reason == "completed", result.error
    assert any("starts over in the same folder" in e.message for e in events.of(Log))
    recorded = read_events(run_dir)
    assert recorded[0]["type"] == "started" and [e["type"] for e in recorded].count("started") == 1
    assert [e["epoch"] for e in recorded if e["type"] == "epoch"] == [1, 2]
    assert json.loads((run_dir / "summary.json").read_text())["epochs_completed"] == 2
    assert not (run_dir / ".summary.json.abcd1234.json").exists()


def test_epochs_recorded_without_a_checkpoint_are_not_started_over(stopped_run, tmp_path):
    run_dir = copy_run(stopped_run, tmp_path)
    shutil.rmtree(run_dir / "checkpoint")
    before = snapshot(run_dir)
    failed = resume_refused(run_dir)
    assert "has no checkpoint to resume from" in failed.message and "1 epoch(s) completed" in failed.message
    assert snapshot(run_dir) == before


def test_an_edited_backbone_is_named_in_two_lines_not_a_keras_dump(stopped_run, tmp_path):
    run_dir = copy_run(stopped_run, tmp_path)
    config = json.loads((run_dir / "config.json").read_text())
    config["model"]["backbone"] = "MobileNetV2"
    (run_dir / "config.json").write_text(json.dumps(config))
    before = snapshot(run_dir)
    failed = resume_refused(run_dir)
    assert "does not match the model described by config.json" in failed.message
    assert "(was it edited?)" in failed.message and "MobileNetV2" in failed.message
    assert len(failed.message) < 400 and failed.message.count("\n") <= 1
    assert snapshot(run_dir) == before


def test_a_truncated_checkpoint_is_called_damaged_not_a_full_disk(stopped_run, tmp_path):
    run_dir = copy_run(stopped_run, tmp_path)
    weights = run_dir / "checkpoint" / "epoch-0001.weights.h5"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    failed = resume_refused(run_dir)
    assert "is damaged or incomplete" in failed.message
    assert "resume from epoch 1 is impossible" in failed.message and "disk" not in failed.message


def test_a_run_that_saved_no_model_says_so(tmp_path, monkeypatch):
    data = make_tiny_dataset(tmp_path, per_class=10, size=32)

    def not_a_number(**kwargs):
        return lambda y_true, y_pred: keras.ops.mean(y_pred) * float("nan")

    monkeypatch.setattr(keras.losses, "CategoricalCrossentropy", not_a_number)
    events = Events()
    result = run_training(tiny_config(data), run_dir=tmp_path / "run", on_event=events.append)
    assert result.stop_reason == "diverged" and result.best_epoch == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["best_model"] is None
    assert any(e.level == "error" and "No model was saved" in e.message for e in events.of(Log))


# -- item 12: paths that cannot be used ----------------------------------------------------------
def test_a_run_folder_name_over_255_bytes_is_a_clear_error(tmp_path):
    events = Events()
    result = run_training(tiny_config(tmp_path), run_dir=tmp_path / ("a" * 5000) / "run",
                          on_event=events.append)
    assert result.error_type == "RunDirError"
    assert "longer than 255 bytes" in events.failure().message
    assert resume_refused(tmp_path / ("a" * 5000)).message.startswith("Cannot resume:")


def test_a_run_folder_that_cannot_be_entered_is_a_clear_error(tmp_path, monkeypatch):
    # As root, permissions cannot be taken away: a folder that cannot be entered is simulated.
    locked = str(tmp_path / "locked")
    real_stat, real_mkdir = os.stat, os.mkdir

    def deny(real):
        def call(path, *args, **kwargs):
            if os.fsdecode(path).startswith(locked + os.sep):
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "stat", deny(real_stat))
    monkeypatch.setattr(os, "mkdir", deny(real_mkdir))
    events = Events()
    result = run_training(tiny_config(tmp_path), run_dir=Path(locked) / "run", on_event=events.append)
    assert result.error_type == "RunDirError"
    assert "cannot be reached (permission denied" in events.failure().message


# -- issue 9: the run folder has one owner; the window asks it ---------------------------------
def test_the_run_folder_owner_tells_the_window_what_a_resume_continues(stopped_run, tmp_path):
    run_dir = copy_run(stopped_run, tmp_path)

    check = check_resume(run_dir)

    assert check.problem == "" and check.run_dir == run_dir.resolve()
    assert check.config == Config.load(run_dir / "config.json")
    assert check.epoch == 1
    assert [row["epoch"] for row in check.history] == [1] and "val_loss" in check.history[0]
    with lock_run_dir(run_dir.resolve()):  # another writer: the window is told, not the engine
        assert "is in use by another run" in check_resume(run_dir).problem
    (run_dir / "summary.json").write_text('{"stop_reason": "completed"}')
    finished = check_resume(run_dir)
    assert "already finished" in finished.problem and finished.config is None and finished.history == []


def test_the_best_model_is_exported_by_the_run_folder_owner(stopped_run, tmp_path):
    target = export_best_model(stopped_run, tmp_path / "exported.keras")
    assert target.read_bytes() == (stopped_run / "best.keras").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["exported.keras"]  # no temporary file left
    with pytest.raises(FileNotFoundError, match="No saved model"):
        export_best_model(tmp_path, tmp_path / "x.keras")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "best.keras").symlink_to(stopped_run / "best.keras")
    with pytest.raises(RunDirError, match="symbolic link"):
        export_best_model(linked, tmp_path / "y.keras")


def test_the_run_folder_package_loads_without_keras_or_qt():
    code = ("import sys, training.rundir, training.rundir.labels; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'PySide6', 'sklearn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

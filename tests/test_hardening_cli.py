"""Attacks on the command line: config files that hang or crash, paths that cannot be
looked at, values libraries choke on, exit codes, signals, output that cannot be written,
and the last line of defence. The README promises exit codes 0 / 1 / 2 / 130 (143 for
SIGTERM, 141 for a closed output pipe) and never a traceback.

Most tests run ``python main.py ...`` in a subprocess, as a user would; a run that has to
train uses SmallCNN, 32 px and one or two epochs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from main import main
from tests.helpers import make_tiny_dataset
from training.cli import main as cli
from training.config import Config, ConfigError, parse_override

ROOT = Path(__file__).resolve().parent.parent
BASE_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
SMALL = ["--set", "model.backbone=SmallCNN", "--set", "model.weights=none", "--set", "data.image_size=32",
         "--set", "training.head_epochs=0", "--set", 'training.fine_tune_layers="all"']
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")


def run_cli(*args: str, timeout: int = 120, env: dict[str, str] | None = None, cwd: Path = ROOT,
            **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**BASE_ENV, **(env or {})}, **kwargs)


def assert_clean_failure(result: subprocess.CompletedProcess, code: int, *phrases: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr[-2000:])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("hardening"), classes=2, per_class=10, size=32)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, dataset) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    result = run_cli("train", "--data", str(dataset), "--out", str(run_dir), *SMALL,
                     "--set", "training.fine_tune_epochs=1", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


# -- 1. config files: FIFOs, devices, bad text, deep nesting, huge files -----------------------
def _unreadable_configs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Config files that once hung or raised, with a phrase the message must hold."""
    folder.mkdir(parents=True, exist_ok=True)
    bad_utf8 = folder / "latin1.json"
    bad_utf8.write_bytes(b'{"data": {"dir": "caf\xe9"}}')
    deep = folder / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    huge = folder / "huge.json"
    huge.write_text('{"data": {"dir": "' + "x" * (2 * 1024**2) + '"}}')
    long_number = folder / "long_number.json"
    long_number.write_text('{"data": {"seed": ' + "1" * 5000 + "}}")
    deep_value = folder / "deep_value.json"
    deep_value.write_text('{"model": {"head": {"hidden_units": ' + "[" * 900 + "]" * 900 + "}}}")
    configs = {
        "invalid UTF-8": (bad_utf8, "not UTF-8"),
        "nested 100,000 deep": (deep, "nested too deeply"),
        "2 MB": (huge, "larger than 1 MB"),
        "a 5000-digit number": (long_number, "a number too long"),
        "a value nested 900 deep": (deep_value, "model.head.hidden_units"),
        "a folder": (folder, "is a folder, not a file"),
        "a device": (Path("/dev/zero"), "is a device"),
    }
    if hasattr(os, "mkfifo"):
        fifo = folder / "fifo.json"
        os.mkfifo(fifo)
        configs["a named pipe"] = (fifo, "is a named pipe")
    return configs


def test_config_load_turns_every_unreadable_file_into_a_config_error(tmp_path):
    for name, (path, phrase) in _unreadable_configs(tmp_path / "configs").items():
        if not path.exists():
            continue  # /dev/zero on a system without it
        with pytest.raises(ConfigError) as info:
            Config.load(path)
        assert phrase in str(info.value), (name, str(info.value))
        assert len(str(info.value)) < 1000, f"{name}: the message must stay readable"


@needs_fifo
def test_config_check_on_a_fifo_or_device_exits_2_at_once(tmp_path):
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    assert_clean_failure(run_cli("config", "--check", str(fifo), timeout=30), 2, "named pipe")
    assert_clean_failure(run_cli("train", str(fifo), timeout=30), 2, "named pipe")
    if Path("/dev/zero").exists():
        assert_clean_failure(run_cli("config", "--check", "/dev/zero", timeout=30), 2, "device")


def test_config_check_on_bad_text_deep_nesting_or_a_huge_file_exits_2(tmp_path):
    configs = _unreadable_configs(tmp_path / "configs")
    for name in ("invalid UTF-8", "nested 100,000 deep", "2 MB", "a 5000-digit number"):
        path, phrase = configs[name]
        assert_clean_failure(run_cli("config", "--check", str(path), timeout=30), 2, phrase)


def test_set_values_too_deep_or_too_long_are_config_errors():
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_override("data.seed=" + "[" * 100_000)
    with pytest.raises(ConfigError, match="number too long"):
        parse_override("data.seed=" + "1" * 5000)
    with pytest.raises(ConfigError, match="model.head.hidden_units"):
        Config().with_overrides({"model.head.hidden_units": json.loads("[" * 900 + "]" * 900)})
    result = run_cli("train", "--set", "data.seed=" + "[" * 100_000, timeout=30)
    assert_clean_failure(result, 2, "nested too deeply")


def test_from_dict_with_a_deeply_nested_value_is_a_config_error():
    value: list = []
    for _ in range(100_000):  # deeper than Python's recursion limit, built without recursion
        value = [value]
    with pytest.raises(ConfigError, match="data.dir"):
        Config.from_dict({"data": {"dir": value}})


def test_gui_config_with_a_device_does_not_hang():
    env = {"QT_QPA_PLATFORM": "offscreen", "FINETUNE_STUDIO_STARTUP_PROBE": "1",
           "FINETUNE_STUDIO_PREWARM": "0"}
    result = run_cli("gui", "--config", "/dev/zero", env=env, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "window_shown_after_s" in result.stdout
    assert "Traceback" not in result.stderr


@needs_fifo
def test_the_window_shows_why_a_config_file_cannot_be_loaded(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from gui import engine_calls
    from gui.window import MainWindow

    # The learning-rate plan and augmentation previews need no Keras helper process here.
    monkeypatch.setattr(engine_calls, "planned_learning_rates", lambda config, steps: {"head": [], "fine_tune": []})
    monkeypatch.setattr(engine_calls, "augmentation_preview", lambda config, paths, size, seed: (None, None))
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    assert window.load_config_file(fifo) is False
    assert window.error_dialog is not None and "named pipe" in window.error_dialog.text()


# -- 2. paths that cannot even be looked at -----------------------------------------------------
def test_a_data_path_with_a_name_over_255_bytes_exits_2():
    result = run_cli("train", "--data", "a" * 5000, timeout=30)
    assert_clean_failure(result, 2, "longer than 255 bytes", "--data")
    result = run_cli("check", "--data", "/tmp/" + "b" * 300 + "/x", timeout=30)
    assert_clean_failure(result, 2, "longer than 255 bytes")


def test_out_under_a_folder_that_cannot_be_entered_exits_2(tmp_path, dataset, monkeypatch, capsys):
    # As root every folder can be entered, so a mode-000 folder is simulated the way the
    # system reports it: os.stat raises PermissionError for anything inside it.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if os.fsdecode(path).startswith(str(locked) + os.sep):
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    assert main(["train", "--data", str(dataset), "--out", str(locked / "run")]) == 2
    err = capsys.readouterr().err
    assert "cannot be reached" in err and "--out" in err


def test_a_deleted_current_folder_is_a_usage_error(tmp_path, dataset):
    gone = tmp_path / "gone"
    gone.mkdir()
    # A relative --out: the default run folder is under the (absolute) runs root.
    script = (f'cd "{gone}" && rmdir "{gone}" && exec "{sys.executable}" "{ROOT / "main.py"}" train '
              f'--data "{dataset}" --out run')
    result = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60,
                            env={**BASE_ENV, "FINETUNE_STUDIO_RUNS": str(tmp_path / "runs")})
    assert_clean_failure(result, 2, "current folder")


# -- 3. values that passed validation and crashed a library later ------------------------------
@pytest.mark.parametrize("key", ["data.seed", "training.seed"])
@pytest.mark.parametrize("value", [-1, 2**32])
def test_seeds_outside_32_bits_are_refused(key, value):
    with pytest.raises(ConfigError) as info:
        Config().with_overrides({key: value})
    assert f"`{key}` must be an integer in [0, 4294967295]" in str(info.value)
    assert f"Received: {key}={value}" in str(info.value)
    assert getattr(Config().with_overrides({key: 2**32 - 1}), key.split(".")[0]).seed == 2**32 - 1


def test_seed_from_the_command_line_exits_2():
    assert_clean_failure(run_cli("train", "--set", "training.seed=-1", timeout=30), 2,
                         "Received: training.seed=-1")


def test_a_head_too_large_to_allocate_and_nul_in_paths_are_refused():
    with pytest.raises(ConfigError, match="4,294,967,296"):
        Config().with_overrides({"model.head.hidden_units": [65536, 65536]})
    assert Config().with_overrides({"model.head.hidden_units": [8192, 8192]}).model.head.hidden_units
    for key in ("data.dir", "data.validation_dir", "model.weights"):
        value = "runs/a\x00b.keras"
        with pytest.raises(ConfigError, match=f"`{key}` must be a path without NUL"):
            Config().with_overrides({key: value})


# -- 4. exit codes ---------------------------------------------------------------------------
def test_a_run_that_diverges_at_once_saved_no_model_and_exits_1(tmp_path, dataset):
    run_dir = tmp_path / "run"
    result = run_cli("train", "--data", str(dataset), "--out", str(run_dir), *SMALL,
                     "--set", "training.fine_tune_epochs=1", "--set", "optimizer.name=sgd",
                     "--set", "optimizer.learning_rate=10", "--set", "training.fine_tune_learning_rate=10",
                     "--set", "data.batch_size=2", timeout=300)
    assert_clean_failure(result, 1, "no model was saved", "diverged")
    assert not (run_dir / "best.keras").exists()
    assert result.stdout.strip() == "", "stdout names a run folder only when it holds a model"


def _unusable(tmp_path: Path, dataset: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    one_class = tmp_path / "one_class"
    shutil.copytree(dataset / "circle", one_class / "circle")
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    old_run = tmp_path / "old_run"
    old_run.mkdir()
    (old_run / "events.jsonl").write_text("")
    return {
        "empty data folder": (["train", "--data", str(empty), "--out", str(tmp_path / "r1")], "class"),
        "one class": (["train", "--data", str(one_class), "--out", str(tmp_path / "r2")], "class"),
        "--out is a file": (["train", "--data", str(dataset), "--out", str(a_file)], "not a folder"),
        "--out holds a run": (["train", "--data", str(dataset), "--out", str(old_run)], str(old_run.resolve())),
        "resume a non-run": (["train", "--resume", str(dataset)], str(dataset)),
        "check an empty folder": (["check", "--data", str(empty), *SMALL], "class"),
    }


@pytest.mark.parametrize("case", ["empty data folder", "one class", "--out is a file",
                                  "--out holds a run", "resume a non-run", "check an empty folder"])
def test_unusable_inputs_exit_2(tmp_path, dataset, case):
    args, phrase = _unusable(tmp_path, dataset)[case]
    assert_clean_failure(run_cli(*args, timeout=300), 2, phrase)


def test_sigterm_stops_after_the_batch_writes_the_summary_and_exits_143(tmp_path, dataset):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "train", "--data", str(dataset), "--out", str(run_dir),
         *SMALL, "--set", "training.fine_tune_epochs=500"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=BASE_ENV)
    try:
        seen = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            seen.append(line)
            if "epoch 2/500" in line or not line:
                break
        assert any("epoch 2/500" in line for line in seen), "".join(seen)[-2000:]
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    assert "SIGTERM" in err and "Finished (stopped)" in err
    assert f"--resume {run_dir}" in err
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["stop_reason"] == "stopped"
    assert summary["epochs_completed"] < 500


def test_a_second_signal_aborts_at_once():
    notes: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with cli.StopOnSignals(notes.append) as signals:
        signal.raise_signal(signal.SIGTERM)
        assert signals.stop.is_set() and signals.exit_code == 143
        assert "SIGTERM" in notes[0] and "abort at once" in notes[0]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert signals.exit_code == 130
    assert signal.getsignal(signal.SIGTERM) == before, "the previous handlers are put back"


def test_the_abort_message_sends_to_resume_only_when_there_is_something_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    assert "nothing was saved" in cli.aborted_message(run_dir)
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_text("")
    message = cli.aborted_message(run_dir)
    assert "--resume" not in message and "new --out" in message
    (run_dir / "config.json").write_text(Config().to_json())
    assert f"python main.py train --resume {run_dir}" in cli.aborted_message(run_dir)


@pytest.mark.parametrize("args, phrase", [
    (["overfit", "--images", "0"], "--images: must be an integer >= 1. Received: 0"),
    (["overfit", "--max-epochs", "0"], "--max-epochs: must be an integer >= 1. Received: 0"),
    (["overfit", "--max-epochs", "-3"], "--max-epochs: must be an integer >= 1. Received: -3"),
    (["lr-find", "--steps", "0"], "--steps: must be an integer >= 10. Received: 0"),
    (["lr-find", "--min-lr", "nan"], "--min-lr: must be a number > 0. Received: nan"),
    (["lr-find", "--min-lr", "1", "--max-lr", "0.1"], "--min-lr must be lower than --max-lr"),
    (["predict", "run", "image.png", "--top", "0"], "--top: must be an integer >= 1. Received: 0"),
])
def test_tool_arguments_that_cannot_work_exit_2_at_once(args, phrase):
    assert_clean_failure(run_cli(*args, timeout=60), 2, phrase)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt needs a display only on Linux/X11")
def test_gui_without_a_display_says_so_and_exits_2():
    result = run_cli("gui", timeout=60)  # BASE_ENV has no DISPLAY, WAYLAND_DISPLAY or QT_QPA_PLATFORM
    assert_clean_failure(result, 2, "needs a display", "xvfb-run")
    assert_clean_failure(run_cli(timeout=60, env={"QT_QPA_PLATFORM": "xcb"}), 2, "needs a display")


def test_display_problem_knows_which_platforms_need_which_display():
    from gui.app import display_problem

    assert display_problem({}, "linux")
    assert not display_problem({"DISPLAY": ":0"}, "linux")
    assert not display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert display_problem({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not display_problem({"QT_QPA_PLATFORM": "wayland;xcb", "DISPLAY": ":0"}, "linux")
    assert not display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not display_problem({}, "darwin") and not display_problem({}, "win32")


# -- 5. output that cannot be written -------------------------------------------------------------
def _run_into_a_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -1` after its line: nobody reads any more
    try:
        return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, env=BASE_ENV)
    finally:
        os.close(write_end)


def test_a_closed_output_pipe_ends_quietly_with_141(trained_run, dataset):
    for args in (["config", "--default"], ["predict", str(trained_run), str(dataset)]):
        result = _run_into_a_closed_pipe(*args)
        assert result.returncode == 141, result.stderr[-2000:]
        assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr


def test_file_names_that_are_not_utf8_are_printed_escaped(trained_run, dataset, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    source = sorted((dataset / "circle").iterdir())[0]
    shutil.copy(source, images / os.fsdecode(b"\xff-circle.png"))
    result = run_cli("predict", str(trained_run), str(images), env={"PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "\\udcff-circle.png: " in result.stdout
    assert "Traceback" not in result.stderr


def test_predict_with_no_images_says_so_and_exits_2(trained_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_failure(run_cli("predict", str(trained_run), str(empty)), 2, "error: ")


# -- 6. the last line of defence ------------------------------------------------------------------
def test_an_unexpected_error_prints_its_type_and_where_the_traceback_went(monkeypatch, tmp_path, capsys):
    import tempfile

    def broken(self) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(Config, "to_json", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert main(["config", "--default"]) == 1
    err = capsys.readouterr().err
    assert "error: RuntimeError: boom" in err and "Traceback" not in err
    saved = Path(re.search(r"traceback is in (\S+\.txt)", err).group(1))
    assert saved.parent == tmp_path
    assert "Traceback" in saved.read_text(encoding="utf-8") and "boom" in saved.read_text(encoding="utf-8")

    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["config", "--default"])

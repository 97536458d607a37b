"""The engine protocol and its client, driven without Qt (issue 9, item 2).

Messages and ``user_message`` are checked in this process. Real engine child processes
(``python -m training.service.child``, TensorFlow; a few seconds each on 2 cores) run a
tiny run, a stopped run, a tool and helper calls: SmallCNN, no pretrained weights, 32 px.
Crashes, kills and a child that prints garbage use small stand-in children (plain Python).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.helpers import make_tiny_dataset
from training.api import default_config
from training.events import EVENT_TYPES, BatchEnd, EpochEnd, Failed, Finished, Log, PhaseChanged, RunStarted
from training.service import client
from training.service.client import (
    ENGINE_CRASHED,
    ENGINE_KILLED,
    PROTOCOL_ERROR,
    EngineCallError,
    EngineHelper,
    EngineProcess,
    user_message,
)
from training.service.jobs import run_job
from training.service.messages import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Call,
    ProtocolError,
    Reply,
    ResumeRequest,
    Stop,
    ToolRequest,
    ToolResult,
    TrainRequest,
    decode,
    encode,
)


def tiny_config(data: Path, **overrides):
    values = {"data.dir": str(data), "model.backbone": "SmallCNN", "model.weights": "none",
              "data.image_size": 32, "data.batch_size": 8, "training.head_epochs": 1,
              "training.fine_tune_epochs": 0, "augmentation.rotation": 0.0}
    values.update(overrides)
    return default_config().with_overrides(values)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("service"), classes=3, per_class=8, size=32)


def stand_in(code: str) -> list[str]:
    """A stand-in engine process running ``code`` (plain Python, no TensorFlow)."""
    return [sys.executable, "-c", textwrap.dedent(code)]


# -- messages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("message", [
    TrainRequest(config={"model": {"backbone": "SmallCNN"}}, run_dir="runs/a"),
    ResumeRequest(run_dir="runs/a"),
    ToolRequest(tool="check_setup", config={}),
    Stop(),
    Call(method="preview", params={"size": 32, "paths": ["a.png"]}),
    Reply(result={"head": [0.001, 0.0005]}),
    Reply(error="`method` must be ...", error_type=PROTOCOL_ERROR),
    ToolResult(tool="lr_range_test", result={"suggested_learning_rate": 0.003}),
])
def test_every_message_round_trips_as_one_json_line_with_its_type_and_version(message):
    line = encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    data = json.loads(line)
    assert data["type"] == message.type and data["version"] == PROTOCOL_VERSION
    assert decode(line) == message


def test_events_travel_on_the_same_stream_and_types_never_collide():
    assert decode(encode(Log(message="hello"))) == Log(message="hello")
    assert not set(MESSAGE_TYPES) & set(EVENT_TYPES)


@pytest.mark.parametrize("line, expected", [
    (b"hello from a library\n", "Expected one JSON object a line. Received: 'hello from a library'"),
    (b"[1, 2]\n", "Expected one JSON object a line"),
    (b'{"type": "dance", "version": 1}\n', "Unknown message type 'dance'; known: train, resume, tool, stop"),
    (b'{"run_dir": "x"}\n', "Unknown message type None"),
    (b'{"type": "resume", "version": 2, "run_dir": "x"}\n', "speaks protocol version 1. Received: version=2"),
    (b'{"type": "resume", "run_dir": "x"}\n', "Received: version=None"),
    (b'{"type": "resume", "version": 1}\n', "A 'resume' message needs `run_dir`"),
    (b'{"type": "resume", "version": 1, "run_dir": "x", "force": true}\n',
     "A 'resume' message has no field 'force'; its fields are: run_dir"),
    (b'{"type": "train", "version": 1, "run_dir": "x", "config": []}\n',
     "`config` of a 'train' message must be a dict. Received: config=[]"),
    (b'{"type": "finished", "run_dir": "x"}\n', "A 'finished' event is incomplete"),
])
def test_a_malformed_or_unknown_line_is_refused_with_a_clear_error(line, expected):
    with pytest.raises(ProtocolError) as caught:
        decode(line)
    assert expected in str(caught.value)


# -- user_message -----------------------------------------------------------------------------
def test_user_message_names_what_happened_and_quotes_the_last_stderr_line():
    crash = user_message(ENGINE_CRASHED, exit_code=-signal.SIGSEGV, stderr_tail="loading\nFatal: bad pointer\n\n")
    assert crash.startswith("The engine process ended unexpectedly (exit code -11, SIGSEGV) without reporting")
    assert 'Its last message: "Fatal: bad pointer".' in crash
    during = user_message(ENGINE_CRASHED, "while computing 'catalog'", exit_code=3)
    assert "(exit code 3) while computing 'catalog'." in during and "last message" not in during
    assert "did not stop in time" in user_message(ENGINE_KILLED)
    # The engine's own errors already say what to do; other exceptions get their type named.
    assert user_message("DataError", "No images in /x. Add a folder per class.") == \
        "No images in /x. Add a folder per class."
    assert user_message("RuntimeError", "engine exploded") == "RuntimeError: engine exploded"


def test_a_job_that_cannot_run_ends_with_a_failed_event_not_a_traceback():
    emitted = []
    run_job(TrainRequest(config={"optimizer": {"learning_rate": -1}}, run_dir="unused"),
            emit=emitted.append, stop=threading.Event())
    [failed] = emitted
    assert isinstance(failed, Failed) and failed.error_type == "ConfigError"
    assert "learning_rate" in failed.message and "Traceback" not in failed.message
    assert "Traceback" in failed.details
    emitted.clear()
    run_job(ToolRequest(tool="dance", config={}), emit=emitted.append, stop=threading.Event())
    assert emitted[-1].message == ("`tool` must be one of check_setup, overfit_tiny_subset, lr_range_test. "
                                   "Received: tool='dance'")


def test_the_client_imports_neither_qt_nor_tensorflow():
    code = ("import sys, training.service.client, training.service.messages; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'PySide6') if m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=client.PROJECT_ROOT).stdout
    assert output.strip() == "[]"


# -- the client with stand-in children ---------------------------------------------------------
def test_a_stop_asked_before_the_request_is_sent_after_it():
    echo = stand_in("""
        import json, sys
        request = json.loads(sys.stdin.readline())
        print(json.dumps({"type": "log", "message": "got " + request["type"]}), flush=True)
        for line in sys.stdin:
            if json.loads(line)["type"] == "stop":
                print(json.dumps({"type": "finished", "run_dir": request["run_dir"], "stop_reason": "stopped",
                                  "best_epoch": 0}), flush=True)
                break
    """)
    with EngineProcess(echo) as engine:
        engine.stop()
        items = list(engine.run(ResumeRequest(run_dir="runs/a")))
        assert engine.poll() == 0
    assert items == [Log(message="got resume"), Finished(run_dir="runs/a", stop_reason="stopped", best_epoch=0)]


def test_a_crashing_child_gives_the_user_message_with_its_stderr_tail():
    crash = stand_in("""
        import os, sys
        sys.stdin.readline()
        print('{"type": "log", "message": "working"}', flush=True)
        sys.stderr.write("loading the data\\nFatal: the driver went away\\n")
        sys.stderr.flush()
        os._exit(3)
    """)
    with EngineProcess(crash) as engine:
        *events, outcome = engine.run(ResumeRequest(run_dir="runs/a"))
    assert events == [Log(message="working")]
    assert isinstance(outcome, Failed) and outcome.error_type == ENGINE_CRASHED
    assert outcome.message == user_message(ENGINE_CRASHED, exit_code=3, stderr_tail=outcome.details)
    assert "(exit code 3)" in outcome.message and 'Its last message: "Fatal: the driver went away"' in outcome.message
    assert "loading the data" in outcome.details and outcome.run_dir == "runs/a"


SLEEPER = stand_in("""
    import sys, time
    sys.stdin.readline()
    print('{"type": "log", "message": "working"}', flush=True)
    time.sleep(120)
""")


def test_a_child_killed_from_outside_is_a_crash_and_one_killed_by_the_app_a_timeout():
    with EngineProcess(SLEEPER) as engine:
        items = engine.run(ResumeRequest(run_dir="r"))
        assert next(items) == Log(message="working")
        os.kill(engine.pid, signal.SIGKILL)
        outcome = next(items)
    assert outcome.error_type == ENGINE_CRASHED and "(exit code -9, SIGKILL)" in outcome.message
    with EngineProcess(SLEEPER) as engine:
        items = engine.run(ResumeRequest(run_dir="r"))
        next(items)
        engine.kill()
        outcome = next(items)
    assert outcome.error_type == ENGINE_KILLED
    assert outcome.message == "The training process was ended because it did not stop in time."


def test_a_child_that_prints_garbage_is_ended_with_a_protocol_error():
    chatty = stand_in("""
        import sys, time
        sys.stdin.readline()
        print("hello from a library", flush=True)
        time.sleep(120)
    """)
    with EngineProcess(chatty) as engine:
        [outcome] = engine.run(ResumeRequest(run_dir="r"))
        assert engine.poll() is not None  # not left running behind a stream nobody can trust
    assert outcome.error_type == PROTOCOL_ERROR
    assert "Expected one JSON object a line. Received: 'hello from a library'" in outcome.message


def test_the_helper_reports_a_dead_process_and_starts_a_new_one_for_the_next_call(monkeypatch):
    answering = stand_in("""
        import json, os, sys
        for line in sys.stdin:
            call = json.loads(line)
            if call["method"] == "die":
                sys.stderr.write("helper: out of memory\\n")
                sys.stderr.flush()
                os._exit(5)
            print(json.dumps({"type": "reply", "version": 1, "result": [os.getpid(), call["params"]]}), flush=True)
    """)
    monkeypatch.setattr(client, "child_command", lambda: answering)
    helper = EngineHelper()
    try:
        first_pid, params = helper.call("echo", x=1)
        assert params == {"x": 1}
        with pytest.raises(EngineCallError) as caught:
            helper.call("die")
        assert "(exit code 5) while computing 'die'" in str(caught.value)
        assert 'Its last message: "helper: out of memory"' in str(caught.value)
        second_pid, _ = helper.call("echo")
        assert second_pid != first_pid
    finally:
        helper.close()


# -- real engine children ---------------------------------------------------------------------
def test_a_tiny_run_streams_its_events_and_ends_cleanly(data, tmp_path):
    run_dir = tmp_path / "run"
    with EngineProcess() as engine:
        items = list(engine.run(TrainRequest(config=tiny_config(data).to_dict(), run_dir=str(run_dir))))
        assert engine.poll() == 0  # exits cleanly, even with its stop watcher still waiting on stdin
    kinds = {type(item) for item in items}
    assert isinstance(items[0], RunStarted) and {PhaseChanged, BatchEnd, EpochEnd} <= kinds
    outcome = items[-1]
    assert isinstance(outcome, Finished), getattr(outcome, "message", outcome)
    assert outcome.stop_reason == "completed" and outcome.best_epoch == 1
    assert (run_dir / "best.keras").is_file()


def test_stop_ends_a_real_run_after_its_current_batch(data, tmp_path):
    config = tiny_config(data, **{"training.head_epochs": 30})
    with EngineProcess() as engine:
        epochs = 0
        for item in engine.run(TrainRequest(config=config.to_dict(), run_dir=str(tmp_path / "run"))):
            epochs += isinstance(item, EpochEnd)
            if isinstance(item, BatchEnd):
                engine.stop()
        assert engine.poll() == 0
    assert isinstance(item, Finished) and item.stop_reason == "stopped"
    assert epochs <= 2


def test_a_tool_runs_in_a_child_and_returns_its_result_as_plain_values(data):
    with EngineProcess() as engine:
        items = list(engine.run(ToolRequest(tool="check_setup", config=tiny_config(data).to_dict())))
        assert engine.poll() == 0
    outcome = items[-1]
    assert isinstance(outcome, ToolResult), getattr(outcome, "message", outcome)
    assert outcome.tool == "check_setup" and outcome.result["num_classes"] == 3
    assert outcome.result["expected_loss"] == pytest.approx(math.log(3))
    assert all(hint["type"] == "hint" for hint in outcome.result["hints"])


def test_helper_calls_are_answered_and_malformed_ones_refused_without_ending_the_process(data):
    process, stderr = client.spawn(client.child_command())

    def ask(line: bytes):
        process.stdin.write(line)
        process.stdin.flush()
        return decode(process.stdout.readline())

    try:
        assert ask(encode(Call(method="ping"))) == Reply(result="pong")
        garbage = ask(b"not json\n")
        assert garbage.error_type == PROTOCOL_ERROR and "Expected one JSON object a line" in garbage.error
        unknown = ask(b'{"type": "dance", "version": 1}\n')
        assert "Unknown message type 'dance'" in unknown.error
        assert "This process answers calls; it received a 'stop'" in ask(encode(Stop())).error
        assert ask(encode(Call(method="fly"))).error.startswith("`method` must be one of catalog, device")
        assert ask(encode(Call(method="device"))).result.startswith("CPU")
        planned = ask(encode(Call(method="planned_learning_rates",
                                  params={"config": tiny_config(data).to_dict(), "steps_per_epoch": 3})))
        assert len(planned.result["fine_tune"]) == 3
    finally:
        process.stdin.close()
        assert process.wait(timeout=30) == 0  # the end of stdin ends the helper cleanly
        process.stdout.close()
        stderr.close()


def test_a_malformed_first_message_ends_the_child_with_a_clear_error():
    process, stderr = client.spawn(client.child_command())
    try:
        output, _ = process.communicate(b'{"type": "dance"}\n', timeout=60)
    finally:
        stderr.close()
    [failed] = [decode(line) for line in output.splitlines()]
    assert isinstance(failed, Failed) and failed.error_type == PROTOCOL_ERROR
    assert "Unknown message type 'dance'" in failed.message
    assert process.returncode == 2

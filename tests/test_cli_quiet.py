"""The command line starts without TensorFlow's native start-up notices on stderr (they come
before absl is initialised, so no log-level variable silences them), and keeps every other
line TensorFlow prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import make_tiny_dataset
from training.cli.native_logs import is_notice

ROOT = Path(__file__).resolve().parent.parent

# As TensorFlow 2.21 prints them on a machine without a GPU (timestamps and thread ids vary).
NOTICES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796095904.959517   31051 port.cc:153] oneDNN custom operations are on. You may see "
    "slightly different numerical results due to floating-point round-off errors from different "
    "computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n",
    "I0000 00:00:1796095904.959818   31051 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.\n",
    "E0000 00:00:1796095907.378659   31051 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n",
    "I0000 00:00:1796095458.390098   26689 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.\n",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other "
    "operations, rebuild TensorFlow with the appropriate compiler flags.\n",
]


def test_the_known_notices_are_recognised_and_nothing_else():
    assert all(is_notice(line) for line in NOTICES)
    for line in ("Run folder: runs/x\n", "E0000 00:00:1.2 77 some_kernel.cc:12] Out of memory\n",
                 "Traceback (most recent call last):\n", "W0000 00:00:1.2 77 saver.cc:9] disk full\n"):
        assert not is_notice(line), line


def test_a_cli_run_prints_no_tensorflow_start_up_notices(tmp_path):
    data = make_tiny_dataset(tmp_path / "data", classes=2, per_class=4, size=32)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TF_CPP", "QT_"))}
    process = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "train", "--data", str(data), "--out", str(tmp_path / "run"),
         "--set", "model.backbone=SmallCNN", "--set", "model.weights=none", "--set", "data.image_size=32",
         "--set", "training.fine_tune_epochs=1", "--set", "training.head_epochs=0", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "oneDNN" not in process.stderr and "cuInit" not in process.stderr, process.stderr[-3000:]
    assert "absl::InitializeLog" not in process.stderr
    assert "Finished (completed)" in process.stderr

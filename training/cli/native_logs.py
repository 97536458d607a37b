"""TensorFlow's start-up notices, kept out of the terminal.

Importing TensorFlow 2.21 and asking for its devices prints C++ notices to the process's
stderr before absl's logging is initialised, so no environment variable silences them
(``TF_CPP_MIN_LOG_LEVEL``, ``ABSL_MIN_LOG_LEVEL`` and ``GLOG_minloglevel`` were tried,
docs/facts.md#tensorflow-logs): "oneDNN custom operations are on", "Could not find cuda
drivers", "failed call to cuInit" (an ``E`` line on every machine without a GPU). They
scare a newcomer and say nothing a run's own "Device:" line does not. ``quiet_start``
imports TensorFlow and lists its devices with file descriptor 2 pointing at a temporary
file, then passes on every line that is not one of those notices.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

# One known notice per alternative; anything else TensorFlow says still reaches stderr.
_NOTICES = re.compile(
    r"^(?:WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:.]+\s+\d+ (?:port\.cc|cudart_stub\.cc|cuda_platform\.cc|cuda_executor\.cc"
    r"|cpu_feature_guard\.cc|cuda_dnn\.cc|cuda_fft\.cc|cuda_blas\.cc|cpu_utils\.cc)(?::\d+)?\] .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)$")


def is_notice(line: str) -> bool:
    return _NOTICES.match(line.rstrip("\r\n")) is not None


def quiet_start() -> None:
    """Imports TensorFlow and lists its devices without its start-up notices on stderr.

    ``FINETUNE_STUDIO_TF_NOTICES=1`` shows them, for debugging an installation."""
    if os.environ.get("FINETUNE_STUDIO_TF_NOTICES") == "1" or "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (a test's capture): import plainly
        _start_tensorflow()
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            _start_tensorflow()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        kept = [line for line in captured.read().decode("utf-8", "backslashreplace").splitlines(True)
                if not is_notice(line)]
    if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()


def _start_tensorflow() -> None:
    import tensorflow as tf

    tf.config.list_physical_devices()

"""The GUI's calls into Keras-backed engine functions, answered by a helper process.

Call these from background threads only (they block until the answer comes). The
helper (``training.service.helper``) starts on the first call and imports Keras once; if it
dies, the next call starts a new one. ``IN_PROCESS = True`` calls ``training.api``
directly instead (for debugging; it brings TensorFlow into the app's process).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from training.api import Config

IN_PROCESS = os.environ.get("FINETUNE_STUDIO_IN_PROCESS") == "1"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class EngineCallError(RuntimeError):
    """The helper process answered with an error or died; the message says which."""


class EngineService:
    """One helper process, one request at a time (a lock serializes callers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._stderr: Any = None

    def call(self, method: str, **params: Any) -> Any:
        with self._lock:
            process = self._ensure_started()
            try:
                process.stdin.write((json.dumps({"method": method, "params": params}) + "\n").encode())
                process.stdin.flush()
                line = process.stdout.readline()
            except (BrokenPipeError, OSError):
                line = b""
            if not line:
                self._process = None
                raise EngineCallError(f"The engine helper process ended unexpectedly while computing "
                                      f"'{method}'. {self._stderr_tail()}".strip())
            reply = json.loads(line)
        if "error" in reply:
            raise EngineCallError(reply["error"])
        return reply["result"]

    def start(self) -> None:
        """Starts the helper ahead of its first use (it takes seconds to import Keras)."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> subprocess.Popen:
        if self._process is not None and self._process.poll() is None:
            return self._process
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._stderr = tempfile.TemporaryFile(prefix="finetune-studio-helper-")
        self._process = subprocess.Popen([sys.executable, "-u", "-m", "training.service.helper"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, env=env)
        return self._process

    def _stderr_tail(self, limit: int = 1500) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - limit))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def close(self) -> None:
        """Ends the helper at once: it holds no state worth waiting for, and a caller
        blocked on its answer gets an EngineCallError instead of hanging the exit."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait()


_service = EngineService()
atexit.register(_service.close)


def start_helper() -> None:
    if not IN_PROCESS:
        threading.Thread(target=_service.start, name="engine-helper-start", daemon=True).start()


def shutdown() -> None:
    _service.close()


def backbone_catalog() -> list[dict[str, Any]]:
    if IN_PROCESS:
        from training.api import backbone_catalog as catalog

        return catalog()
    return _service.call("catalog")


def device_description() -> str:
    """e.g. "CPU: 2 threads (float32)" or "GPU: NVIDIA H100 (mixed_float16)"."""
    if IN_PROCESS:
        from training.engine.device import describe_device

        return describe_device()
    return _service.call("device")


def planned_learning_rates(config: Config, steps_per_epoch: int) -> dict[str, list[float]]:
    if IN_PROCESS:
        from training.api import planned_learning_rates as planned

        return planned(config, steps_per_epoch)
    return _service.call("planned_learning_rates", config=config.to_dict(),
                         steps_per_epoch=steps_per_epoch)


def augmentation_preview(config: Config, paths: list[str], size: int,
                         seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Originals and augmented images, uint8 (N, size, size, 3)."""
    if IN_PROCESS:
        from training.api import load_preview_images, preview_augmentation

        originals = load_preview_images(paths, size)
        return originals, preview_augmentation(config, originals, seed=seed)
    from training.service.helper import decode_array

    result = _service.call("preview", config=config.to_dict(), paths=[str(p) for p in paths],
                           size=size, seed=seed)
    return decode_array(result["originals"]), decode_array(result["augmented"])

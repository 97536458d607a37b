"""The window's calls into Keras-backed engine functions, answered by an engine process.

Call these from background threads only (they block until the answer comes). The engine
process (``training.service.client.EngineHelper``) starts on the first call, or ahead of it
with ``start_helper``, and imports Keras once; if it dies, the next call starts a new one.
Failures raise ``EngineCallError`` with the sentence to show. ``IN_PROCESS = True``
(``FINETUNE_STUDIO_IN_PROCESS=1``) calls ``training.api`` directly instead, for debugging;
it brings TensorFlow into the window's process.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any, Callable

import numpy as np

from training import api
from training.api import Config
from training.service.client import EngineCallError, EngineHelper
from training.service.messages import decode_array

__all__ = ["EngineCallError", "start_helper", "shutdown", "backbone_catalog", "device_description",
           "planned_learning_rates", "augmentation_preview", "export_run", "evaluate_run",
           "predict_images", "grad_cam"]

IN_PROCESS = os.environ.get("FINETUNE_STUDIO_IN_PROCESS") == "1"

_helper = EngineHelper()
atexit.register(_helper.close)
# Exports take tens of seconds: a process of their own keeps the settings' answers flowing.
_export_helper = EngineHelper()
atexit.register(_export_helper.close)


def start_helper() -> None:
    """Starts the engine process in the background, so the first answer comes sooner."""
    if not IN_PROCESS:
        threading.Thread(target=_helper.start, name="engine-helper-start", daemon=True).start()


def shutdown() -> None:
    _helper.close()
    _export_helper.close()


def backbone_catalog() -> list[dict[str, Any]]:
    return api.backbone_catalog() if IN_PROCESS else _helper.call("catalog")


def device_description() -> str:
    """e.g. "CPU: 2 threads (float32)" or "GPU: NVIDIA H100 (mixed_float16)"."""
    return api.device_description() if IN_PROCESS else _helper.call("device")


def planned_learning_rates(config: Config, steps_per_epoch: int) -> dict[str, list[float]]:
    if IN_PROCESS:
        return api.planned_learning_rates(config, steps_per_epoch)
    return _helper.call("planned_learning_rates", config=config.to_dict(), steps_per_epoch=steps_per_epoch)


def augmentation_preview(config: Config, paths: list[str], size: int,
                         seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Originals and augmented images, uint8 (N, size, size, 3)."""
    if IN_PROCESS:
        originals = api.load_preview_images(paths, size)
        return originals, api.preview_augmentation(config, originals, seed=seed)
    result = _helper.call("preview", config=config.to_dict(), paths=[str(p) for p in paths],
                          size=size, seed=seed)
    return decode_array(result["originals"]), decode_array(result["augmented"])


def export_run(run_dir: str, fmt: str, quantize: str = "none") -> dict[str, Any]:
    """One verified export (``training.api.export_run``) as a dict: ``folder``, ``format``,
    ``quantize``, ``passed``, ``verification``, ``message``. Bad input raises
    ``EngineCallError`` with the sentence to show."""
    if IN_PROCESS:
        import dataclasses

        return dataclasses.asdict(api.export_run(run_dir, fmt, quantize=quantize))
    return _export_helper.call("export", run_dir=str(run_dir), format=fmt, quantize=quantize)


def evaluate_run(run_dir: str, split: str = "validation", tta: bool = False,
                 on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Evaluates a run (``training.api.evaluate``) and returns evaluation.json's content with
    ``folder`` (where it was written). Takes seconds to minutes: it has the export's process.
    ``on_progress(done, total)`` is called (on this thread) as images are scored."""
    if IN_PROCESS:
        return api.evaluate(run_dir, split=split, tta=tta, on_progress=on_progress)
    return _export_helper.call("evaluate", on_progress=on_progress, run_dir=str(run_dir), split=split, tta=tta)


def predict_images(run_dir: str, paths: list[str], top_k: int = 5, tta: bool = False) -> list[dict[str, Any]]:
    """``training.api.predict``'s result: per image ``path`` and ``top`` (or ``error``)."""
    if IN_PROCESS:
        return api.predict(run_dir, paths, top_k=top_k, tta=tta)
    return _export_helper.call("predict", run_dir=str(run_dir), paths=[str(p) for p in paths],
                               top_k=top_k, tta=tta)


def grad_cam(run_dir: str, path: str, class_name: str | None = None) -> dict[str, Any]:
    """``training.api.grad_cam``'s result; ``image``, ``heatmap`` and ``overlay`` as arrays."""
    if IN_PROCESS:
        return api.grad_cam(run_dir, path, class_name=class_name)
    result = _export_helper.call("grad_cam", run_dir=str(run_dir), path=str(path), class_name=class_name)
    for key in ("image", "heatmap", "overlay"):
        result[key] = decode_array(result[key])
    result["heatmap"] = result["heatmap"].astype(np.float32) / 255.0
    return result
